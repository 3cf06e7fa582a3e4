use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = 0, min = 1)]
    pub stock: i32,
    #[atomic(max = 10)]
    #[atomic(max = 20)]
    pub reserved: i32,
}

fn main() {}
