//! How each backend gets a database, and the [`TestDb`] trait the scenarios are written against.
//!
//! - PostgreSQL: `COUNTER_PG_URL`, else a `testcontainers` PostgreSQL container started once per
//!   process, else a panic naming both options. Never a silent skip.
//! - MySQL/MariaDB: `COUNTER_MYSQL_URL`, else a MariaDB container, else a panic likewise.
//! - SQLite: a fresh temporary database file per test, in WAL mode, and deliberately no busy
//!   timeout: the library alone must cope with a busy file. [`Sqlite::open_rollback_journal`]
//!   keeps SQLite's default journal instead, for the tests of what WAL hides, and
//!   [`Sqlite::open_with`] takes any journal mode and busy timeout (the checker's cells).
//! - The SQLite pools and the checker's cell pools put every connection through a [`Setup`]
//!   that checks its settings took, and the
//!   harness's own statements go through [`settle`], which waits out what only neighbours cause
//!   (a serialization failure, a busy SQLite file).
//!
//! The server databases are shared by every test of the process (tests run in parallel
//! threads) and by other runs: each test works on rows with ids from [`next_id`], unique per
//! process and, through a random base, across processes.
//!
//! Here: the [`TestDb`] trait, row ids, [`settle`] and the row helpers every backend shares;
//! [`server`]: the server URLs, containers, pools and the `Postgres` and `Mysql` backends;
//! [`sqlite`]: the `Sqlite` backend and the checked connection [`Setup`]; [`ddl`]: the tables.

use std::hash::{BuildHasher, RandomState};
use std::ops::DerefMut;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use counter_core::{BlockingConnection, Decimal, RawConnection};
use diesel::connection::{LoadConnection, SimpleConnection};
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, Pool, PooledConnection, R2D2Connection,
};
use diesel::sqlite::SqliteConnection;

use crate::models::{CartLine, Money};
use crate::schema::*;

/// Environment variable naming the PostgreSQL database the tests use.
pub const PG_ENV: &str = "COUNTER_PG_URL";
/// Environment variable naming the MySQL/MariaDB database the tests use.
pub const MYSQL_ENV: &str = "COUNTER_MYSQL_URL";
/// Environment variable naming the Redis server the tests use.
pub const REDIS_ENV: &str = "COUNTER_REDIS_URL";

/// Connections per pool: at least the 8 threads of the concurrency scenarios plus the test's own.
pub const POOL_SIZE: u32 = 20;
/// Connections of the process-wide pool of a server, shared by the tests running in parallel.
const SERVER_POOL_SIZE: u32 = 32;

/// The backend's Diesel backend type, as the derive's `where` clauses name it.
pub type DbOf<B> = <<B as TestDb>::Conn as Connection>::Backend;

/// The r2d2 pool of a backend.
pub type PoolOf<C> = Pool<ConnectionManager<C>>;

/// One backend, as the scenarios see it: a pool, and rows created for the calling test only.
///
/// Rows are created with fresh ids ([`next_id`]) and read back with plain Diesel queries,
/// independent of the library under test.
pub trait TestDb: Sized + Send + Sync + 'static {
    /// The backend's name, for messages.
    const NAME: &'static str;
    /// How many operations each of the 8 threads runs in the concurrency scenarios.
    const ITERATIONS: usize;
    /// The Diesel connection.
    type Conn: Connection
        + LoadConnection
        + R2D2Connection
        + BlockingConnection<Raw = Self::Conn>
        + RawConnection<Db = <Self::Conn as Connection>::Backend>
        + Send
        + 'static;
    /// A connection checked out of the pool; the library takes it as `&mut pooled`.
    type Pooled: BlockingConnection<Raw = Self::Conn> + DerefMut<Target = Self::Conn>;

    /// A database for one test: a fresh file (SQLite) or the process-wide server database.
    fn open() -> Self;
    /// The pool, for spawning threads.
    fn pool(&self) -> &PoolOf<Self::Conn>;
    /// A connection from the pool.
    fn conn(&self) -> Self::Pooled;
    /// SQL that takes the write lock of product row `id` (and holds it until the transaction
    /// it runs in ends).
    fn lock_product_sql(id: i64) -> String;

    /// A new product row; returns its id.
    fn new_product(&self, stock: i32, sold: i64) -> i64;
    /// `(stock, sold)` of a product row.
    fn product(&self, id: i64) -> (i32, i64);
    /// Is there a product row with this id?
    fn product_exists(&self, id: i64) -> bool;
    /// A new edge row `(small, medium, big, floored)`; returns its id.
    fn new_edge(&self, small: i16, medium: i32, big: i64, floored: i32) -> i64;
    /// `(small, medium, big, floored)` of an edge row.
    fn edge(&self, id: i64) -> (i16, i32, i64, i32);
    /// A new account row; returns its id.
    fn new_account(&self, balance_cents: i64) -> i64;
    /// `balance_cents` of an account row.
    fn account(&self, id: i64) -> i64;
    /// A new wallet row; returns its id.
    fn new_wallet(&self, coins: i32) -> i64;
    /// `coins` of a wallet row.
    fn wallet(&self, id: i64) -> i32;
    /// A new `ct_named` row with exactly this name.
    fn new_named(&self, name: &str, balance: i64);
    /// `balance` of the `ct_named` row the database matches to `name` (under its collation).
    fn named(&self, name: &str) -> i64;
    /// A new cart line.
    fn new_cart_line(&self, cart_id: i64, product_id: i64, quantity: i32);
    /// Every line of these carts, ordered by key.
    fn cart_lines(&self, cart_ids: &[i64]) -> Vec<CartLine>;
    /// Every `(page_id, day, views)` row of these pages, ordered by key.
    fn daily_views(&self, page_ids: &[i64]) -> Vec<(i64, i32, i64)>;
    /// The `(slot, count)` rows of article `id`'s view counter, in slot order.
    fn view_slots(&self, id: i64) -> Vec<(i32, i64)>;
    /// A new article row (its slotted counters have no slots yet); returns its id.
    fn new_article(&self) -> i64;
    /// `(COUNT(*)` of article `id`'s reads that count, `COUNT(*)` of all its reads`)`.
    fn article_reads(&self, id: i64) -> (i64, i64);
    /// A counted read inserted without the cache (another program).
    fn raw_read(&self, article_id: i64);
    /// A [`Gate`](crate::gate::Gate) into this database, closed by the test to take the
    /// database down.
    fn gate(&self) -> crate::gate::Gate;
    /// How many sessions wait for a lock that `conn`'s open transaction holds (servers only:
    /// SQLite has one writer, no row locks, and panics here).
    fn lock_waiters(conn: &mut Self::Conn) -> i64;
    /// A new daily-views row.
    fn new_daily_view(&self, page_id: i64, day: i32, views: i64);
    /// A new capped hit counter; returns its id.
    fn new_capped(&self, hits: i64, cap: i64) -> i64;
    /// Sets the cap of a capped hit counter.
    fn set_cap(&self, id: i64, cap: i64);
    /// Every `(id, hits)` row of these capped counters, ordered by id.
    fn capped(&self, ids: &[i64]) -> Vec<(i64, i64)>;
    /// A new post with no comments and no tips; returns its id.
    fn new_post(&self) -> i64;
    /// `(comments, tips)` of a post row.
    fn post(&self, id: i64) -> (i64, i64);
    /// Writes a post's counters directly: a drift the caches did not make.
    fn set_post(&self, id: i64, comments: i64, tips: i64);
    /// What a post's counters should hold: `(COUNT(*)` of its comments, the sum of its tips'
    /// cents`)`, read from the child tables.
    fn post_children(&self, id: i64) -> (i64, i64);
    /// A comment inserted without the cache (another program).
    fn raw_comment(&self, post_id: i64);
    /// The quantities of a product's orders, in no particular order.
    fn order_quantities(&self, product_id: i64) -> Vec<i32>;
    /// A new topic with no stars; returns its id.
    fn new_topic(&self) -> i64;
    /// A topic's `stars` column.
    fn topic(&self, id: i64) -> i64;
    /// What a topic's `stars` should hold: the sum of its published reviews' stars.
    fn topic_children(&self, id: i64) -> i64;
    /// A review's `(topic_id, reviewer_id, stars, published)`, `None` when no row has `id`.
    fn review(&self, id: i64) -> Option<(i64, i64, i32, bool)>;
    /// A new reviewer with no reviews; returns its id.
    fn new_reviewer(&self) -> i64;
    /// `(reviews column, COUNT(*) of the reviewer's reviews)`.
    fn reviewer(&self, id: i64) -> (i64, i64);
    /// The database's current time as the library writes a touched column (the same type and
    /// time zone as a `ct_stamps.updated_at` it stamps).
    const NOW: &'static str;
    /// An SQL expression: the timestamp expression `expr` in microseconds since the epoch,
    /// as a `BIGINT` (SQLite's text timestamps carry milliseconds).
    fn micros(expr: &str) -> String;
    /// A new `ct_ledger` row with this balance, `best` and `small` 0; returns its id.
    fn new_ledger(&self, balance: Money) -> i64;
    /// `(balance, best, small)` of a `ct_ledger` row.
    fn ledger(&self, id: i64) -> (Money, Money, Decimal<4, 2>);
    /// A new `ct_stamps` row, every counter 0 and `updated_at` NULL; returns its id.
    fn new_stamped(&self) -> i64;
    /// `(hits, score, plain)` of a `ct_stamps` row.
    fn stamped(&self, id: i64) -> (i64, i64, i64);
    /// `updated_at` of a `ct_stamps` row in microseconds ([`Self::micros`]), `None` while NULL.
    fn touched_at(&self, id: i64) -> Option<i64>;
    /// The database's clock now, read on `conn` (inside its transaction, if one is open), in
    /// microseconds ([`Self::micros`] of [`Self::NOW`]).
    fn now_on(conn: &mut Self::Conn) -> i64;
}

/// The rows of `ct_wide`, 18-digit decimals: on the servers only, since on SQLite (whose
/// `NUMERIC` holds a double) a `Decimal` of more than 15 digits does not build.
pub trait WideRows: TestDb {
    /// A new `ct_wide` row; returns its id.
    fn new_wide(&self, amount: Decimal<18, 2>) -> i64;
    /// `amount` of a `ct_wide` row.
    fn wide(&self, id: i64) -> Decimal<18, 2>;
}

/// One timestamp in microseconds, read with [`TestDb::micros`].
#[derive(QueryableByName)]
pub struct Micros {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    pub micros: Option<i64>,
}

/// A fresh row id: a random per-process base plus a process-wide counter, so tests running in
/// parallel (and other runs against the same server) never share a row.
pub fn next_id() -> i64 {
    static BASE: OnceLock<i64> = OnceLock::new();
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = *BASE.get_or_init(|| {
        let random =
            RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
        // In [2^40, 2^40 + 2^60): positive, far from other runs, room for the counter.
        (1_i64 << 40) + (random % (1_u64 << 60)) as i64
    });
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs one statement of the harness itself (not of the library under test), again while it
/// fails only because of the tests beside it: a serialization failure (the PostgreSQL suite also
/// runs under SERIALIZABLE, where even a plain `INSERT` can conflict) or a busy SQLite file
/// (the SQLite pools set no busy timeout, on purpose). At most 100 tries, about 5 s.
pub fn settle<T>(mut f: impl FnMut() -> QueryResult<T>) -> QueryResult<T> {
    use diesel::result::{DatabaseErrorKind, Error};
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(Error::DatabaseError(kind, info))
                if attempt < 100
                    && (kind == DatabaseErrorKind::SerializationFailure
                        || info.message().contains("database is locked")) => {}
            result => return result,
        }
        std::thread::sleep(Duration::from_millis(attempt));
    }
}

/// [`settle`] on a connection from `pool`; panics with `what` on any other error.
fn harness<C, T>(pool: &PoolOf<C>, what: &str, mut f: impl FnMut(&mut C) -> QueryResult<T>) -> T
where
    C: R2D2Connection + Send + 'static,
{
    let mut conn = pool
        .get()
        .unwrap_or_else(|e| panic!("{what}: no connection from the pool: {e}"));
    settle(|| f(&mut conn)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The row helpers, identical for the three backends, written once.
macro_rules! row_helpers {
    () => {
        fn conn(&self) -> Self::Pooled {
            self.pool()
                .get()
                .unwrap_or_else(|e| panic!("{}: no connection from the pool: {e}", Self::NAME))
        }

        fn new_post(&self) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert post", |c| {
                diesel::insert_into(ct_posts::table)
                    .values((
                        ct_posts::id.eq(id),
                        ct_posts::comments.eq(0),
                        ct_posts::tips.eq(0),
                    ))
                    .execute(c)
            });
            id
        }

        fn post(&self, id: i64) -> (i64, i64) {
            harness(self.pool(), "read post", |c| {
                ct_posts::table
                    .find(id)
                    .select((ct_posts::comments, ct_posts::tips))
                    .first(c)
            })
        }

        fn set_post(&self, id: i64, comments: i64, tips: i64) {
            harness(self.pool(), "write post", |c| {
                diesel::update(ct_posts::table.find(id))
                    .set((ct_posts::comments.eq(comments), ct_posts::tips.eq(tips)))
                    .execute(c)
            });
        }

        fn post_children(&self, id: i64) -> (i64, i64) {
            harness(self.pool(), "read a post's children", |c| {
                let comments: i64 = ct_comments::table
                    .filter(ct_comments::post_id.eq(id))
                    .count()
                    .get_result(c)?;
                let tips: Vec<i32> = ct_tips::table
                    .filter(ct_tips::post_id.eq(id))
                    .select(ct_tips::cents)
                    .load(c)?;
                Ok((comments, tips.into_iter().map(i64::from).sum()))
            })
        }

        fn raw_comment(&self, post_id: i64) {
            harness(self.pool(), "insert a comment without the cache", |c| {
                diesel::insert_into(ct_comments::table)
                    .values((
                        ct_comments::post_id.eq(post_id),
                        ct_comments::body.eq("raw"),
                    ))
                    .execute(c)
            });
        }

        fn new_article(&self) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert article", |c| {
                diesel::insert_into(ct_articles::table)
                    .values((
                        ct_articles::id.eq(id),
                        ct_articles::views.eq(0),
                        ct_articles::likes.eq(0),
                    ))
                    .execute(c)
            });
            id
        }

        fn article_reads(&self, id: i64) -> (i64, i64) {
            harness(self.pool(), "read an article's reads", |c| {
                let all = ct_article_reads::table.filter(ct_article_reads::article_id.eq(id));
                let counted: i64 = all
                    .filter(ct_article_reads::counted.eq(true))
                    .count()
                    .get_result(c)?;
                Ok((counted, all.count().get_result(c)?))
            })
        }

        fn raw_read(&self, article_id: i64) {
            harness(self.pool(), "insert a read without the cache", |c| {
                diesel::insert_into(ct_article_reads::table)
                    .values((
                        ct_article_reads::article_id.eq(article_id),
                        ct_article_reads::counted.eq(true),
                    ))
                    .execute(c)
            });
        }

        fn new_topic(&self) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert topic", |c| {
                diesel::insert_into(ct_topics::table)
                    .values((ct_topics::id.eq(id), ct_topics::stars.eq(0)))
                    .execute(c)
            });
            id
        }

        fn topic(&self, id: i64) -> i64 {
            harness(self.pool(), "read topic", |c| {
                ct_topics::table.find(id).select(ct_topics::stars).first(c)
            })
        }

        fn topic_children(&self, id: i64) -> i64 {
            harness(self.pool(), "read a topic's reviews", |c| {
                let stars: Vec<i32> = ct_reviews::table
                    .filter(ct_reviews::topic_id.eq(id))
                    .filter(ct_reviews::published.eq(true))
                    .select(ct_reviews::stars)
                    .load(c)?;
                Ok(stars.into_iter().map(i64::from).sum())
            })
        }

        fn review(&self, id: i64) -> Option<(i64, i64, i32, bool)> {
            harness(self.pool(), "read a review", |c| {
                ct_reviews::table
                    .find(id)
                    .select((
                        ct_reviews::topic_id,
                        ct_reviews::reviewer_id,
                        ct_reviews::stars,
                        ct_reviews::published,
                    ))
                    .first(c)
                    .optional()
            })
        }

        fn new_reviewer(&self) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert reviewer", |c| {
                diesel::insert_into(ct_reviewers::table)
                    .values((ct_reviewers::id.eq(id), ct_reviewers::reviews.eq(0)))
                    .execute(c)
            });
            id
        }

        fn reviewer(&self, id: i64) -> (i64, i64) {
            harness(self.pool(), "read a reviewer", |c| {
                let reviews = ct_reviewers::table
                    .find(id)
                    .select(ct_reviewers::reviews)
                    .first(c)?;
                let rows: i64 = ct_reviews::table
                    .filter(ct_reviews::reviewer_id.eq(id))
                    .count()
                    .get_result(c)?;
                Ok((reviews, rows))
            })
        }

        fn order_quantities(&self, product_id: i64) -> Vec<i32> {
            harness(self.pool(), "read a product's orders", |c| {
                ct_orders::table
                    .filter(ct_orders::product_id.eq(product_id))
                    .select(ct_orders::quantity)
                    .load(c)
            })
        }

        fn new_product(&self, stock: i32, sold: i64) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert product", |c| {
                diesel::insert_into(ct_products::table)
                    .values((
                        ct_products::id.eq(id),
                        ct_products::name.eq(format!("product {id}")),
                        ct_products::stock.eq(stock),
                        ct_products::sold.eq(sold),
                    ))
                    .execute(c)
            });
            id
        }

        fn product(&self, id: i64) -> (i32, i64) {
            harness(self.pool(), "read product", |c| {
                ct_products::table
                    .find(id)
                    .select((ct_products::stock, ct_products::sold))
                    .first(c)
            })
        }

        fn product_exists(&self, id: i64) -> bool {
            let rows: i64 = harness(self.pool(), "count products", |c| {
                ct_products::table
                    .filter(ct_products::id.eq(id))
                    .count()
                    .get_result(c)
            });
            rows > 0
        }

        fn new_edge(&self, small: i16, medium: i32, big: i64, floored: i32) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert edge", |c| {
                diesel::insert_into(ct_edges::table)
                    .values((
                        ct_edges::id.eq(id),
                        ct_edges::small.eq(small),
                        ct_edges::medium.eq(medium),
                        ct_edges::big.eq(big),
                        ct_edges::floored.eq(floored),
                    ))
                    .execute(c)
            });
            id
        }

        fn edge(&self, id: i64) -> (i16, i32, i64, i32) {
            harness(self.pool(), "read edge", |c| {
                ct_edges::table
                    .find(id)
                    .select((
                        ct_edges::small,
                        ct_edges::medium,
                        ct_edges::big,
                        ct_edges::floored,
                    ))
                    .first(c)
            })
        }

        fn new_account(&self, balance_cents: i64) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert account", |c| {
                diesel::insert_into(ct_accounts::table)
                    .values((
                        ct_accounts::id.eq(id),
                        ct_accounts::balance_cents.eq(balance_cents),
                    ))
                    .execute(c)
            });
            id
        }

        fn account(&self, id: i64) -> i64 {
            harness(self.pool(), "read account", |c| {
                ct_accounts::table
                    .find(id)
                    .select(ct_accounts::balance_cents)
                    .first(c)
            })
        }

        fn new_wallet(&self, coins: i32) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert wallet", |c| {
                diesel::insert_into(ct_wallets::table)
                    .values((ct_wallets::id.eq(id), ct_wallets::coins.eq(coins)))
                    .execute(c)
            });
            id
        }

        fn wallet(&self, id: i64) -> i32 {
            harness(self.pool(), "read wallet", |c| {
                ct_wallets::table
                    .find(id)
                    .select(ct_wallets::coins)
                    .first(c)
            })
        }

        fn new_named(&self, name: &str, balance: i64) {
            harness(self.pool(), "insert named", |c| {
                diesel::insert_into(ct_named::table)
                    .values((ct_named::name.eq(name), ct_named::balance.eq(balance)))
                    .execute(c)
            });
        }

        fn named(&self, name: &str) -> i64 {
            harness(self.pool(), "read named", |c| {
                ct_named::table
                    .find(name)
                    .select(ct_named::balance)
                    .first(c)
            })
        }

        fn new_cart_line(&self, cart_id: i64, product_id: i64, quantity: i32) {
            harness(self.pool(), "insert cart line", |c| {
                diesel::insert_into(ct_cart_lines::table)
                    .values((
                        ct_cart_lines::cart_id.eq(cart_id),
                        ct_cart_lines::product_id.eq(product_id),
                        ct_cart_lines::quantity.eq(quantity),
                    ))
                    .execute(c)
            });
        }

        fn cart_lines(&self, cart_ids: &[i64]) -> Vec<CartLine> {
            harness(self.pool(), "read cart lines", |c| {
                ct_cart_lines::table
                    .filter(ct_cart_lines::cart_id.eq_any(cart_ids))
                    .order((ct_cart_lines::cart_id, ct_cart_lines::product_id))
                    .select(CartLine::as_select())
                    .load(c)
            })
        }

        fn view_slots(&self, id: i64) -> Vec<(i32, i64)> {
            harness(self.pool(), "read view slots", |c| {
                ct_article_view_slots::table
                    .filter(ct_article_view_slots::id.eq(id))
                    .order(ct_article_view_slots::slot)
                    .select((ct_article_view_slots::slot, ct_article_view_slots::count))
                    .load(c)
            })
        }

        fn new_daily_view(&self, page_id: i64, day: i32, views: i64) {
            harness(self.pool(), "insert daily view", |c| {
                diesel::insert_into(ct_daily_views::table)
                    .values((
                        ct_daily_views::page_id.eq(page_id),
                        ct_daily_views::day.eq(day),
                        ct_daily_views::views.eq(views),
                    ))
                    .execute(c)
            });
        }

        fn new_capped(&self, hits: i64, cap: i64) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert capped", |c| {
                diesel::insert_into(ct_capped::table)
                    .values((
                        ct_capped::id.eq(id),
                        ct_capped::hits.eq(hits),
                        ct_capped::cap.eq(cap),
                    ))
                    .execute(c)
            });
            id
        }

        fn set_cap(&self, id: i64, cap: i64) {
            harness(self.pool(), "set cap", |c| {
                diesel::update(ct_capped::table.find(id))
                    .set(ct_capped::cap.eq(cap))
                    .execute(c)
            });
        }

        fn capped(&self, ids: &[i64]) -> Vec<(i64, i64)> {
            harness(self.pool(), "read capped", |c| {
                ct_capped::table
                    .filter(ct_capped::id.eq_any(ids))
                    .order(ct_capped::id)
                    .select((ct_capped::id, ct_capped::hits))
                    .load(c)
            })
        }

        fn new_ledger(&self, balance: Money) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert ledger", |c| {
                diesel::insert_into(ct_ledger::table)
                    .values((
                        ct_ledger::id.eq(id),
                        ct_ledger::balance.eq(balance),
                        ct_ledger::best.eq(Money::ZERO),
                        ct_ledger::small.eq(Decimal::<4, 2>::ZERO),
                    ))
                    .execute(c)
            });
            id
        }

        fn ledger(&self, id: i64) -> (Money, Money, Decimal<4, 2>) {
            harness(self.pool(), "read ledger", |c| {
                ct_ledger::table
                    .find(id)
                    .select((ct_ledger::balance, ct_ledger::best, ct_ledger::small))
                    .first(c)
            })
        }

        fn new_stamped(&self) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert stamped", |c| {
                diesel::insert_into(ct_stamps::table)
                    .values((
                        ct_stamps::id.eq(id),
                        ct_stamps::hits.eq(0),
                        ct_stamps::score.eq(0),
                        ct_stamps::plain.eq(0),
                    ))
                    .execute(c)
            });
            id
        }

        fn touched_at(&self, id: i64) -> Option<i64> {
            harness(self.pool(), "read updated_at", |c| {
                diesel::sql_query(format!(
                    "SELECT {} AS micros FROM ct_stamps WHERE id = {id}",
                    Self::micros("updated_at")
                ))
                .get_result::<Micros>(c)
            })
            .micros
        }

        fn now_on(conn: &mut Self::Conn) -> i64 {
            diesel::sql_query(format!("SELECT {} AS micros", Self::micros(Self::NOW)))
                .get_result::<Micros>(conn)
                .unwrap_or_else(|e| panic!("{}: the database's clock: {e}", Self::NAME))
                .micros
                .expect("a time")
        }

        fn stamped(&self, id: i64) -> (i64, i64, i64) {
            harness(self.pool(), "read stamped", |c| {
                ct_stamps::table
                    .find(id)
                    .select((ct_stamps::hits, ct_stamps::score, ct_stamps::plain))
                    .first(c)
            })
        }

        fn daily_views(&self, page_ids: &[i64]) -> Vec<(i64, i32, i64)> {
            harness(self.pool(), "read daily views", |c| {
                ct_daily_views::table
                    .filter(ct_daily_views::page_id.eq_any(page_ids))
                    .order((ct_daily_views::page_id, ct_daily_views::day))
                    .load(c)
            })
        }
    };
}

pub mod ddl;
pub mod server;
pub mod sqlite;

pub use server::*;
pub use sqlite::*;
