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
    /// The randomized checker's integer-keyed counters (`tests/src/checker`); `w` is the
    /// second column of its two-column changes.
    ck_ints (id) {
        id -> BigInt,
        v -> Integer,
        w -> BigInt,
    }
}

diesel::table! {
    /// The randomized checker's counters under a string key the database compares
    /// case-insensitively (the same collations as `ct_named`).
    ck_texts (name) {
        name -> Text,
        v -> Integer,
        w -> BigInt,
    }
}

diesel::table! {
    /// The randomized checker's counters under a composite key whose second column is
    /// compared case-insensitively.
    ck_pairs (a, b) {
        a -> BigInt,
        b -> Text,
        v -> Integer,
        w -> BigInt,
    }
}

diesel::table! {
    /// A cart line, keyed by `(cart_id, product_id)`: the add-to-cart's composite key.
    ct_cart_lines (cart_id, product_id) {
        cart_id -> BigInt,
        product_id -> BigInt,
        quantity -> Integer,
    }
}

diesel::table! {
    /// Views per page per day, keyed by `(page_id, day)`, rows created by increment-or-insert.
    ct_daily_views (page_id, day) {
        page_id -> BigInt,
        day -> Integer,
        views -> BigInt,
    }
}

diesel::table! {
    /// Hit counters each with its own cap, enforced by the database alone (`CHECK (hits <=
    /// cap)`): a row whose write the database refuses, for the flush tests.
    ct_capped (id) {
        id -> BigInt,
        hits -> BigInt,
        cap -> BigInt,
    }
}

diesel::table! {
    /// Counters whose changes stamp `updated_at` (`#[atomic(touch = updated_at)]`), beside one
    /// (`plain`) whose changes do not.
    ct_stamps (id) {
        id -> BigInt,
        hits -> BigInt,
        score -> BigInt,
        plain -> BigInt,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Events counted into `ct_stamps.hits` by a counter cache, whose parent change stamps.
    ct_stamp_events (id) {
        id -> BigInt,
        stamp_id -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(ct_stamps, ct_stamp_events);

diesel::table! {
    /// Balances in `NUMERIC(12, 2)` (`Decimal<12, 2>`), a high-water mark, and a narrow
    /// `NUMERIC(4, 2)` column whose precision a change can exceed.
    ct_ledger (id) {
        id -> BigInt,
        balance -> Numeric,
        best -> Numeric,
        small -> Numeric,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// A `NUMERIC(18, 2)`: 18 digits, past what a double holds exactly.
    ct_wide (id) {
        id -> BigInt,
        amount -> Numeric,
    }
}

diesel::table! {
    /// Articles whose `views` and `likes` are slotted counters (the columns here stay 0: the
    /// slots are the counters).
    ct_articles (id) {
        id -> BigInt,
        views -> BigInt,
        likes -> BigInt,
    }
}

diesel::table! {
    /// The slots of `ct_articles.views`.
    ct_article_view_slots (id, slot) {
        id -> BigInt,
        slot -> Integer,
        count -> BigInt,
    }
}

diesel::table! {
    /// The slots of `ct_articles.likes`.
    ct_article_like_slots (id, slot) {
        id -> BigInt,
        slot -> Integer,
        count -> BigInt,
    }
}

diesel::table! {
    /// An article's reads, counted into its slotted `views` while `counted` (a slotted counter
    /// cache); the key is generated.
    ct_article_reads (id) {
        id -> BigInt,
        article_id -> BigInt,
        counted -> Bool,
    }
}

diesel::table! {
    /// A parent of two counter caches: `comments` counts its comments, `tips` sums its tips.
    ct_posts (id) {
        id -> BigInt,
        comments -> BigInt,
        tips -> BigInt,
    }
}

diesel::table! {
    /// A post's comments (a count cache into `ct_posts.comments`); the key is generated.
    ct_comments (id) {
        id -> BigInt,
        post_id -> BigInt,
        body -> Nullable<Text>,
    }
}

diesel::table! {
    /// A post's tips (a signed sum cache into `ct_posts.tips`: a refund is a negative tip).
    ct_tips (id) {
        id -> BigInt,
        post_id -> BigInt,
        cents -> Integer,
    }
}

diesel::table! {
    /// Orders of a product (a guarded cache: `quantity` leaves `ct_products.stock`).
    ct_orders (id) {
        id -> BigInt,
        product_id -> BigInt,
        quantity -> Integer,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    /// A parent of a conditional sum cache: `stars` sums the stars of its published reviews.
    ct_topics (id) {
        id -> BigInt,
        stars -> BigInt,
    }
}

diesel::table! {
    /// A parent of an unconditional count cache: `reviews` counts its reviewer's reviews.
    ct_reviewers (id) {
        id -> BigInt,
        reviews -> BigInt,
    }
}

diesel::table! {
    /// Reviews, with two caches: `stars` counts into `ct_topics.stars` only while `published`,
    /// and each review counts one into `ct_reviewers.reviews`.
    ct_reviews (id) {
        id -> BigInt,
        topic_id -> BigInt,
        reviewer_id -> BigInt,
        stars -> Integer,
        published -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(ct_posts, ct_comments, ct_tips);
