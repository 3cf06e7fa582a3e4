use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Product, column = products::stock, foreign_key = product_id, sum = qty)]
pub struct NewOrder {
    pub product_id: i64,
    pub quantity: i32,
}

fn main() {}
