//! The table and model the cache benchmarks (`redis_cluster`, `memcached_adds`) count into:
//! pages and their views.

diesel::table! { bench_pages (id) { id -> BigInt, views -> BigInt, } }

/// A page; `views` is the counted field.
#[derive(
    diesel::Queryable, diesel::Selectable, diesel::Identifiable, counter_core::AtomicField,
)]
#[diesel(table_name = bench_pages)]
pub struct Page {
    /// The key.
    pub id: i64,
    /// The views.
    #[atomic]
    pub views: i64,
}
