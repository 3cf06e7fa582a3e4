//! Counter caches, the two classic "signals" done right:
//! `cargo run -p counter-examples --bin article_views`.
//!
//! 1. A view row is created and the article's `view_count` goes up (Django's `post_save`
//!    doing `article.view_count += 1; article.save()`, which loses updates).
//! 2. An order row is created and the product's `stock` goes down, only if the stock holds
//!    it (`if stock >= n { stock -= n }` in the app, which oversells).
//!
//! Sixteen workers do both at once on one SQLite file, each `insert_counted` one statement
//! or one transaction: the child row and its parent's counter, both or neither. Some views are
//! deleted again (`delete_counted`), each twice, as a retried request would. At the end every
//! counter is held against its child rows, and a recount finds nothing to correct.

use std::error::Error;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use counter_core::{AtomicError, AtomicField, CounterCache};
use counter_examples::{SqlitePool, TempDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

diesel::table! { articles (id) { id -> BigInt, title -> Text, view_count -> BigInt, } }
diesel::table! { article_views (id) { id -> BigInt, article_id -> BigInt, reader -> Integer, } }
diesel::table! { products (id) { id -> BigInt, name -> Text, stock -> Integer, } }
diesel::table! { orders (id) { id -> BigInt, product_id -> BigInt, quantity -> Integer, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = articles)]
struct Article {
    id: i64,
    title: String,
    #[atomic(min = 0)]
    view_count: i64,
}

/// A view of an article: while the row exists, the article counts it.
#[derive(CounterCache)]
#[diesel(table_name = article_views)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
struct NewView {
    article_id: i64,
    reader: i32,
}

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = products)]
struct Product {
    id: i64,
    name: String,
    #[atomic(min = 0)]
    stock: i32,
}

/// An order: its quantity leaves the product's stock, and no order exists for stock that is
/// not there.
#[derive(CounterCache)]
#[diesel(table_name = orders)]
#[counter_cache(parent = Product, column = products::stock, foreign_key = product_id,
                sum = quantity, change = decrement_if_at_least)]
struct NewOrder {
    product_id: i64,
    quantity: i32,
}

const WORKERS: usize = 16;
const VIEWS_PER_WORKER: usize = 100;
const ARTICLES: i64 = 4;
const STOCK: i32 = 500;

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let db = TempDb::new(WORKERS as u32 + 1)?;
    let mut conn = db.pool.get()?;
    conn.batch_execute(
        "CREATE TABLE articles (id BIGINT PRIMARY KEY, title TEXT NOT NULL, view_count BIGINT NOT NULL);
         CREATE TABLE article_views (id INTEGER PRIMARY KEY AUTOINCREMENT,
             article_id BIGINT NOT NULL REFERENCES articles (id), reader INTEGER NOT NULL);
         CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,
             product_id BIGINT NOT NULL REFERENCES products (id), quantity INTEGER NOT NULL);",
    )?;
    for id in 1..=ARTICLES {
        diesel::insert_into(articles::table)
            .values((
                articles::id.eq(id),
                articles::title.eq(format!("article {id}")),
                articles::view_count.eq(0),
            ))
            .execute(&mut conn)?;
    }
    diesel::insert_into(products::table)
        .values((
            products::id.eq(1),
            products::name.eq("grinder"),
            products::stock.eq(STOCK),
        ))
        .execute(&mut conn)?;

    let done = Done::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let (pool, done) = (&db.pool, &done);
                s.spawn(move || work(pool, worker, done))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;

    println!("{WORKERS} workers, finished in {:.1?}\n", started.elapsed());
    let mut exact = true;
    let articles: Vec<Article> = articles::table
        .order(articles::id)
        .select(Article::as_select())
        .load(&mut conn)?;
    for article in &articles {
        let rows: i64 = article_views::table
            .filter(article_views::article_id.eq(article.id))
            .count()
            .get_result(&mut conn)?;
        exact &= article.view_count == rows;
        println!(
            "{}: view_count {}, view rows {rows}",
            article.title, article.view_count
        );
    }
    let views = done.views.load(Relaxed) - done.unviewed.load(Relaxed);
    let all_rows: i64 = article_views::table.count().get_result(&mut conn)?;
    exact &= views == all_rows;
    println!(
        "views: {} counted, {} deleted ({} second deletes found nothing): {views} left, {all_rows} rows",
        done.views.load(Relaxed),
        done.unviewed.load(Relaxed),
        done.missed.load(Relaxed)
    );

    let product: Product = products::table
        .find(1)
        .select(Product::as_select())
        .first(&mut conn)?;
    let stock = product.stock;
    let ordered: Vec<i32> = orders::table.select(orders::quantity).load(&mut conn)?;
    let sold: i32 = ordered.iter().sum();
    exact &= stock + sold == STOCK && stock >= 0;
    exact &= ordered.len() == done.orders.load(Relaxed);
    println!(
        "orders of the {}: {} placed, {} refused; stock {stock} + ordered {sold} = {} (started at {STOCK})",
        product.name,
        ordered.len(),
        done.refused.load(Relaxed),
        stock + sold
    );

    let drift = NewView::recount_all_view_count(&mut conn)?;
    exact &= drift.is_empty();
    println!(
        "a recount of every article corrected {} counters",
        drift.len()
    );
    println!("\ncounter caches exact: {exact}");
    assert!(exact, "a counter differs from its child rows");
    Ok(())
}

/// What the workers saw succeed.
#[derive(Default)]
struct Done {
    views: AtomicI64,
    unviewed: AtomicI64,
    missed: AtomicUsize,
    orders: AtomicUsize,
    refused: AtomicUsize,
}

/// One worker (a request handler, say) with its own pooled connection: views articles (the
/// first one is hot), deletes some of its views again, and orders until the stock runs out.
fn work(pool: &SqlitePool, worker: usize, done: &Done) -> Result<(), AtomicError> {
    let mut conn = pool.get().expect("a pooled connection");
    let views = NewView::counter_cache_view_count();
    let mut mine = Vec::new();
    for visit in 0..VIEWS_PER_WORKER {
        let article_id = if visit % 2 == 0 {
            1
        } else {
            1 + (worker + visit) as i64 % ARTICLES
        };
        let view = NewView {
            article_id,
            reader: worker as i32,
        };
        // One transaction: `UPDATE articles … RETURNING view_count`, then the INSERT.
        let counted = views.insert(&mut conn, &view)?;
        done.views.fetch_add(1, Relaxed);
        mine.push(counted.key);
        if visit % 10 == 9 {
            // Every tenth view is taken back, and deleted twice (a retried request): the
            // second delete finds nothing and changes nothing.
            let key = mine.remove(0);
            for _ in 0..2 {
                match views.delete(&mut conn, key) {
                    Ok(_) => {
                        done.unviewed.fetch_add(1, Relaxed);
                    }
                    Err(AtomicError::NotFound) => {
                        done.missed.fetch_add(1, Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let orders = NewOrder::counter_cache_stock();
    loop {
        let quantity = 1 + (worker % 3) as i32;
        match orders.insert(
            &mut conn,
            &NewOrder {
                product_id: 1,
                quantity,
            },
        ) {
            Ok(_) => done.orders.fetch_add(1, Relaxed),
            // Refused: no order row. A smaller order may still fit; this worker stops.
            Err(AtomicError::Insufficient { .. }) => {
                done.refused.fetch_add(1, Relaxed);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
    }
}
