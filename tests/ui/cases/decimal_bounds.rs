use counter_core::Decimal;
use counter_derive::AtomicField;

type Money = Decimal<12, 2>;

#[derive(AtomicField)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: i64,
    // A third decimal the NUMERIC(12, 2) column cannot hold: refused, never rounded.
    #[atomic(min = "0.001")]
    pub balance: Decimal<12, 2>,
    // Past the precision: 10 digits before the point at most.
    #[atomic(max = "10000000000.00")]
    pub limit: Decimal<12, 2>,
    #[atomic(min = "1.50", max = "0.5")]
    pub swapped: Decimal<12, 2>,
    #[atomic(min = "1,5")]
    pub comma: Decimal<12, 2>,
    // A quoted bound on an integer field.
    #[atomic(min = "0")]
    pub cents: i64,
    // The derive reads the precision and scale from the type as written.
    #[atomic]
    pub aliased: Money,
    #[atomic]
    pub too_precise: Decimal<19, 2>,
}

fn main() {}
