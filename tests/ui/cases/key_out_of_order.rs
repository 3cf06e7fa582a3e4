use counter_core::AtomicField;

diesel::table! {
    cart_lines (cart_id, product_id) {
        cart_id -> BigInt,
        product_id -> BigInt,
        quantity -> Integer,
    }
}

// The right columns in the wrong order: every key tuple would bind cart ids to product_id.
#[derive(AtomicField)]
#[diesel(table_name = cart_lines, primary_key(product_id, cart_id))]
pub struct CartLine {
    pub cart_id: i64,
    pub product_id: i64,
    #[atomic(min = 0)]
    pub quantity: i32,
}

fn main() {}
