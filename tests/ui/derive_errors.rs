//! Every mistake in a `#[derive(AtomicField)]` or `#[derive(CounterCache)]` is a compile error
//! that points at the offending attribute; `cases/*.stderr` pin the messages and their spans.
//! After changing a message on purpose: `TRYBUILD=overwrite cargo test -p counter-ui-tests`,
//! then read the diff.
#[test]
fn derive_errors_point_at_the_attribute() {
    let t = trybuild::TestCases::new();
    t.compile_fail("cases/*.rs");
}
