use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub sku: i64,
    #[atomic]
    pub stock: i32,
}

#[derive(AtomicField)]
#[diesel(table_name = accounts, primary_key(account_id))]
pub struct Account {
    pub id: i64,
    #[atomic]
    pub balance: i64,
}

fn main() {}
