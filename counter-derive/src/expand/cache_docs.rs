//! The text of the doc comments `#[derive(CounterCache)]` generates, built from the model
//! alone (as `docs.rs` does for `#[derive(AtomicField)]`), in line with the docs of
//! `counter_core::CounterCached`.

use crate::cache_model::{Amount, CacheModel, Change};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::Path;

/// The docs of a child struct's methods.
pub struct CacheDocs {
    /// `NewView`
    child: String,
    /// `views`
    table: String,
    /// `id`
    key_column: String,
    /// `Article`
    parent: String,
    /// `articles.view_count`
    column: String,
    /// `article_id`
    foreign_key: String,
    /// "adds 1 to", "subtracts `quantity` from", ...
    change: String,
    /// `COUNT(*)` or `SUM(quantity)`
    aggregate: String,
    /// The guard's refusal, for the insert's errors.
    refusal: &'static str,
}

/// `articles.view_count` for `crate::schema::articles::view_count`: the column as SQL names it.
fn column_name(path: &Path) -> String {
    let mut names = path
        .segments
        .iter()
        .rev()
        .take(2)
        .map(|seg| seg.ident.unraw().to_string())
        .collect::<Vec<_>>();
    names.reverse();
    names.join(".")
}

impl CacheDocs {
    pub fn new(model: &CacheModel) -> Self {
        let amount = match &model.amount {
            Amount::Count => "1".to_owned(),
            Amount::Sum { field, .. } => format!("its `{}`", field.unraw()),
        };
        let change = match model.change {
            Change::Increment => format!("adds {amount} to"),
            Change::Decrement => format!("subtracts {amount} from"),
            Change::DecrementIfAtLeast => {
                format!("subtracts {amount}, only if the parent holds that much, from")
            }
        };
        let refusal = match model.change {
            Change::Increment => "`OutOfRange` when the parent would pass its maximum",
            Change::Decrement => "`OutOfRange` when the parent would pass its minimum",
            Change::DecrementIfAtLeast => {
                "`Insufficient` when the parent holds less than the row's amount, \
                 `NegativeAmount` for a negative amount"
            }
        };
        CacheDocs {
            child: model.ident.unraw().to_string(),
            table: model
                .table
                .segments
                .last()
                .map_or_else(String::new, |seg| seg.ident.unraw().to_string()),
            key_column: model.key.column.unraw().to_string(),
            parent: model.parent.to_token_stream().to_string().replace(' ', ""),
            column: column_name(&model.column),
            foreign_key: model.foreign_key.field.unraw().to_string(),
            change,
            aggregate: match &model.amount {
                Amount::Count => "COUNT(*)".to_owned(),
                Amount::Sum { column, .. } => format!("SUM({})", column.unraw()),
            },
            refusal,
        }
    }

    pub fn insert(&self) -> String {
        let CacheDocs {
            child,
            table,
            parent,
            column,
            foreign_key,
            change,
            refusal,
            ..
        } = self;
        format!(
            " Inserts this `{child}` into `{table}` and {change} `{column}` of the `{parent}` \
             whose key is `{foreign_key}`: both, or neither. Returns the new row's key and the \
             parent's new value.\n\n PostgreSQL: one statement, the parent's guarded `UPDATE … \
             RETURNING` feeding the `INSERT`; MySQL, SQLite: one transaction, the parent's \
             guarded `UPDATE` first, then the `INSERT`.\n\n # Errors\n \
             `AtomicError::NotFound` when no `{parent}` has that key, {refusal}, and the \
             database's own errors for the row (`Database`); nothing is written on any error."
        )
    }

    pub fn delete(&self) -> String {
        let CacheDocs {
            table,
            key_column,
            column,
            ..
        } = self;
        format!(
            " Deletes the `{table}` row whose `{key_column}` is `key` and reverses its change of \
             `{column}`, in one transaction, only if the `DELETE` removed the row (of two \
             concurrent deletes, one changes the parent). Returns the parent's new value, \
             `None` when the row's parent does not exist.\n\n # Errors\n \
             `AtomicError::NotFound` when no row has that key (nothing changed), `OutOfRange` \
             when the reversal would pass the parent's bound (the row is kept; a recount \
             repairs a drifted count)."
        )
    }

    pub fn recount(&self) -> String {
        let CacheDocs {
            table,
            column,
            aggregate,
            ..
        } = self;
        format!(
            " Rebuilds `{column}` of each of `keys` from its `{table}` rows (`{aggregate}`), in \
             pages of 500 parents, each one transaction with the parents' rows locked in key \
             order: safe beside counted inserts and deletes. Keys without a parent row are \
             passed over. Returns every `(key, was, now)` it corrected.\n\n # Errors\n \
             `AtomicError::OutOfRange` when a total does not fit the column's type."
        )
    }

    pub fn recount_all(&self, single: &syn::Ident) -> String {
        let CacheDocs { column, .. } = self;
        format!(
            " Rebuilds `{column}` of every parent row, in pages of 500 parents in key order, as \
             `{single}` does for given keys; returns every `(key, was, now)` it corrected."
        )
    }

    pub fn handle(&self, method: &syn::Ident) -> String {
        let CacheDocs { child, column, .. } = self;
        format!(
            " The handle on the counter cache of `{child}` into `{column}` \
             (`counter_core::CounterCached`), for per-call options, e.g. \
             `{child}::{method}().retry(policy).insert(conn, &row)`."
        )
    }
}
