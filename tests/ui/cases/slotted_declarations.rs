use counter_core::AtomicField;

diesel::table! { articles (id) { id -> BigInt, views -> BigInt, likes -> Integer, shares -> BigInt, stars -> BigInt, } }
diesel::table! { article_view_slots (id, slot) { id -> BigInt, slot -> Integer, count -> BigInt, } }

#[derive(AtomicField)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    // A bound cannot be enforced over slots.
    #[atomic(slots = 16, table = article_view_slots, min = 0)]
    pub views: i64,
    // The slots' sum is a BIGINT.
    #[atomic(slots = 4, table = article_view_slots)]
    pub likes: i32,
    // No slot table.
    #[atomic(slots = 4)]
    pub shares: i64,
    // `allow_decrement` without slots.
    #[atomic(allow_decrement)]
    pub stars: i64,
}

fn main() {}
