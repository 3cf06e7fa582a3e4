//! `Idempotent`: a call with a key of the caller's applies once, and every call with the key
//! returns the first call's outcome, its value or its refusal.

use std::sync::Mutex;

use counter_core::{
    AtomicError, AtomicFieldOn, ChangeColumn, Changes, CounterCacheOn, Idempotent, RetryPolicy,
    UpsertRow,
};
use rand::Rng;

use super::harness::{beside_busy_threads, Sale, BUSY_THREADS, KEYED_THREADS};
use crate::assert_err;
use crate::client::{on_n_workers, Client, TransactionMode};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, NewCartLine, NewOrder, Product};
use crate::schema::{ct_cart_lines, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! idempotent_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            a_key_applies_once_and_replays_its_outcome,
            a_key_covers_any_operation,
            a_key_covers_counted_inserts_and_sets,
            what_is_not_recorded_leaves_the_key_free,
            one_key_sent_by_every_worker_at_once_applies_once,
            idempotent_storm_applies_each_key_once,
        );
    };
}

/// A fresh key, unique across runs and tests.
pub fn fresh_key(topic: &str) -> String {
    format!("{topic}-{}-{}", next_id(), rand::rng().random::<u64>())
}

/// The sale of `n` as one statement: stock down if enough, sold up.
fn sale(n: i32) -> Sale {
    (
        ct_products::stock.decrement_if_at_least(n),
        ct_products::sold.increment(i64::from(n)),
    )
}

/// The first call with a key applies; calls with it again return the same value and change
/// nothing; a refusal is an outcome too, returned again even once the data would allow the
/// call; a key reused for another request is refused; keys are exact (case matters).
pub async fn a_key_applies_once_and_replays_its_outcome<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let conn = &mut client.conn().await;
    let key = fresh_key("sell");
    for _ in 0..3 {
        let left = C::once(conn, Idempotent::key(&key), async |c| {
            C::done(Product::decrement_stock_if_at_least(c, id, 4)).await
        })
        .await;
        assert_eq!(left.unwrap(), 6);
        assert_eq!(db.product(id), (6, 0));
    }

    // A refusal is recorded and returned again, even after a restock.
    let big = fresh_key("big");
    let sell_50 =
        async |c: &mut C::Raw| C::done(Product::decrement_stock_if_at_least(c, id, 50)).await;
    assert_err!(
        C::once(conn, Idempotent::key(&big), sell_50).await,
        AtomicError::Insufficient {
            available: 6,
            requested: 50
        }
    );
    C::done(Product::increment_stock(conn, id, 100))
        .await
        .unwrap();
    assert_err!(
        C::once(conn, Idempotent::key(&big), sell_50).await,
        AtomicError::Insufficient {
            available: 6,
            requested: 50
        }
    );
    assert_eq!(db.product(id), (106, 0));

    // A key recorded with one request, sent with another: refused, nothing runs.
    let named = fresh_key("named");
    let once = Idempotent::key(&named).request("sell 1");
    let sell_1 =
        async |c: &mut C::Raw| C::done(Product::decrement_stock_if_at_least(c, id, 1)).await;
    assert_eq!(C::once(conn, once, sell_1).await.unwrap(), 105);
    assert_eq!(C::once(conn, once, sell_1).await.unwrap(), 105);
    let other = Idempotent::key(&named).request("sell 2");
    match C::once(conn, other, sell_1).await {
        Err(AtomicError::KeyReused { key, recorded }) => {
            assert_eq!(
                (key.as_str(), recorded.as_str()),
                (named.as_str(), "sell 1")
            )
        }
        other => panic!("expected KeyReused, got {other:?}"),
    }
    assert_eq!(db.product(id), (105, 0));

    // Keys are exact: another case is another key (the documented DDL has a binary collation).
    let upper = named.to_uppercase();
    assert_eq!(
        C::once(conn, Idempotent::key(&upper), sell_1)
            .await
            .unwrap(),
        104
    );
    assert_eq!(db.product(id), (104, 0));
}

/// One key around any operation and around several: `update_atomic`, a transfer, an
/// increment-or-insert, and two operations of which the second refuses (the first is undone,
/// the refusal recorded).
pub async fn a_key_covers_any_operation<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_product(10, 0), db.new_product(0, 0));
    let conn = &mut client.conn().await;

    let update = fresh_key("update");
    for _ in 0..2 {
        let sold = C::once(conn, Idempotent::key(&update), async |c| {
            C::done(Product::update_atomic(c, a, sale(2))).await
        });
        assert_eq!(sold.await.unwrap(), (8, 2));
    }
    assert_eq!(db.product(a), (8, 2));

    let transfer = fresh_key("transfer");
    for _ in 0..2 {
        let moved = C::once(conn, Idempotent::key(&transfer), async |c| {
            C::done(Product::transfer_stock(c, a, b, 3)).await
        });
        assert_eq!(moved.await.unwrap(), (5, 3));
    }
    assert_eq!((db.product(a).0, db.product(b).0), (5, 3));

    let (cart, product) = (next_id(), next_id());
    let line = NewCartLine {
        cart_id: cart,
        product_id: product,
        quantity: 3,
    };
    let add = fresh_key("cart");
    for _ in 0..2 {
        let added = C::once(conn, Idempotent::key(&add), async |c| {
            C::done(CartLine::increment_quantity_or_insert(c, &line, 3)).await
        });
        assert_eq!(added.await.unwrap(), 3);
    }
    let quantity = C::done(CartLine::current_quantity(conn, (cart, product))).await;
    assert_eq!(quantity.unwrap(), 3);

    // Two operations under one key, the second refused: nothing of the first stays.
    let both = fresh_key("both");
    for _ in 0..2 {
        let refused = C::once(conn, Idempotent::key(&both), async |c| {
            C::done(Product::increment_sold(c, a, 5)).await?;
            C::done(Product::decrement_stock_if_at_least(c, a, 1000)).await
        });
        assert_err!(
            refused.await,
            AtomicError::Insufficient {
                available: 5,
                requested: 1000
            }
        );
        assert_eq!(db.product(a), (5, 2));
    }
}

/// A counted insert (an order and its product's stock) and a set operation, each under a key:
/// one order row and one decrement, one restock of both rows, however often they are sent.
pub async fn a_key_covers_counted_inserts_and_sets<C: Client>(client: &C)
where
    NewOrder: CounterCacheOn<ct_products::stock, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_product(5, 0), db.new_product(5, 0));
    let conn = &mut client.conn().await;
    let order = fresh_key("order");
    let mut first = None;
    for _ in 0..3 {
        let placed = C::once(conn, Idempotent::key(&order), async |c| {
            let row = NewOrder {
                product_id: a,
                quantity: 2,
                note: None,
            };
            C::done(row.insert_counted(c)).await
        });
        let placed = placed.await.unwrap();
        assert_eq!(placed.parent, 3);
        assert_eq!(*first.get_or_insert(placed.key), placed.key);
    }
    assert_eq!(db.order_quantities(a), vec![2]);
    assert_eq!(db.product(a).0, 3);

    let restock = fresh_key("restock");
    for _ in 0..2 {
        let values = C::once(conn, Idempotent::key(&restock), async |c| {
            C::done(Product::increment_stock_many(c, [(a, 1), (b, 2)])).await
        });
        assert_eq!(values.await.unwrap(), [(a, 4), (b, 7)]);
    }
    assert_eq!((db.product(a).0, db.product(b).0), (4, 7));
}

/// What records nothing: an error that is not a refusal (the key stays free and the next
/// call runs), a transaction of the caller's rolled back around the call, a key no ledger
/// holds.
pub async fn what_is_not_recorded_leaves_the_key_free<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let conn = &mut client.conn().await;

    let key = fresh_key("custom");
    let failed = C::once(conn, Idempotent::key(&key), async |c| {
        C::done(Product::increment_sold(c, id, 1)).await?;
        Err::<i64, _>(AtomicError::custom("the caller's own failure"))
    });
    assert_err!(failed.await, AtomicError::Custom(_));
    assert_eq!(db.product(id), (10, 0));
    for _ in 0..2 {
        let sold = C::once(conn, Idempotent::key(&key), async |c| {
            C::done(Product::increment_sold(c, id, 1)).await
        });
        assert_eq!(sold.await.unwrap(), 1);
    }
    assert_eq!(db.product(id), (10, 1));

    // Inside the caller's transaction, which then rolls back: the key goes with it.
    let inner = fresh_key("inner");
    let rolled_back = C::own_transaction(&mut **conn, async |c| {
        let sold = C::Mode::once(c, Idempotent::key(&inner), async |c| {
            C::done(Product::increment_sold(c, id, 10)).await
        })
        .await?;
        assert_eq!(sold, 11);
        Err::<(), _>(AtomicError::custom("roll back"))
    });
    assert_err!(rolled_back.await, AtomicError::Custom(_));
    assert_eq!(db.product(id), (10, 1));
    let sold = C::once(conn, Idempotent::key(&inner), async |c| {
        C::done(Product::increment_sold(c, id, 10)).await
    });
    assert_eq!(sold.await.unwrap(), 11);

    // Keys no ledger column holds: refused before anything runs.
    for bad in [String::new(), "k".repeat(counter_core::MAX_KEY_BYTES + 1)] {
        let refused = C::once(conn, Idempotent::key(&bad), async |c| {
            C::done(Product::increment_sold(c, id, 1)).await
        });
        assert_err!(refused.await, AtomicError::Custom(_));
    }
    assert_eq!(db.product(id), (10, 11));
}

/// Every worker sends the same key at the same instant, round after round, beside CPU-bound
/// threads: each round applies once, and every worker gets its value.
pub async fn one_key_sent_by_every_worker_at_once_applies_once<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    const ROUNDS: i32 = 12;
    let db = client.db();
    let id = db.new_product(1000, 0);
    beside_busy_threads(BUSY_THREADS, || {
        for round in 1..=ROUNDS {
            let key = fresh_key("together");
            let answers = on_n_workers(client, KEYED_THREADS, async |_, conn| {
                // The default policy: the calls that find the key wait for it, they do not
                // deadlock on it (MySQL: a shared lock after `INSERT IGNORE`, not `FOR UPDATE`).
                let once = Idempotent::key(&key);
                C::once(conn, once, async |c| {
                    C::done(Product::decrement_stock_if_at_least(c, id, 3)).await
                })
                .await
            });
            for answer in answers {
                assert_eq!(answer.unwrap(), 1000 - 3 * round, "round {round}");
            }
            assert_eq!(db.product(id).0, 1000 - 3 * round, "round {round}");
        }
    });
}

/// A storm call's key, amount, and first answer: the new `(stock, sold)` or the refusal.
type Answer = (String, i32, Result<(i32, i64), String>);

/// 16 workers beside CPU-bound threads: each call is a new key selling 1 to 3 (both columns,
/// one statement) or the replay of a key another worker already has an answer for. Every
/// replay returns that answer; stock and sold move by exactly the sales of the new keys that
/// were not refused; no two first answers share a stock level.
pub async fn idempotent_storm_applies_each_key_once<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
{
    const CALLS: usize = 30;
    const STOCK: i32 = 300;
    let db = client.db();
    let id = db.new_product(STOCK, 0);
    let answered: Mutex<Vec<Answer>> = Mutex::new(Vec::new());
    let patient = RetryPolicy::DEFAULT.with_max_attempts(200);
    let replays = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |_, conn| {
            let mut replays = 0;
            for _ in 0..CALLS {
                let earlier = {
                    let answered = answered.lock().unwrap();
                    let mut rng = rand::rng();
                    (!answered.is_empty() && rng.random_bool(0.4))
                        .then(|| answered[rng.random_range(0..answered.len())].clone())
                };
                let (key, n) = match &earlier {
                    Some((key, n, _)) => (key.clone(), *n),
                    None => (fresh_key("storm"), rand::rng().random_range(1..=3)),
                };
                let got = C::once(conn, Idempotent::key(&key).retry(patient), async |c| {
                    C::done(Product::update_atomic(c, id, sale(n))).await
                })
                .await;
                let got = match got {
                    Ok(values) => Ok(values),
                    Err(refused @ AtomicError::InColumn { .. }) => Err(refused.to_string()),
                    Err(other) => panic!("key {key}: {other:?}"),
                };
                match earlier {
                    Some((_, _, first)) => {
                        assert_eq!(got, first, "a replay of {key} answered otherwise");
                        replays += 1;
                    }
                    None => answered.lock().unwrap().push((key, n, got)),
                }
            }
            replays
        })
    });
    let answered = answered.into_inner().unwrap();
    let sold: i64 = answered
        .iter()
        .filter(|(_, _, got)| got.is_ok())
        .map(|(_, n, _)| i64::from(*n))
        .sum();
    assert!(replays.iter().sum::<usize>() > 0, "no replay ran");
    assert!(
        answered.iter().any(|(_, _, got)| got.is_err()),
        "the stock never ran out: no refusal was replayed"
    );
    assert_eq!(db.product(id), (STOCK - sold as i32, sold));
    let mut levels: Vec<i32> = answered
        .iter()
        .filter_map(|(_, _, got)| got.as_ref().ok().map(|(stock, _)| *stock))
        .collect();
    let count = levels.len();
    levels.sort_unstable();
    levels.dedup();
    assert_eq!(
        levels.len(),
        count,
        "two sales answered the same stock level"
    );
}
