use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product<T> {
    pub id: i64,
    pub extra: T,
    #[atomic]
    pub stock: i32,
}

fn main() {}
