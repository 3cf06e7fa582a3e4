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
fn add_to_cart_is_all_or_nothing() {
    let out = run(env!("CARGO_BIN_EXE_add_to_cart"));
    assert!(out.contains("add-to-cart exact: true"), "{out}");
    assert!(out.contains("= 200 (started at 200)"), "{out}");
}
