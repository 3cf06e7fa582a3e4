// A value that is not a connection: the error names the connections and the pool features.
use counter_core::AtomicField;
use diesel::prelude::*;

diesel::table! { products (id) { id -> BigInt, stock -> Integer, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic]
    pub stock: i32,
}

fn main() {
    let mut conn = String::new();
    let _ = Product::increment_stock(&mut conn, 1, 1);
}
