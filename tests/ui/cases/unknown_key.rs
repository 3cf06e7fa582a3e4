use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = 0, step = 2)]
    pub stock: i32,
}

fn main() {}
