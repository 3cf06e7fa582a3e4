use counter_core::AtomicField;

diesel::table! {
    accounts (id) {
        id -> BigInt,
        balance -> BigInt,
        hits -> BigInt,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    article_view_slots (id, slot) {
        id -> BigInt,
        slot -> Integer,
        count -> BigInt,
    }
}

// A touched column must be a timestamp of its own, not a counter or the key.
#[derive(AtomicField)]
#[diesel(table_name = accounts)]
#[atomic(touch = updated_at)]
pub struct Account {
    pub id: i64,
    #[atomic(touch = hits)]
    pub balance: i64,
    #[atomic(touch = id)]
    pub hits: i64,
}

// A slotted counter writes its slot rows, never the model's row.
#[derive(AtomicField)]
#[diesel(table_name = accounts)]
pub struct Article {
    pub id: i64,
    #[atomic(slots = 4, table = article_view_slots, touch = updated_at)]
    pub hits: i64,
}

fn main() {}
