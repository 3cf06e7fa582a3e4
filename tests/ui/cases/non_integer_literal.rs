use counter_derive::AtomicField;

const LIMIT: i32 = 100;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = 1.5, max = LIMIT, retries = "3")]
    pub stock: i32,
}

fn main() {}
