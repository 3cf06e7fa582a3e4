//! The text of every generated doc comment.
//!
//! The generated methods show up in the user's own rustdoc, so each says what it does to
//! *their* model: the field, the table and column, the bounds, the SQL it runs. The text is
//! built here from the model alone, apart from the tokens, so the expansions read as code and
//! the prose reads as prose. Kept in line with the docs of `counter_core::Field`.

use crate::attr::Int;
use crate::model::{AtomicFieldModel, Model, SlottedModel};
use proc_macro2::Ident;
use syn::ext::IdentExt;
use syn::Path;

/// The last segment of a `table!` module path, as the table's name in SQL: `products` for
/// `crate::schema::products`.
fn table_name(path: &Path) -> String {
    path.segments
        .last()
        .map_or_else(String::new, |seg| seg.ident.unraw().to_string())
}

/// The docs of a plain counter field's methods.
pub struct FieldDocs {
    /// "`stock` (column `products.stock`, bounds 0..=1000)"
    subject: String,
    /// `products`
    table: String,
    /// `stock`
    column: String,
    /// `id` (the key column)
    key_column: String,
    /// the key parameter
    key: String,
    /// `Product`
    ident: String,
    /// what `OutOfRange` guards: "0..=1000", "the range of `i32`", ...
    range: String,
    /// `take_*_up_to` never goes below this: the minimum, or 0.
    floor: String,
}

impl FieldDocs {
    pub fn new(model: &Model, field: &AtomicFieldModel, key: &Ident) -> Self {
        let table = table_name(&model.table);
        let column = field.column.unraw().to_string();
        let (min, max) = (field.min.as_ref(), field.max.as_ref());
        let bounds = match (min, max) {
            (Some(min), Some(max)) => format!("bounds {}..={}", min.display(), max.display()),
            (Some(min), None) => format!("min {}", min.display()),
            (None, Some(max)) => format!("max {}", max.display()),
            (None, None) => "no bounds".to_owned(),
        };
        let range = match (min, max) {
            (Some(min), Some(max)) => format!("{}..={}", min.display(), max.display()),
            (Some(min), None) => format!("{}..", min.display()),
            (None, Some(max)) => format!("..={}", max.display()),
            (None, None) => format!("the range of `{}`", field.value.name()),
        };
        FieldDocs {
            subject: format!(
                "`{}` (column `{table}.{column}`, {bounds}{touch})",
                field.ident.unraw(),
                touch = field
                    .touch
                    .as_ref()
                    .map_or_else(String::new, |touch| format!(
                        "; each change also sets `{}` to the database's current time",
                        touch.column.unraw()
                    )),
            ),
            table,
            column,
            key_column: match model.keys.as_slice() {
                [key] => key.column.unraw().to_string(),
                keys => format!(
                    "({})",
                    keys.iter()
                        .map(|key| key.column.unraw().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            key: key.unraw().to_string(),
            ident: model.ident.unraw().to_string(),
            range,
            floor: min.map_or_else(|| "0".to_owned(), |min| min.display()),
        }
    }

    /// `current_*`.
    pub fn current(&self) -> String {
        format!(
            " The current value of {} in the row whose `{}` is `{}`: one plain `SELECT`, no \
             lock, for display (it may be stale when you act on it).\n\n # Errors\n \
             `AtomicError::NotFound` if no row has that key.",
            self.subject, self.key_column, self.key
        )
    }

    /// `increment_*` / `decrement_*`.
    pub fn increment(&self, verb: &str, op: &str) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            key,
            range,
            ..
        } = self;
        format!(
            " Atomically {verb} {subject} in the row whose `{key_column}` is `{key}`; returns \
             the new value.\n\n One statement, no lost updates: `UPDATE {table} SET {c} = {c} \
             {op} ? WHERE {key_column} = ?`, refused if the result would leave {range}.\n\n \
             # Errors\n `AtomicError::NegativeAmount` if `by < 0`, `NotFound` if no row has \
             that key, `OutOfRange` (row unchanged)."
        )
    }

    pub fn decrement_if_at_least(&self) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            ..
        } = self;
        format!(
            " Atomically subtracts `n` from {subject} only if it is at least `n`: the sale \
             that cannot oversell. Returns the new value.\n\n One statement: `UPDATE {table} \
             SET {c} = {c} - ? WHERE {key_column} = ? AND {c} >= ?`.\n\n # Errors\n \
             `AtomicError::Insufficient` if it is below `n`, `OutOfRange`, `NegativeAmount`, \
             `NotFound`; the row is unchanged on every error."
        )
    }

    pub fn take_up_to(&self) -> String {
        let FieldDocs {
            subject,
            column: c,
            key_column,
            key,
            floor,
            ..
        } = self;
        let available = if floor == "0" {
            c.clone()
        } else {
            format!("{c} - {floor}")
        };
        format!(
            " Atomically takes `min(n, {available})` from {subject}: \"sell what is \
             left\". Returns the amount taken, 0 when nothing is left.\n\n Concurrent takers \
             of the row whose `{key_column}` is `{key}` never take more than there is.\n\n # \
             Errors\n `AtomicError::NegativeAmount` if `n < 0`, `NotFound` if no row has that \
             key."
        )
    }

    pub fn increment_up_to(&self) -> String {
        let FieldDocs {
            subject,
            column: c,
            key_column,
            key,
            ..
        } = self;
        format!(
            " Atomically adds `min(n, room)` to {subject}, where the room is what is left \
             below the maximum (or the type's largest value): \"fill up to the maximum\", the \
             mirror of `take_*_up_to`. Returns the amount added, 0 when `{c}` is full.\n\n \
             Concurrent fillers of the row whose `{key_column}` is `{key}` never fill it past \
             its maximum, and the amounts they are told add up to what went in.\n\n # \
             Errors\n `AtomicError::NegativeAmount` if `n < 0`, `NotFound` if no row has that \
             key."
        )
    }

    /// `high`: `set_*_max` (else `set_*_min`).
    pub fn water_mark(&self, high: bool) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        let (keeps, cmp, bound, what) = match high {
            true => (
                "higher",
                "<",
                "above",
                "a high-water mark: the highest bid, the longest streak",
            ),
            false => (
                "lower",
                ">",
                "below",
                "a low-water mark: the lowest price, the earliest start",
            ),
        };
        format!(
            " Atomically sets {subject} to the {keeps} of its value and `v`: {what}. Returns \
             the value afterwards.\n\n `UPDATE {table} SET {c} = ? WHERE {key_column} = ? AND \
             {c} {cmp} ?`, written only where it moves the row, so no concurrent call's value \
             is lost; when it matched nothing, one plain read of the value to return.\n\n # \
             Errors\n `AtomicError::OutOfRange` when `v` is {bound} {range} and the row would \
             move to it (the row is unchanged), `NotFound`."
        )
    }

    pub fn compare_and_set(&self) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        format!(
            " Atomically writes `new` to {subject} only if it still holds `expected`, the \
             value you read: the optimistic-locking step. Returns `new`. A success proves the \
             row held `expected` when it was written, not that nobody changed it and back \
             since you read it.\n\n `UPDATE {table} SET {c} = ? WHERE {key_column} = ? AND \
             {c} = ?`; when it matched nothing, one plain read for the error.\n\n # \
             Errors\n `AtomicError::Mismatch {{ expected, current }}` when the row holds \
             another value (nothing written: decide again from `current`), `OutOfRange` when \
             going from `expected` to `new` would leave {range}, `NotFound`."
        )
    }

    pub fn update_locked(&self, retries: Option<&Int>) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        let retry = match retries {
            Some(retries) => format!("up to {} attempts", retries.value),
            None => "the default `RetryPolicy`".to_owned(),
        };
        format!(
            " Row-locked read-modify-write: sets {subject} to `op(current)` and returns the new \
             value.\n\n In one transaction: `SELECT {c} FROM {table} WHERE {key_column} = ? FOR \
             UPDATE` (or the backend's equivalent), then `UPDATE`. A conflict re-runs the \
             transaction, `op` included ({retry}); if `op` panics, the transaction is rolled \
             back and the panic resumed.\n\n # Errors\n `op`'s own error, \
             `AtomicError::NotFound`, `OutOfRange` if the new value leaves {range}."
        )
    }

    pub fn transfer(&self) -> String {
        let FieldDocs { subject, .. } = self;
        format!(
            " Moves `amount` of {subject} from row `from` to row `to` in one transaction (rows \
             locked in the order the database sorts their keys); returns the new values \
             `(from, to)`.\n\n # Errors\n `AtomicError::Insufficient` if `from` would go below \
             its lower bound, `OutOfRange` if `to` would pass its maximum, `SameRow` if both keys name \
             one row as the database compares them, `NegativeAmount`, `NotFound`; nothing is \
             written on any error."
        )
    }

    pub fn or_insert(&self) -> String {
        let FieldDocs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        format!(
            " Adds `by` to {subject} in the row with `row`'s key, or inserts `row` as given \
             when there is none, in one statement; returns the new value (the inserted one \
             when it inserted).\n\n `row` is `&value` of a type Diesel can insert into \
             `{table}` that derives `Identifiable` (the model, or a `NewX` struct).\n\n \
             PostgreSQL, SQLite: `INSERT … ON CONFLICT ({key_column}) DO UPDATE SET {c} = \
             {table}.{c} + ? WHERE {table}.{c} <= ? RETURNING {c}`; MySQL: the guarded \
             `UPDATE` of `increment_{c}`, and only when it matches no row `INSERT … ON \
             DUPLICATE KEY UPDATE {c} = IF({c} <= ?, {c} + ?, <error>)` and a read back, in \
             one transaction (only for tables whose one unique key is the primary key).\n\n # Errors\n \
             `AtomicError::NegativeAmount`, `OutOfRange` if the existing row would leave \
             {range} (row unchanged), and the database's errors for `row`."
        )
    }

    pub fn or_insert_all(&self, single: &Ident) -> String {
        let FieldDocs { subject, .. } = self;
        format!(
            " Adds many `(key, amount)` pairs to {subject} at once, in one transaction (all or \
             nothing): amounts of one key are summed, keys are applied in order (so two \
             batches do not deadlock), each as `{single}` with the row `new_row(&key, total)` \
             for a key without a row. Returns `(key, new value)` in key order.\n\n # \
             Errors\n `AtomicError::NegativeAmount` before anything runs, `OutOfRange` for a \
             key that would pass its bound (nothing written), and the database's errors."
        )
    }

    /// A set operation: `what` each amount, every row or none; `single` names the one-row
    /// operation it is the set form of.
    pub fn many(&self, what: &str, single: &str) -> String {
        let FieldDocs { subject, .. } = self;
        format!(
            " The set form of `{single}`: {what} {subject} of each `(key, amount)` pair, every \
             row or none, in one statement where SQL can say it (see counter-core's \
             `Field::{single}_many` for the statement per backend). Amounts of one key are \
             summed; rows are locked in key order, so two calls over overlapping keys do not \
             deadlock. Returns `(key, new value)` in key order.\n\n # Errors\n \
             `AtomicError::InRow {{ key, error }}` naming the first key (in key order) that \
             refused: `NotFound`, `Insufficient`, `OutOfRange` or `NegativeAmount`; no row \
             was changed."
        )
    }

    pub fn atomic(&self, method: &Ident) -> String {
        let FieldDocs {
            subject,
            ident,
            key,
            ..
        } = self;
        format!(
            " The handle on {subject}, for per-call options, e.g.\n \
             `{ident}::{method}().retry(policy).lock(LockMode::NoWait).update_locked(conn, \
             {key}, op)`."
        )
    }
}

/// The docs of a slotted counter's methods.
pub struct SlottedDocs {
    /// "`views` (slotted over 8 rows of `article_view_slots`)"
    subject: String,
    /// the key parameter, as written
    key: String,
}

impl SlottedDocs {
    pub fn new(field: &AtomicFieldModel, slotted: &SlottedModel, key: &Ident) -> Self {
        SlottedDocs {
            subject: format!(
                "`{}` (slotted over {} rows of `{}`)",
                field.ident.unraw(),
                slotted.slots.value,
                table_name(&slotted.table),
            ),
            key: key.to_string(),
        }
    }

    pub fn increment(&self) -> String {
        let SlottedDocs { subject, key } = self;
        format!(
            " Adds `by` to {subject} for `{key}`: one upsert of a random slot, no lock on the \
             others.\n\n # Errors\n `AtomicError::NegativeAmount`."
        )
    }

    pub fn decrement(&self) -> String {
        let SlottedDocs { subject, key } = self;
        format!(
            " Subtracts `by` from {subject} for `{key}` (a random slot); the sum may go below \
             zero (`allow_decrement`).\n\n # Errors\n `AtomicError::NegativeAmount`."
        )
    }

    pub fn current(&self) -> String {
        let SlottedDocs { subject, key } = self;
        format!(
            " The value of {subject} for `{key}`: the sum of its slots, 0 when it has none (one \
             `SELECT SUM`)."
        )
    }

    pub fn compact(&self) -> String {
        let SlottedDocs { subject, key } = self;
        format!(
            " Folds every slot of {subject} for `{key}` into slot 0, in one transaction with the \
             slots locked in slot order; returns the value. Increments that arrive meanwhile are \
             kept."
        )
    }

    pub fn atomic(&self) -> String {
        format!(
            " The handle on {}, for a per-call retry policy.",
            self.subject
        )
    }

    /// The guarded operations a slotted counter refuses.
    pub fn refused() -> &'static str {
        " Not available on a slotted counter: it needs the counter under a \
         bound, and a slotted counter's value (the sum of its slots) is only stable with every \
         slot locked. Calling it does not compile."
    }
}

/// The doc of `update_atomic` over the plain fields `plain` (at least two).
pub fn update_atomic(model: &Model, plain: &[&AtomicFieldModel]) -> String {
    let names: Vec<String> = plain
        .iter()
        .map(|field| format!("`{}`", field.ident.unraw()))
        .collect();
    format!(
        " Changes several of {} in the row with key `key` in one guarded statement: every \
         change applies, or none does. `changes` is a tuple of 2 or 3 changes of different \
         columns, e.g. `({table}::{a}.decrement_if_at_least(n), {table}::{b}.increment(n))` \
         (methods of `counter_core::ChangeColumn`); returns their new values in that order.\n\n \
         `UPDATE … SET a = a - ?, b = b + ? WHERE <key> AND a >= ? AND b <= ? RETURNING a, b` \
         (MySQL: the values are captured into session variables and read back).\n\n # Errors\n \
         `AtomicError::InColumn` naming the field whose guard refused (`Insufficient` or \
         `OutOfRange` inside), `NegativeAmount`, `NotFound`; the row is unchanged on every error.",
        names.join(", "),
        table = table_name(&model.table),
        a = plain[0].column.unraw(),
        b = plain[1].column.unraw(),
    )
}
