//! A blog's view and like counters: `cargo run -p counter-examples --bin blog_views`.
//!
//! Eight reader threads open articles, each view adding one to `views`; some readers like an
//! article, some take their like back. At the end the totals in the database are compared
//! with what the readers did: they are exact, with no lock held in the application and no
//! busy timeout set on SQLite.

use std::error::Error;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Instant;

use counter_core::{AtomicError, AtomicField, RetryPolicy};
use counter_examples::{SqlitePool, TempDb};
use diesel::prelude::*;

diesel::table! { articles (id) { id -> BigInt, title -> Text, views -> BigInt, likes -> Integer, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = articles)]
struct Article {
    id: i64,
    title: String,
    #[atomic]
    views: i64,
    /// A like taken back cannot make the count negative.
    #[atomic(min = 0)]
    likes: i32,
}

const TITLES: [&str; 4] = [
    "Why counters lose updates",
    "SQLite in WAL mode",
    "Row locks, briefly",
    "Hot rows and how to cool them",
];
const READERS: usize = 8;
const VISITS_PER_READER: usize = 500;

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let db = TempDb::new(READERS as u32 + 1)?;
    let mut conn = db.pool.get()?;
    diesel::sql_query(
        "CREATE TABLE articles (id BIGINT PRIMARY KEY, title TEXT NOT NULL, \
         views BIGINT NOT NULL DEFAULT 0, likes INTEGER NOT NULL DEFAULT 0)",
    )
    .execute(&mut conn)?;
    for (id, title) in (1..).zip(TITLES) {
        diesel::insert_into(articles::table)
            .values((articles::id.eq(id), articles::title.eq(title)))
            .execute(&mut conn)?;
    }

    // What the readers did, per article, counted in memory to check the database against.
    let done = Done {
        views: TITLES.iter().map(|_| AtomicI64::new(0)).collect(),
        likes: TITLES.iter().map(|_| AtomicI64::new(0)).collect(),
    };
    let (pool, done_ref) = (&db.pool, &done);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|reader| s.spawn(move || read_articles(pool, reader, done_ref)))
            .collect();
        // A reader's error ends the program with that error.
        readers
            .into_iter()
            .try_for_each(|reader| reader.join().expect("a reader panicked"))
    })?;

    let rows: Vec<Article> = articles::table
        .order(articles::id)
        .select(Article::as_select())
        .load(&mut conn)?;
    println!(
        "{READERS} readers x {VISITS_PER_READER} visits, finished in {:.1?}\n",
        started.elapsed()
    );
    println!(
        "{:<32}{:>8}{:>10}{:>8}{:>10}",
        "article", "views", "expected", "likes", "expected"
    );
    let mut exact = true;
    for (article, (views, likes)) in rows.iter().zip(done.views.iter().zip(&done.likes)) {
        let (views, likes) = (views.load(Relaxed), likes.load(Relaxed));
        exact &= article.views == views && i64::from(article.likes) == likes;
        println!(
            "{:<32}{:>8}{views:>10}{:>8}{likes:>10}",
            article.title, article.views, article.likes
        );
    }
    let total: i64 = rows.iter().map(|a| a.views).sum();
    println!("\ntotal views {total}, all counts exact: {exact}");
    assert!(exact, "a counter differs from what the readers did");
    Ok(())
}

/// Views and likes per article, as the readers saw them succeed.
struct Done {
    views: Vec<AtomicI64>,
    likes: Vec<AtomicI64>,
}

/// One reader (a request handler, say) with its own pooled connection.
fn read_articles(pool: &SqlitePool, reader: usize, done: &Done) -> Result<(), AtomicError> {
    let mut conn = pool.get().expect("a pooled connection");
    // Article 1 is the hot one: every reader opens it on every other visit. The default retry
    // policy (20 attempts) is plenty here; a handle shows how to give a hot column more.
    let views = Article::atomic_views().retry(RetryPolicy::DEFAULT.with_max_attempts(50));
    for visit in 0..VISITS_PER_READER {
        let index = match visit % 2 {
            0 => 0,
            _ => (reader + visit) % TITLES.len(),
        };
        let id = index as i64 + 1;

        // A page view: one `UPDATE articles SET views = views + 1 … RETURNING views`.
        views.increment(&mut conn, id, 1)?;
        done.views[index].fetch_add(1, Relaxed);

        match (reader + visit) % 7 {
            // A like.
            0 | 1 => {
                Article::increment_likes(&mut conn, id, 1)?;
                done.likes[index].fetch_add(1, Relaxed);
            }
            // A like taken back: `take_likes_up_to` takes 1 if there is one and returns 0 when
            // the count is already 0. Never negative, and no error to handle.
            2 => {
                let taken = Article::take_likes_up_to(&mut conn, id, 1)?;
                done.likes[index].fetch_sub(taken.into(), Relaxed);
            }
            _ => {}
        }
    }
    Ok(())
}
