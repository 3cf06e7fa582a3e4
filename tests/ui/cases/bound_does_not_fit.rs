use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = -1)]
    pub stock: u32,
    #[atomic(max = 40000)]
    pub small: i16,
    #[atomic(max = 9223372036854775808)]
    pub big: i64,
    #[atomic(max = 1000i64)]
    pub suffixed: i32,
}

fn main() {}
