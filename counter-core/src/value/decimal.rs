//! `Decimal<P, S>`: a `NUMERIC(P, S)` column's value, held exactly as an integer count of
//! `10^-S` units, so every operation of an integer counter works on balances unchanged.
//!
//! Why a fixed-point type and not `BigDecimal` itself: the statements compute every bound in
//! Rust before any SQL runs (see `plan`), which needs a `Copy + Ord` value with a known range,
//! and the range of a `NUMERIC(12, 2)` column, `±9,999,999,999.99`, is only known from its
//! precision and scale, which Diesel's `table!` does not carry. The type carries them:
//! `Decimal<12, 2>` is a `NUMERIC(12, 2)` / `DECIMAL(12, 2)` column. A result the column cannot
//! hold is refused by the same range check an `i32` counter gets (`OutOfRange`), before the
//! database sees it. Converting from [`BigDecimal`] is exact or refused: an amount with more
//! decimals than the scale is [`DecimalError::Scale`], never rounded.
//!
//! On the wire it is Diesel's `Numeric`: PostgreSQL and MySQL compute in exact decimal
//! arithmetic. SQLite has no decimal type (a `NUMERIC` column stores a REAL): values travel as
//! the nearest double, every statement that computes a new value rounds it back to the scale
//! in SQL (`ROUND(c + ?, S)`, see `Dialect::FLOAT_NUMERIC`), and a read rounds to the scale, so
//! the value stays exact up to 15 digits: on SQLite a `Decimal<P, S>` with `P > 15` does not
//! build (a double cannot tell 16-digit neighbours apart).

use std::fmt::{self, Debug, Display};
use std::str::FromStr;

use bigdecimal::num_bigint::BigInt;
use bigdecimal::{BigDecimal, Zero};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, ToSql};
use diesel::sql_types::Numeric;

/// An exact decimal of at most `P` digits, `S` of them after the point: the value of a
/// `NUMERIC(P, S)` column. `P` is at most 18 (the value travels as a 64-bit integer where a
/// statement must capture it on MySQL), `S` at most `P`.
///
/// ```
/// use counter_core::Decimal;
/// type Money = Decimal<12, 2>;
/// let price: Money = "19.90".parse().unwrap();
/// assert_eq!(price.units(), 1990);
/// assert_eq!(price.to_string(), "19.90");
/// assert_eq!(Money::literal("0.5"), Money::from_units(50).unwrap());
/// // More decimals than the scale: refused, never rounded.
/// assert!("0.125".parse::<Money>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, AsExpression, FromSqlRow)]
#[diesel(sql_type = Numeric)]
pub struct Decimal<const P: u32, const S: u32> {
    units: i128,
}

/// Why a text or a [`BigDecimal`] is not a `Decimal<P, S>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// More digits after the point than the column's scale: rounding it would change the
    /// amount, so it is refused.
    #[error("`{value}` has more than {scale} decimals, the column's scale")]
    Scale {
        /// The value as given.
        value: String,
        /// The column's scale.
        scale: u32,
    },
    /// More digits than the column's precision holds.
    #[error("`{value}` does not fit NUMERIC({precision}, {scale})")]
    Precision {
        /// The value as given.
        value: String,
        /// The column's precision.
        precision: u32,
        /// The column's scale.
        scale: u32,
    },
    /// Not a decimal number (`12`, `-0.50`, `+3.1`).
    #[error("`{0}` is not a decimal number")]
    Syntax(String),
}

/// `10^n` for `n <= 38`.
pub(crate) const fn pow10(n: u32) -> i128 {
    let mut out = 1i128;
    let mut i = 0;
    while i < n {
        out *= 10;
        i += 1;
    }
    out
}

impl<const P: u32, const S: u32> Decimal<P, S> {
    /// Checked once per type: a `Decimal<19, 2>` or `Decimal<4, 6>` does not compile.
    const VALID: () = assert!(
        P >= 1 && P <= 18 && S <= P,
        "Decimal<P, S> needs 1 <= P <= 18 and S <= P"
    );
    /// The largest value, `10^P - 1` units (`9999999999.99` for `Decimal<12, 2>`).
    pub const MAX: Self = Self::unchecked(pow10(P) - 1);
    /// The smallest value, `-MAX`.
    pub const MIN: Self = Self::unchecked(1 - pow10(P));
    /// Zero.
    pub const ZERO: Self = Self::unchecked(0);
    /// `10^S`: units per whole.
    const ONE: i128 = pow10(S);

    const fn unchecked(units: i128) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        Decimal { units }
    }

    /// The value of `units` hundredths (for scale 2; `10^-S` in general), or `None` past the
    /// precision.
    pub const fn from_units(units: i128) -> Option<Self> {
        if units > Self::MAX.units || units < Self::MIN.units {
            None
        } else {
            Some(Self::unchecked(units))
        }
    }

    /// The value as a count of `10^-S` units: `12.50` is `1250` in a `Decimal<_, 2>`.
    pub const fn units(self) -> i128 {
        self.units
    }

    /// Parses a literal at compile time, `const FEE: Money = Money::literal("0.25");`: a text
    /// that is not a decimal, or does not fit, stops the build. At run time use `parse`.
    pub const fn literal(text: &str) -> Self {
        match parse_units(text.as_bytes(), S, pow10(P) - 1) {
            Ok(units) => Self::unchecked(units),
            Err(Fault::Syntax) => panic!("not a decimal number"),
            Err(Fault::Scale) => panic!("more decimals than the scale S"),
            Err(Fault::Precision) => panic!("more digits than the precision P"),
        }
    }

    /// The nearest `f64` (exact for at most 15 digits): how SQLite stores it.
    #[cfg(feature = "sqlite")]
    fn to_f64_exact(self) -> Option<f64> {
        (self.units.unsigned_abs() < F64_EXACT).then(|| self.units as f64 / Self::ONE as f64)
    }

    /// The value nearest to `x` at this scale, if `x` is within the doubles that round-trip.
    #[cfg(feature = "sqlite")]
    fn from_f64_rounded(x: f64) -> Option<Self> {
        let scaled = (x * Self::ONE as f64).round();
        if !scaled.is_finite() || scaled.abs() >= F64_EXACT as f64 {
            return None;
        }
        Self::from_units(scaled as i128)
    }

    fn fault(self_text: String, fault: Fault) -> DecimalError {
        match fault {
            Fault::Syntax => DecimalError::Syntax(self_text),
            Fault::Scale => DecimalError::Scale {
                value: self_text,
                scale: S,
            },
            Fault::Precision => DecimalError::Precision {
                value: self_text,
                precision: P,
                scale: S,
            },
        }
    }
}

/// A `Decimal` bound the derive checked against the field's precision and scale:
/// `#[atomic(min = "0.00")]` becomes `Some(decimal_bound(0))`, a constant.
#[doc(hidden)]
pub const fn decimal_bound<const P: u32, const S: u32>(units: i128) -> Decimal<P, S> {
    match Decimal::from_units(units) {
        Some(value) => value,
        None => panic!("the derive checked this bound against Decimal<P, S>"),
    }
}

/// `10^15`: below it, every count of units is the nearest double's only decimal of that scale
/// (15 significant digits; a double tells 16-digit neighbours apart only up to 2^53 / 10).
#[cfg(feature = "sqlite")]
const F64_EXACT: u128 = 1_000_000_000_000_000;

/// Why `parse_units` refused (a `const fn` cannot build a `String`).
enum Fault {
    Syntax,
    Scale,
    Precision,
}

/// `[+-]digits[.digits]` as a count of `10^-scale` units, at most `limit` in magnitude.
/// Trailing zeros past the scale are accepted (`1.500` is a `Decimal<_, 2>`); other digits
/// past it are refused.
const fn parse_units(text: &[u8], scale: u32, limit: i128) -> Result<i128, Fault> {
    let mut i = 0;
    let negative = !text.is_empty() && text[0] == b'-';
    if !text.is_empty() && (text[0] == b'-' || text[0] == b'+') {
        i = 1;
    }
    let mut units: i128 = 0;
    let mut digits = 0;
    let mut decimals: u32 = 0;
    let mut point = false;
    let mut past_scale = false;
    while i < text.len() {
        let byte = text[i];
        if byte == b'.' {
            if point {
                return Err(Fault::Syntax);
            }
            point = true;
        } else if byte.is_ascii_digit() {
            digits += 1;
            let digit = (byte - b'0') as i128;
            if point && decimals >= scale {
                if digit != 0 {
                    past_scale = true;
                }
            } else {
                if point {
                    decimals += 1;
                }
                units = units * 10 + digit;
                if units > limit {
                    return Err(Fault::Precision);
                }
            }
        } else {
            return Err(Fault::Syntax);
        }
        i += 1;
    }
    if digits == 0 {
        return Err(Fault::Syntax);
    }
    if past_scale {
        return Err(Fault::Scale);
    }
    while decimals < scale {
        units *= 10;
        if units > limit {
            return Err(Fault::Precision);
        }
        decimals += 1;
    }
    Ok(if negative { -units } else { units })
}

impl<const P: u32, const S: u32> FromStr for Decimal<P, S> {
    type Err = DecimalError;

    fn from_str(text: &str) -> Result<Self, DecimalError> {
        parse_units(text.as_bytes(), S, Self::MAX.units)
            .map(Self::unchecked)
            .map_err(|fault| Self::fault(text.to_owned(), fault))
    }
}

impl<const P: u32, const S: u32> Display for Decimal<P, S> {
    /// `-12.50`: every decimal of the scale; width and alignment apply (`{:>9}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        let one = Self::ONE as u128;
        let text = if S == 0 {
            format!("{sign}{abs}")
        } else {
            format!(
                "{sign}{}.{:0width$}",
                abs / one,
                abs % one,
                width = S as usize
            )
        };
        // Width, fill and alignment apply (right-aligned, as numbers); a precision does not
        // cut the text (`{:.2}` of 12.50 stays "12.50": `pad` would print "12").
        let Some(width) = f.width() else {
            return f.write_str(&text);
        };
        let pad = width.saturating_sub(text.chars().count());
        let (before, after) = match f.align() {
            Some(fmt::Alignment::Left) => (0, pad),
            Some(fmt::Alignment::Center) => (pad / 2, pad - pad / 2),
            Some(fmt::Alignment::Right) | None => (pad, 0),
        };
        let fill = f.fill();
        for _ in 0..before {
            write!(f, "{fill}")?;
        }
        f.write_str(&text)?;
        for _ in 0..after {
            write!(f, "{fill}")?;
        }
        Ok(())
    }
}

impl<const P: u32, const S: u32> Debug for Decimal<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

impl<const P: u32, const S: u32> From<Decimal<P, S>> for BigDecimal {
    fn from(value: Decimal<P, S>) -> BigDecimal {
        BigDecimal::new(BigInt::from(value.units), i64::from(S))
    }
}

impl<const P: u32, const S: u32> TryFrom<&BigDecimal> for Decimal<P, S> {
    type Error = DecimalError;

    /// Exact or refused: more decimals than `S` (other than trailing zeros) is
    /// [`DecimalError::Scale`], more digits than `P` [`DecimalError::Precision`].
    fn try_from(value: &BigDecimal) -> Result<Self, DecimalError> {
        if value.is_zero() {
            return Ok(Self::ZERO);
        }
        // Refused from the digit count first: rescaling `1e999999999` would build a number of
        // a billion digits. `value` is `digits` digits times 10^-scale.
        let (digits, scale) = (
            i128::from(value.digits()),
            i128::from(value.fractional_digit_count()),
        );
        if digits - scale > i128::from(P - S) {
            return Err(Self::fault(value.to_string(), Fault::Precision));
        }
        if scale - i128::from(S) >= digits {
            // It would need at least `digits` trailing zeros past the scale: a nonzero cannot.
            return Err(Self::fault(value.to_string(), Fault::Scale));
        }
        let scaled = value.with_scale(i64::from(S));
        if &scaled != value {
            return Err(Self::fault(value.to_string(), Fault::Scale));
        }
        let (units, _) = scaled.into_bigint_and_exponent();
        i128::try_from(units)
            .ok()
            .and_then(Self::from_units)
            .ok_or_else(|| Self::fault(value.to_string(), Fault::Precision))
    }
}

impl<const P: u32, const S: u32> TryFrom<BigDecimal> for Decimal<P, S> {
    type Error = DecimalError;

    fn try_from(value: BigDecimal) -> Result<Self, DecimalError> {
        Self::try_from(&value)
    }
}

/// An idempotent call's recorded answer: the decimal's text, read back exactly.
impl<const P: u32, const S: u32> crate::Outcome for Decimal<P, S> {
    fn write(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }

    fn read(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl<const P: u32, const S: u32> crate::AtomicValue for Decimal<P, S> {
    type SqlType = Numeric;
    const MIN: Self = Self::MIN;
    const MAX: Self = Self::MAX;
    const ZERO: Self = Self::ZERO;
    const SCALE: u32 = S;
    const PRECISION: Option<u32> = Some(P);

    fn to_i128(self) -> i128 {
        self.units
    }

    fn from_i128(v: i128) -> Option<Self> {
        Self::from_units(v)
    }
}

/// A value read back from the database that this type cannot hold exactly.
fn not_exact<const P: u32, const S: u32>(
    found: impl Display,
) -> Box<dyn std::error::Error + Send + Sync> {
    format!("the database returned {found}, which is not a NUMERIC({P}, {S}) value").into()
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use diesel::pg::{Pg, PgValue};

    impl<const P: u32, const S: u32> ToSql<Numeric, Pg> for Decimal<P, S> {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Pg>) -> serialize::Result {
            let exact = BigDecimal::from(*self);
            <BigDecimal as ToSql<Numeric, Pg>>::to_sql(&exact, &mut out.reborrow())
        }
    }

    impl<const P: u32, const S: u32> FromSql<Numeric, Pg> for Decimal<P, S> {
        fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
            let exact = <BigDecimal as FromSql<Numeric, Pg>>::from_sql(value)?;
            Self::try_from(&exact).map_err(|_| not_exact::<P, S>(exact))
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use diesel::mysql::{Mysql, MysqlValue};
    use std::io::Write;

    /// The text `-12.50`, which MySQL parses as an exact `DECIMAL` parameter.
    impl<const P: u32, const S: u32> ToSql<Numeric, Mysql> for Decimal<P, S> {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Mysql>) -> serialize::Result {
            write!(out, "{self}")?;
            Ok(serialize::IsNull::No)
        }
    }

    impl<const P: u32, const S: u32> FromSql<Numeric, Mysql> for Decimal<P, S> {
        fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
            let exact = <BigDecimal as FromSql<Numeric, Mysql>>::from_sql(value)?;
            Self::try_from(&exact).map_err(|_| not_exact::<P, S>(exact))
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use diesel::sql_types::Double;
    use diesel::sqlite::{Sqlite, SqliteValue};

    impl<const P: u32, const S: u32> Decimal<P, S> {
        /// Evaluated when a program that sends or reads this type on SQLite is built: 16
        /// digits are not exact in a double.
        const ON_SQLITE: () = assert!(
            P <= 15,
            "on SQLite a Decimal holds at most 15 digits (Decimal<15, S>): the column stores a \
             double, which cannot tell 16-digit neighbours apart"
        );
    }

    /// The nearest double: SQLite stores a `NUMERIC` column's decimals as REAL.
    impl<const P: u32, const S: u32> ToSql<Numeric, Sqlite> for Decimal<P, S> {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Sqlite>) -> serialize::Result {
            #[allow(clippy::let_unit_value)]
            let () = Decimal::<P, S>::ON_SQLITE;
            let x = self.to_f64_exact().ok_or_else(|| {
                format!("{self} has more than 15 digits, past what SQLite holds exactly")
            })?;
            out.set_value(x);
            Ok(serialize::IsNull::No)
        }
    }

    /// The stored double rounded to the scale: exact for every value `to_sql` sends.
    impl<const P: u32, const S: u32> FromSql<Numeric, Sqlite> for Decimal<P, S> {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            #[allow(clippy::let_unit_value)]
            let () = Decimal::<P, S>::ON_SQLITE;
            let x = <f64 as FromSql<Double, Sqlite>>::from_sql(value)?;
            Self::from_f64_rounded(x).ok_or_else(|| not_exact::<P, S>(x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Money = Decimal<12, 2>;

    #[test]
    fn parses_exactly_or_refuses() {
        assert_eq!("12.5".parse::<Money>().unwrap().units(), 1250);
        assert_eq!("-0.01".parse::<Money>().unwrap().units(), -1);
        assert_eq!("+3".parse::<Money>().unwrap().units(), 300);
        assert_eq!("1.500".parse::<Money>().unwrap().units(), 150);
        assert_eq!(".25".parse::<Money>().unwrap().units(), 25);
        assert_eq!("9999999999.99".parse::<Money>().unwrap(), Money::MAX);
        assert!(matches!(
            "10000000000.00".parse::<Money>(),
            Err(DecimalError::Precision {
                precision: 12,
                scale: 2,
                ..
            })
        ));
        assert!(matches!(
            "0.125".parse::<Money>(),
            Err(DecimalError::Scale { scale: 2, .. })
        ));
        for bad in ["", "-", ".", "1.2.3", "1e3", "12,50", " 1"] {
            assert!(
                matches!(bad.parse::<Money>(), Err(DecimalError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn displays_every_decimal() {
        assert_eq!(Money::from_units(-5).unwrap().to_string(), "-0.05");
        assert_eq!(Money::MIN.to_string(), "-9999999999.99");
        assert_eq!(Decimal::<5, 0>::literal("-42").to_string(), "-42");
        assert_eq!(Decimal::<4, 4>::literal("0.1").to_string(), "0.1000");
        assert_eq!(format!("[{:>7}]", Money::literal("3.5")), "[   3.50]");
        assert_eq!(format!("[{:<7}]", Money::literal("-0.05")), "[-0.05  ]");
        assert_eq!(format!("{:.2}", Money::literal("12.50")), "12.50");
        assert_eq!(format!("{:.0}", Money::literal("-0.05")), "-0.05");
    }

    #[test]
    fn converts_big_decimals_exactly() {
        let big: BigDecimal = "1234.50".parse().unwrap();
        let money = Money::try_from(&big).unwrap();
        assert_eq!(money.units(), 123_450);
        assert_eq!(BigDecimal::from(money), big);
        let fine: BigDecimal = "0.001".parse().unwrap();
        assert!(matches!(
            Money::try_from(&fine),
            Err(DecimalError::Scale { .. })
        ));
        let large: BigDecimal = "1e10".parse().unwrap();
        assert!(matches!(
            Money::try_from(&large),
            Err(DecimalError::Precision { .. })
        ));
        // Refused from the digit count, without building a billion-digit number.
        let huge: BigDecimal = "1e999999999".parse().unwrap();
        assert!(matches!(
            Money::try_from(&huge),
            Err(DecimalError::Precision { .. })
        ));
        let tiny: BigDecimal = "1e-999999999".parse().unwrap();
        assert!(matches!(
            Money::try_from(&tiny),
            Err(DecimalError::Scale { .. })
        ));
        let zero: BigDecimal = "0e-999999999".parse().unwrap();
        assert_eq!(Money::try_from(&zero), Ok(Money::ZERO));
        let round: BigDecimal = "12.5000000".parse().unwrap();
        assert_eq!(Money::try_from(&round).unwrap().units(), 1250);
        let whole: BigDecimal = "99e8".parse().unwrap();
        assert_eq!(
            Money::try_from(&whole).unwrap().to_string(),
            "9900000000.00"
        );
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn doubles_round_trip_up_to_fifteen_digits() {
        type Wide = Decimal<15, 2>;
        for text in [
            "0.1",
            "0.3",
            "9999999999999.99",
            "-1234567.89",
            "0.07",
            "-9999999999999.99",
        ] {
            let value: Wide = text.parse().unwrap();
            let x = value.to_f64_exact().unwrap();
            assert_eq!(Wide::from_f64_rounded(x), Some(value), "{text}");
            // What a float sum leaves (0.1 + 0.2 = 0.30000000000000004) reads back exact.
            assert_eq!(
                Wide::from_f64_rounded(x + x * 2.5e-16),
                Some(value),
                "{text}"
            );
        }
        assert!(Decimal::<18, 2>::MAX.to_f64_exact().is_none());
        // 16 digits: .01 and .02 are one double there.
        assert!(Decimal::<18, 2>::literal("80000000000000.01")
            .to_f64_exact()
            .is_none());
    }
}
