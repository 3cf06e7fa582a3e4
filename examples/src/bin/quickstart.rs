//! The first thing to run: `cargo run -p counter-examples --bin quickstart`.
//!
//! Eight threads update one row of an SQLite file, first the way most code does it (load the
//! row, change the field, save the row), then with the methods `#[derive(AtomicField)]`
//! generates. The first way loses updates and oversells; the second cannot, because each
//! change is one guarded SQL statement: `UPDATE … SET views = views + 1 WHERE id = ? …`.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::time::Instant;

use counter_core::{AtomicError, AtomicField};
use counter_examples::{is_busy, PooledSqlite, SqlitePool, TempDb};
use diesel::prelude::*;

diesel::table! { pages (id) { id -> BigInt, views -> BigInt, } }
diesel::table! { products (id) { id -> BigInt, stock -> Integer, } }

/// An ordinary Diesel model; `AsChangeset` is only there for the naive `save_changes`.
#[derive(Queryable, Selectable, Identifiable, AsChangeset, AtomicField)]
#[diesel(table_name = pages)]
struct Page {
    id: i64,
    #[atomic]
    views: i64,
}

#[derive(Queryable, Selectable, Identifiable, AsChangeset, AtomicField)]
#[diesel(table_name = products)]
struct Product {
    id: i64,
    #[atomic(min = 0)]
    stock: i32,
}

const THREADS: u64 = 8;
const VIEWS_PER_THREAD: u64 = 500;
const STOCK: i32 = 100;
const BUYERS_PER_THREAD: u64 = 20;

/// What the threads of one run counted.
#[derive(Default)]
struct Tally {
    /// Calls that succeeded (a view counted, a buyer told "sold").
    ok: AtomicU64,
    /// Database errors: retried ones on the naive path, returned ones on the atomic path.
    errors: AtomicU64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    // One connection per thread, plus one for the setup and the final counts.
    let db = TempDb::new(THREADS as u32 + 1)?;
    let mut conn = db.pool.get()?;
    diesel::sql_query("CREATE TABLE pages (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
        .execute(&mut conn)?;
    diesel::sql_query("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL)")
        .execute(&mut conn)?;

    let calls = THREADS * VIEWS_PER_THREAD;
    println!("1. Page views: {THREADS} threads x {VIEWS_PER_THREAD} views of one page");
    header(&["expected", "counted", "lost", "errors"]);

    // The bug: read in one statement, write in another. Another thread's save can land in
    // between, and this save overwrites it with a stale value + 1.
    let naive = Tally::default();
    diesel::sql_query("INSERT INTO pages VALUES (1, 0)").execute(&mut conn)?;
    race(&db.pool, VIEWS_PER_THREAD, |conn| {
        let mut page: Page = retry_busy(&naive.errors, || {
            pages::table
                .find(1)
                .select(Page::as_select())
                .first(&mut **conn)
        });
        page.views += 1;
        std::thread::yield_now(); // the app does something else for a moment
        retry_busy(&naive.errors, || page.save_changes::<Page>(&mut **conn));
        naive.ok.fetch_add(1, Relaxed);
    });
    let counted: i64 = pages::table.find(1).select(pages::views).first(&mut conn)?;
    let lost = naive.ok.load(Relaxed) as i64 - counted;
    line(
        "naive   load; views += 1; save",
        &[calls as i64, counted, lost],
        &naive,
    );

    // The fix: one statement, `UPDATE pages SET views = views + ? WHERE … RETURNING views`.
    let atomic = Tally::default();
    diesel::sql_query("UPDATE pages SET views = 0").execute(&mut conn)?;
    race(&db.pool, VIEWS_PER_THREAD, |conn| {
        match Page::increment_views(conn, 1, 1) {
            Ok(_new_value) => atomic.ok.fetch_add(1, Relaxed),
            Err(e) => {
                eprintln!("increment_views: {e}");
                atomic.errors.fetch_add(1, Relaxed)
            }
        };
    });
    let counted: i64 = pages::table.find(1).select(pages::views).first(&mut conn)?;
    let atomic_lost = atomic.ok.load(Relaxed) as i64 - counted;
    line(
        "atomic  Page::increment_views",
        &[calls as i64, counted, atomic_lost],
        &atomic,
    );
    println!(
        "   -> the naive code lost {lost} of {calls} views; increment_views lost {atomic_lost}"
    );

    println!();
    println!(
        "2. Flash sale: {STOCK} in stock, {} buyers ({THREADS} threads x {BUYERS_PER_THREAD})",
        THREADS * BUYERS_PER_THREAD
    );
    header(&["sold", "left", "sold+left", "errors"]);

    // The bug, second kind: the check and the write are apart, so two buyers can both see
    // the last unit and both be told "sold".
    let naive = Tally::default();
    diesel::sql_query(format!("INSERT INTO products VALUES (1, {STOCK})")).execute(&mut conn)?;
    race(&db.pool, BUYERS_PER_THREAD, |conn| {
        let mut product: Product = retry_busy(&naive.errors, || {
            products::table
                .find(1)
                .select(Product::as_select())
                .first(&mut **conn)
        });
        if product.stock >= 1 {
            product.stock -= 1;
            std::thread::yield_now();
            retry_busy(&naive.errors, || {
                product.save_changes::<Product>(&mut **conn)
            });
            naive.ok.fetch_add(1, Relaxed);
        }
    });
    let left: i32 = products::table
        .find(1)
        .select(products::stock)
        .first(&mut conn)?;
    let sold = naive.ok.load(Relaxed) as i64;
    let naive_row = [sold, left.into(), sold + i64::from(left)];
    line("naive   if stock >= 1 { stock -= 1 }", &naive_row, &naive);

    // The fix: `UPDATE products SET stock = stock - 1 WHERE id = 1 AND stock >= 1`. When the
    // guard says no, nothing is written and the error says so.
    let atomic_sale = Tally::default();
    diesel::sql_query(format!("UPDATE products SET stock = {STOCK}")).execute(&mut conn)?;
    race(&db.pool, BUYERS_PER_THREAD, |conn| {
        match Product::decrement_stock_if_at_least(conn, 1, 1) {
            Ok(_left) => {
                atomic_sale.ok.fetch_add(1, Relaxed);
            }
            Err(AtomicError::Insufficient { .. }) => {} // sold out: the buyer is told so
            Err(e) => {
                eprintln!("decrement_stock_if_at_least: {e}");
                atomic_sale.errors.fetch_add(1, Relaxed);
            }
        }
    });
    let left: i32 = products::table
        .find(1)
        .select(products::stock)
        .first(&mut conn)?;
    let sold = atomic_sale.ok.load(Relaxed) as i64;
    let atomic_row = [sold, left.into(), sold + i64::from(left)];
    line(
        "atomic  decrement_stock_if_at_least",
        &atomic_row,
        &atomic_sale,
    );
    println!(
        "   -> the naive code sold {} of {STOCK} units; decrement_stock_if_at_least sold {sold}",
        naive_row[0]
    );

    println!();
    println!("naive errors: \"database is locked\", retried by the naive code itself");
    println!("atomic errors: calls that returned Err (counter-core retries a busy database)");
    println!("finished in {:.1?}", started.elapsed());

    // The library's promise, checked: a broken one exits non-zero.
    assert_eq!(atomic_lost, 0, "the atomic path lost updates");
    assert_eq!(
        atomic.errors.load(Relaxed),
        0,
        "increment_views returned errors"
    );
    assert_eq!(
        (sold, left),
        (i64::from(STOCK), 0),
        "the atomic sale missed the stock"
    );
    Ok(())
}

/// Runs `work` `per_thread` times on each of `THREADS` threads, all starting at once, each
/// with its own pooled connection (as the request handlers of a web app would).
fn race(pool: &SqlitePool, per_thread: u64, work: impl Fn(&mut PooledSqlite) + Sync) {
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut conn = pool.get().expect("a pooled connection");
                start.wait();
                for _ in 0..per_thread {
                    work(&mut conn);
                }
            });
        }
    });
}

/// What naive code does about "database is locked": run the same statement again.
fn retry_busy<T>(errors: &AtomicU64, mut statement: impl FnMut() -> QueryResult<T>) -> T {
    loop {
        match statement() {
            Ok(value) => return value,
            Err(e) if is_busy(&e) => {
                errors.fetch_add(1, Relaxed);
                std::thread::yield_now();
            }
            Err(e) => panic!("naive path: {e}"),
        }
    }
}

const LABEL: usize = 40;
const COLUMN: usize = 10;

fn header(titles: &[&str]) {
    let cells: String = titles.iter().map(|t| format!("{t:>COLUMN$}")).collect();
    println!("   {:LABEL$}{cells}", "");
}

fn line(label: &str, numbers: &[i64], tally: &Tally) {
    let cells: String = numbers.iter().map(|n| format!("{n:>COLUMN$}")).collect();
    let errors = tally.errors.load(Relaxed);
    println!("   {label:LABEL$}{cells}{errors:>COLUMN$}");
}
