//! Each example is also a test: it must run to the end and exit 0. The examples assert their
//! own results (no lost update, exact totals), so a regression in counter-core fails here.

use std::process::Command;

fn run(exe: &str) -> String {
    let out = Command::new(exe).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{exe} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart_shows_the_bug_and_the_fix() {
    let out = run(env!("CARGO_BIN_EXE_quickstart"));
    assert!(out.contains("increment_views lost 0"), "{out}");
    assert!(
        out.contains("decrement_stock_if_at_least sold 100"),
        "{out}"
    );
}

#[test]
fn shop_runs() {
    let out = run(env!("CARGO_BIN_EXE_shop"));
    assert!(
        out.contains("Bob buys 5 grinders: refused, only 3 available, 5 asked"),
        "{out}"
    );
    assert!(out.contains("Bob asks for up to 5: gets 3"), "{out}");
}

#[test]
fn blog_views_counts_exactly() {
    let out = run(env!("CARGO_BIN_EXE_blog_views"));
    assert!(out.contains("all counts exact: true"), "{out}");
}

#[test]
fn article_views_counter_caches_are_exact() {
    let out = run(env!("CARGO_BIN_EXE_article_views"));
    assert!(out.contains("counter caches exact: true"), "{out}");
    assert!(out.contains("views: 1600 counted, 160 deleted (160 second deletes found nothing): 1440 left, 1440 rows"), "{out}");
    assert!(out.contains("= 500 (started at 500)"), "{out}");
    assert!(out.contains("corrected 0 counters"), "{out}");
}

#[test]
fn ledger_keeps_every_cent() {
    let out = run(env!("CARGO_BIN_EXE_ledger"));
    assert!(out.contains("ledger exact: true"), "{out}");
    assert!(
        out.contains("accounts never stamped by a change: 0"),
        "{out}"
    );
}

#[test]
fn add_to_cart_is_all_or_nothing() {
    let out = run(env!("CARGO_BIN_EXE_add_to_cart"));
    assert!(out.contains("add-to-cart exact: true"), "{out}");
    assert!(out.contains("= 200 (started at 200)"), "{out}");
}

#[test]
fn pg_service_sells_the_stock_once_and_counts_every_view() {
    // Needs COUNTER_PG_URL and COUNTER_REDIS_URL (`source .ci/env.sh`), like the other
    // PostgreSQL tests of the suite.
    let out = run(env!("CARGO_BIN_EXE_pg_service"));
    assert!(out.contains("32 clients sent 4480 requests"), "{out}");
    assert!(
        out.contains("buy: 1000 sold, 280 refused; stock 0, sold column 1000 (started at 1000)"),
        "{out}"
    );
    assert!(
        out.contains("views: 3200 requests, 3200 in the row, 0 pending in Redis"),
        "{out}"
    );
    assert!(out.contains("pg_service exact: true"), "{out}");
}

#[test]
fn pg_service_names_the_variable_it_misses() {
    let out = Command::new(env!("CARGO_BIN_EXE_pg_service"))
        .env_remove("COUNTER_PG_URL")
        .output()
        .expect("the example starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("COUNTER_PG_URL is not set"), "{stderr}");
}
