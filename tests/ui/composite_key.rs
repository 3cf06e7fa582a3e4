use counter_derive::AtomicField;

#[derive(AtomicField)]
#[diesel(table_name = stock_levels, primary_key(warehouse_id, product_id))]
pub struct StockLevel {
    pub warehouse_id: i64,
    pub product_id: i64,
    #[atomic(min = 0)]
    pub quantity: i32,
}

fn main() {}
