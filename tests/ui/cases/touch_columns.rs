use counter_core::AtomicField;

diesel::table! {
    accounts (id) {
        id -> BigInt,
        balance -> BigInt,
        updated_at -> Nullable<Timestamp>,
        note -> Text,
    }
}

// A column the table does not have: the error points at the name.
#[derive(AtomicField)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: i64,
    #[atomic(min = 0, touch = updated)]
    pub balance: i64,
}

// A column that is not a timestamp: the error points at the name.
#[derive(AtomicField)]
#[diesel(table_name = accounts)]
pub struct Noted {
    pub id: i64,
    #[atomic(touch = note)]
    pub balance: i64,
}

fn main() {}
