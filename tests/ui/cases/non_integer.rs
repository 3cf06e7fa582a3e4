use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic]
    pub name: String,
    #[atomic]
    pub price: f64,
    #[atomic]
    pub flags: u8,
}

fn main() {}
