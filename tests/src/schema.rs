//! The tables the tests use. Every name starts with `ct_` so the suite never touches tables
//! of the examples or the benchmark, which share the same server databases.

diesel::table! {
    /// A shop's products: `stock` is bounded (0..=1000), `sold` is not.
    ct_products (id) {
        id -> BigInt,
        name -> Text,
        stock -> Integer,
        sold -> BigInt,
    }
}

diesel::table! {
    /// One counter of each signed width, for the type-range edges, and one with a declared
    /// minimum above zero.
    ct_edges (id) {
        id -> BigInt,
        small -> SmallInt,
        medium -> Integer,
        big -> BigInt,
        floored -> Integer,
    }
}

diesel::table! {
    /// A model whose atomic field is mapped with `#[diesel(column_name = ...)]`.
    ct_accounts (id) {
        id -> BigInt,
        balance_cents -> BigInt,
    }
}

diesel::table! {
    /// A model without `#[diesel(table_name = ...)]`: `CtWallet` → `ct_wallets`.
    ct_wallets (id) {
        id -> BigInt,
        coins -> Integer,
    }
}

diesel::table! {
    /// MySQL only: `INT UNSIGNED` and `BIGINT UNSIGNED` counters.
    ct_unsigned (id) {
        id -> BigInt,
        u32v -> Unsigned<Integer>,
        u64v -> Unsigned<BigInt>,
    }
}

diesel::table! {
    /// A string primary key that the database compares case-insensitively (MariaDB
    /// `utf8mb4_general_ci`, which also ignores trailing spaces; SQLite `NOCASE`; PostgreSQL a
    /// nondeterministic ICU collation): two different Rust strings can name one row.
    ct_named (name) {
        name -> Text,
        balance -> BigInt,
    }
}

diesel::table! {
    /// The randomized checker's integer-keyed counters (`tests/src/checker`).
    ck_counters (id) {
        id -> BigInt,
        v -> Integer,
    }
}

diesel::table! {
    /// The randomized checker's counters under a string key the database compares
    /// case-insensitively (the same collations as `ct_named`).
    ck_names (name) {
        name -> Text,
        v -> Integer,
    }
}
