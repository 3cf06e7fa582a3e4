use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Product, column = products::stock, foreign_key = product_id, change = take)]
pub struct NewOrder {
    pub product_id: i64,
}

fn main() {}
