use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = 10, max = 5)]
    pub stock: i32,
}

fn main() {}
