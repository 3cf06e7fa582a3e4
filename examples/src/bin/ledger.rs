//! Balances in `NUMERIC(12, 2)`, moved by concurrent requests without losing a cent:
//! `cargo run -p counter-examples --bin ledger`.
//!
//! Sixteen workers (request handlers, each with its own pooled connection) run deposits,
//! guarded withdrawals and transfers of random cents over eight accounts on one SQLite file:
//! - a deposit is `increment_balance` and `set_largest_deposit_max`, the account's high-water
//!   mark of the largest deposit it received (`MAX(largest_deposit, ?)`, one statement);
//! - a withdrawal is `decrement_balance_if_at_least`: refused, not overdrawn, when the
//!   balance is short (`balance >= ?` in the `UPDATE`, never `if balance >= n` in the app);
//! - a transfer is `transfer_balance`: both rows or neither;
//! - every change of a balance stamps `updated_at` in the same statement.
//!
//! Amounts are `Decimal<12, 2>`: exact counts of cents, never floats. SQLite keeps a `NUMERIC`
//! column's decimals as doubles; counter-core rounds each computed value back to the cent in
//! the statement, so a thousand deposits of 0.10 are 100.00, not 99.99999999999986. At the end
//! every invariant is checked from the database, and the last line says whether all hold.

use std::error::Error;
use std::sync::Mutex;
use std::time::Instant;

use counter_core::{AtomicError, AtomicField, Decimal};
use counter_examples::{SqlitePool, TempDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::{Rng, SeedableRng};

diesel::table! {
    accounts (id) {
        id -> BigInt,
        owner -> Text,
        balance -> Numeric,
        largest_deposit -> Numeric,
        updated_at -> Nullable<Timestamp>,
    }
}

/// Money: a `NUMERIC(12, 2)` value, ±9,999,999,999.99.
type Money = Decimal<12, 2>;

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = accounts)]
struct Account {
    id: i64,
    owner: String,
    /// Never below 0.00, never above 1,000,000.00; each change stamps `updated_at`.
    #[atomic(min = "0.00", max = "1000000.00", touch = updated_at)]
    balance: Decimal<12, 2>,
    /// The largest deposit so far: only `set_largest_deposit_max` moves it.
    #[atomic(min = "0.00")]
    largest_deposit: Decimal<12, 2>,
}

const WORKERS: usize = 16;
const REQUESTS_PER_WORKER: usize = 200;
const ACCOUNTS: i64 = 8;
const OPENING: Money = Money::literal("100.00");

/// What the workers saw succeed, in cents.
#[derive(Default)]
struct Journal {
    deposited: i128,
    withdrawn: i128,
    transfers: usize,
    refused: usize,
    /// The largest deposit each account was acknowledged.
    largest: Vec<Money>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let db = TempDb::new(WORKERS as u32 + 1)?;
    let mut conn = db.pool.get()?;
    conn.batch_execute(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT NOT NULL,
             balance NUMERIC(12, 2) NOT NULL, largest_deposit NUMERIC(12, 2) NOT NULL,
             updated_at TEXT);",
    )?;
    for id in 1..=ACCOUNTS {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(id),
                accounts::owner.eq(format!("owner {id}")),
                accounts::balance.eq(OPENING),
                accounts::largest_deposit.eq(Money::ZERO),
            ))
            .execute(&mut conn)?;
    }

    let journal = Mutex::new(Journal {
        largest: vec![Money::ZERO; ACCOUNTS as usize + 1],
        ..Journal::default()
    });
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let (pool, journal) = (&db.pool, &journal);
                s.spawn(move || work(pool, worker, journal))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;
    let journal = journal.into_inner()?;

    println!(
        "{WORKERS} workers x {REQUESTS_PER_WORKER} requests on {ACCOUNTS} accounts, finished in {:.1?}\n",
        started.elapsed()
    );
    let accounts: Vec<Account> = accounts::table
        .order(accounts::id)
        .select(Account::as_select())
        .load(&mut conn)?;
    let mut exact = true;
    for account in &accounts {
        let mark_ok = account.largest_deposit == journal.largest[account.id as usize];
        exact &= mark_ok && account.balance >= Money::ZERO;
        println!(
            "{}: balance {:>9}, largest deposit {:>6} ({})",
            account.owner,
            account.balance,
            account.largest_deposit,
            if mark_ok { "as acknowledged" } else { "WRONG" }
        );
    }
    let total: i128 = accounts.iter().map(|a| a.balance.units()).sum();
    let expected = OPENING.units() * i128::from(ACCOUNTS) + journal.deposited - journal.withdrawn;
    exact &= total == expected;
    let cents = |units: i128| Money::from_units(units).expect("within NUMERIC(12, 2)");
    println!(
        "\nopening {} + deposits {} - withdrawals {} = {} ; the balances sum to {}",
        cents(OPENING.units() * i128::from(ACCOUNTS)),
        cents(journal.deposited),
        cents(journal.withdrawn),
        cents(expected),
        cents(total)
    );
    println!(
        "{} transfers moved money without creating or losing any; {} withdrawals and transfers \
         refused for want of funds, none overdrawn",
        journal.transfers, journal.refused
    );
    let unstamped: i64 = accounts::table
        .filter(accounts::updated_at.is_null())
        .count()
        .get_result(&mut conn)?;
    exact &= unstamped == 0;
    println!("accounts never stamped by a change: {unstamped}");
    println!("\nledger exact: {exact}");
    assert!(exact, "an invariant of the ledger does not hold");
    Ok(())
}

/// One worker: random deposits, withdrawals and transfers of 0.01 to 50.00.
fn work(pool: &SqlitePool, worker: usize, journal: &Mutex<Journal>) -> Result<(), AtomicError> {
    let mut conn = pool.get().expect("a pooled connection");
    let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
    for _ in 0..REQUESTS_PER_WORKER {
        let id = rng.random_range(1..=ACCOUNTS);
        let amount = Money::from_units(rng.random_range(1..=5_000)).expect("at most 50.00");
        match rng.random_range(0..3) {
            0 => {
                Account::increment_balance(&mut conn, id, amount)?;
                Account::set_largest_deposit_max(&mut conn, id, amount)?;
                let mut journal = journal.lock().expect("journal");
                journal.deposited += amount.units();
                let mark = &mut journal.largest[id as usize];
                *mark = (*mark).max(amount);
            }
            1 => match Account::decrement_balance_if_at_least(&mut conn, id, amount) {
                Ok(_) => journal.lock().expect("journal").withdrawn += amount.units(),
                Err(AtomicError::Insufficient { .. }) => {
                    journal.lock().expect("journal").refused += 1
                }
                Err(other) => return Err(other),
            },
            _ => {
                let to = 1 + id % ACCOUNTS;
                match Account::transfer_balance(&mut conn, id, to, amount) {
                    Ok(_) => journal.lock().expect("journal").transfers += 1,
                    Err(AtomicError::Insufficient { .. }) => {
                        journal.lock().expect("journal").refused += 1
                    }
                    Err(other) => return Err(other),
                }
            }
        }
    }
    Ok(())
}
