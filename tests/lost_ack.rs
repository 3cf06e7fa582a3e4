//! A real lost acknowledgement: a TCP proxy on loopback between the library and PostgreSQL /
//! MariaDB forwards the client's `COMMIT`, lets the server commit, and cuts the connection
//! before the server's answer reaches the client. The client sees an error; the database has
//! the write.
//!
//! - With an idempotency key ([`Idempotent`]), the call sent again returns the first outcome
//!   and the row changed once.
//! - Without one, the outcome is what the docs call unknown: the write happened although the
//!   call failed, and sending it again writes it twice.
//! - Under a `Buffer` flush: the flush fails, the next flush writes the kept batch again under
//!   its id, and the flush ledger makes every count land exactly once (and without the ledger,
//!   twice: the window it closes).
//!
//! Blocking and diesel-async connections; the server from `COUNTER_PG_URL` /
//! `COUNTER_MYSQL_URL` (else a testcontainers container, else a failure naming both).

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{
    transaction, AtomicError, Buffer, FlushPolicy, Idempotent, RetryPolicy, UnknownKeys,
};
use counter_tests::models::Product;
use counter_tests::proxy::LossyProxy;
use counter_tests::{next_id, TestDb};
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::Connection;

/// A fresh idempotency key.
fn fresh_key(topic: &str) -> String {
    format!("lost-{topic}-{}-{}", next_id(), rand::random::<u64>())
}

/// The error of a call whose `COMMIT` answer was lost: the connection's, not a refusal.
fn assert_connection_lost<T: std::fmt::Debug>(result: Result<T, AtomicError>) {
    match result {
        Err(AtomicError::Database(_)) => {}
        other => panic!("expected the lost connection's error, got {other:?}"),
    }
}

macro_rules! lost_ack_tests {
    ($module:ident, $db:ty, $url:expr, $port:expr, $conn:ty, $async_conn:ty, $commit:expr) => {
        mod $module {
            use super::*;

            /// A proxy in front of the server, armed to lose the answer to the next `COMMIT`.
            /// Without TLS, so the proxy can read the `COMMIT` (libpq prefers TLS where the
            /// server offers it, as Debian's PostgreSQL does).
            fn proxy() -> (LossyProxy, String) {
                let (proxy, mut url) = LossyProxy::in_front_of($url, $port);
                if url.starts_with("postgres") {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("sslmode=disable");
                }
                proxy.lose_reply_to($commit);
                (proxy, url)
            }

            /// With a key: the call fails with the lost connection, the sale is in the
            /// database once, and the call sent again (on a new connection) returns the first
            /// outcome and sells nothing more.
            #[test]
            fn a_lost_commit_answer_with_a_key_is_applied_once() {
                let db = <$db>::open();
                let id = db.new_product(10, 0);
                let key = fresh_key("key");
                let (proxy, url) = proxy();
                let mut conn = <$conn>::establish(&url).unwrap();
                let order = Idempotent::key(&key);
                let sell = |c: &mut $conn| Product::decrement_stock_if_at_least(c, id, 3);
                assert_connection_lost(order.run(&mut conn, sell));
                assert_eq!(proxy.replies_lost(), 1);
                assert_eq!(db.product(id), (7, 0), "the COMMIT reached the server");
                let mut again = <$conn>::establish(&url).unwrap();
                for _ in 0..2 {
                    assert_eq!(order.run(&mut again, sell).unwrap(), 7);
                }
                assert_eq!(db.product(id), (7, 0));
            }

            /// Without a key: the call fails, yet the sale is in the database (the outcome the
            /// docs call unknown), and the same call sent again sells twice.
            #[test]
            fn a_lost_commit_answer_without_a_key_leaves_the_outcome_unknown() {
                let db = <$db>::open();
                let id = db.new_product(10, 0);
                let (proxy, url) = proxy();
                let mut conn = <$conn>::establish(&url).unwrap();
                let sell = |c: &mut $conn| Product::decrement_stock_if_at_least(c, id, 3);
                assert_connection_lost(transaction(&mut conn, RetryPolicy::DEFAULT, sell));
                assert_eq!(proxy.replies_lost(), 1);
                assert_eq!(db.product(id), (7, 0), "failed, yet applied");
                let mut again = <$conn>::establish(&url).unwrap();
                assert_eq!(
                    transaction(&mut again, RetryPolicy::DEFAULT, sell).unwrap(),
                    4
                );
                assert_eq!(db.product(id), (4, 0), "sent again: sold twice");
            }

            /// The same on diesel-async.
            #[test]
            fn a_lost_commit_answer_with_a_key_is_applied_once_async() {
                use diesel_async::AsyncConnection as _;
                let db = <$db>::open();
                let id = db.new_product(10, 0);
                let key = fresh_key("async");
                let (proxy, url) = proxy();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let order = Idempotent::key(&key);
                    let mut conn = <$async_conn>::establish(&url).await.unwrap();
                    let lost = order
                        .run_async(&mut conn, |c| {
                            async move { Product::decrement_stock_if_at_least(c, id, 3).await }
                                .scope_boxed()
                        })
                        .await;
                    assert_connection_lost(lost);
                    assert_eq!(proxy.replies_lost(), 1);
                    assert_eq!(db.product(id), (7, 0), "the COMMIT reached the server");
                    let mut again = <$async_conn>::establish(&url).await.unwrap();
                    for _ in 0..2 {
                        let left = order
                            .run_async(&mut again, |c| {
                                async move { Product::decrement_stock_if_at_least(c, id, 3).await }
                                    .scope_boxed()
                            })
                            .await;
                        assert_eq!(left.unwrap(), 7);
                    }
                });
                assert_eq!(db.product(id), (7, 0));
            }

            /// A buffer's flush whose `COMMIT` answer is lost: the flush fails and keeps its
            /// counts; the next flush writes the kept batch under its id, which the ledger
            /// refuses, and reports it written; every count is in its row once. Then a flush
            /// of new counts. Without the ledger the same sequence writes the batch twice.
            #[test]
            fn a_buffer_flush_whose_commit_answer_is_lost_writes_each_count_once() {
                for ledger in [true, false] {
                    let db = <$db>::open();
                    let ids = [
                        db.new_product(0, 0),
                        db.new_product(0, 0),
                        db.new_product(0, 0),
                    ];
                    let (proxy, url) = proxy();
                    let pool = Pool::builder()
                        .max_size(2)
                        .build(ConnectionManager::<$conn>::new(url))
                        .unwrap();
                    let policy = FlushPolicy {
                        ledger: ledger.then_some("counter_flushes"),
                        ..FlushPolicy::MANUAL
                    };
                    let sold =
                        Buffer::updating(pool, Product::atomic_sold(), UnknownKeys::Drop, policy);
                    for (i, id) in ids.iter().enumerate() {
                        for _ in 0..=i {
                            sold.add(*id, 1).unwrap();
                        }
                    }
                    // A key without a row: the first write reports it unknown and drops it;
                    // the flush that finds the batch in must report it the same way.
                    let missing = next_id();
                    sold.add(missing, 4).unwrap();
                    assert_connection_lost(sold.flush());
                    assert_eq!(proxy.replies_lost(), 1);
                    let rows = |db: &$db| ids.map(|id| db.product(id).1);
                    assert_eq!(rows(&db), [1, 2, 3], "the COMMIT reached the server");
                    assert_eq!(sold.pending(), 10, "a failed flush keeps its counts");
                    let report = sold.flush().unwrap();
                    if !ledger {
                        assert_eq!(rows(&db), [2, 4, 6], "without the ledger: written twice");
                        continue;
                    }
                    assert_eq!((report.written, report.counted), (3, 6));
                    assert_eq!(
                        report.unknown,
                        vec![(missing, 4)],
                        "as the first write found"
                    );
                    assert_eq!(rows(&db), [1, 2, 3], "written once");
                    assert_eq!(sold.pending(), 0);
                    sold.add(ids[0], 5).unwrap();
                    assert_eq!(sold.flush().unwrap().written, 1);
                    assert_eq!(rows(&db), [6, 2, 3]);
                    sold.shutdown().unwrap();
                }
            }
        }
    };
}

// `COMMIT` as each protocol sends it: PostgreSQL's simple query ends the text with a NUL (so
// `READ COMMITTED` in a `BEGIN` does not match); MySQL's `COM_QUERY` puts 0x03 before it.
lost_ack_tests!(
    postgres,
    counter_tests::Postgres,
    counter_tests::db::pg_url(),
    5432,
    diesel::PgConnection,
    diesel_async::AsyncPgConnection,
    b"COMMIT\0"
);
lost_ack_tests!(
    mysql,
    counter_tests::Mysql,
    counter_tests::db::mysql_url(),
    3306,
    diesel::MysqlConnection,
    diesel_async::AsyncMysqlConnection,
    b"\x03COMMIT"
);
