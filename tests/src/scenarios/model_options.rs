//! How a model and a call are configured: `#[diesel(column_name = ...)]` and an inferred
//! table name, and the `atomic_*()` handle's per-call retry and lock options.

use counter_core::{AtomicFieldOn, Limit, LockMode, RetryPolicy};

use super::assert::{insufficient, out_of_range};
use crate::client::Client;
use crate::db::{DbOf, TestDb};
use crate::models::{Account, CtWallet, Product};
use crate::schema::{ct_accounts, ct_products, ct_wallets};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! model_option_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            renamed_column_and_inferred_table,
            field_handle_with_options,
        );
    };
}

/// `#[diesel(column_name = ...)]` and an inferred table name reach the right column and table.
pub async fn renamed_column_and_inferred_table<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
    CtWallet: AtomicFieldOn<ct_wallets::coins, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    let acct = db.new_account(0);
    assert_eq!(
        C::done(Account::increment_balance(&mut conn, acct, 250))
            .await
            .unwrap(),
        250
    );
    assert_eq!(
        C::done(Account::decrement_balance(&mut conn, acct, 700))
            .await
            .unwrap(),
        -450
    );
    assert_eq!(
        out_of_range(C::done(Account::decrement_balance(&mut conn, acct, 51)).await),
        (-450, -501, Limit::Min(-500))
    );
    assert_eq!(db.account(acct), -450);
    assert_eq!(
        C::done(Account::atomic_balance().update_locked(&mut conn, acct, |v| Ok(v + 1)))
            .await
            .unwrap(),
        -449
    );
    assert_eq!(db.account(acct), -449);

    let w1 = db.new_wallet(90);
    let w2 = db.new_wallet(0);
    assert_eq!(
        C::done(CtWallet::increment_coins(&mut conn, w1, 10))
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        out_of_range(C::done(CtWallet::increment_coins(&mut conn, w1, 1)).await),
        (100, 101, Limit::Max(100))
    );
    assert_eq!(
        C::done(CtWallet::transfer_coins(&mut conn, w1, w2, 40))
            .await
            .unwrap(),
        (60, 40)
    );
    assert_eq!(
        C::done(CtWallet::take_coins_up_to(&mut conn, w2, 50))
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        C::done(CtWallet::decrement_coins_if_at_least(&mut conn, w1, 60))
            .await
            .unwrap(),
        0
    );
    assert_eq!((db.wallet(w1), db.wallet(w2)), (0, 0));
}

/// The `atomic_*()` handle with per-call options runs the same operations.
pub async fn field_handle_with_options<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let never = Product::atomic_stock().retry(RetryPolicy::NEVER);
    assert_eq!(C::done(never.increment(&mut conn, a, 5)).await.unwrap(), 15);
    assert_eq!(C::done(never.decrement(&mut conn, a, 1)).await.unwrap(), 14);
    assert_eq!(
        C::done(never.decrement_if_at_least(&mut conn, a, 4))
            .await
            .unwrap(),
        10
    );
    assert_eq!(C::done(never.take_up_to(&mut conn, a, 3)).await.unwrap(), 3);
    let nowait = Product::atomic_stock()
        .retry(RetryPolicy::DEFAULT.with_max_attempts(3))
        .lock(LockMode::NoWait);
    assert_eq!(
        C::done(nowait.update_locked(&mut conn, a, |v| Ok(v * 10)))
            .await
            .unwrap(),
        70
    );
    assert_eq!(
        C::done(nowait.transfer(&mut conn, a, b, 20)).await.unwrap(),
        (50, 30)
    );
    assert_eq!(
        insufficient(C::done(nowait.transfer(&mut conn, b, a, 31)).await),
        (30, 31)
    );
    assert_eq!(
        out_of_range(C::done(never.increment(&mut conn, a, 951)).await),
        (50, 1001, Limit::Max(1000))
    );
    assert_eq!((db.product(a), db.product(b)), ((50, 0), (30, 0)));
}
