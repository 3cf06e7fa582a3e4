use counter_core::AtomicField;

diesel::table! {
    cart_lines (cart_id, product_id) {
        cart_id -> BigInt,
        product_id -> BigInt,
        quantity -> Integer,
    }
}

diesel::table! {
    products (sku) {
        sku -> BigInt,
        id -> BigInt,
        stock -> Integer,
    }
}

// The table's key is (cart_id, product_id): "one row" by product_id would be every cart's line.
#[derive(AtomicField)]
#[diesel(table_name = cart_lines, primary_key(product_id))]
pub struct CartLine {
    pub cart_id: i64,
    pub product_id: i64,
    #[atomic(min = 0)]
    pub quantity: i32,
}

// No primary_key(..): the default `id` is not the table's key `sku`.
#[derive(AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub sku: i64,
    pub id: i64,
    #[atomic]
    pub stock: i32,
}

fn main() {}
