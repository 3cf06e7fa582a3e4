#[test]
fn derive_errors_point_at_the_attribute() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
