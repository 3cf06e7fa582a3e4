use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
#[atomic(retries = 0)]
pub struct Product {
    pub id: i64,
    #[atomic(retries = 0)]
    pub stock: i32,
}

fn main() {}
