use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    #[atomic]
    pub id: i64,
    #[atomic]
    pub stock: i32,
}

#[derive(AtomicField)]
#[diesel(table_name = accounts, primary_key(number))]
pub struct Account {
    #[atomic(min = 0)]
    pub number: i32,
    #[atomic]
    pub balance: i64,
}

fn main() {}
