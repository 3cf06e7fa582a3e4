//! The text of the doc comments `#[derive(CounterCache)]` generates, built from the model
//! alone (as `docs.rs` does for `#[derive(AtomicField)]`), in line with the docs of
//! `counter_core::CounterCached`.

use crate::cache_model::{Amount, Cache, CacheModel, Change};
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
    /// ", only while its `published` is true" (a `when = ..` cache), else empty.
    when: String,
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
    pub fn new(model: &CacheModel, cache: &Cache) -> Self {
        let amount = match &cache.amount {
            Amount::Count => "1".to_owned(),
            Amount::Sum { field, .. } => format!("its `{}`", field.unraw()),
        };
        let change = match cache.change {
            Change::Increment => format!("adds {amount} to"),
            Change::Decrement => format!("subtracts {amount} from"),
            Change::DecrementIfAtLeast => {
                format!("subtracts {amount}, only if the parent holds that much, from")
            }
        };
        let refusal = match cache.change {
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
            parent: cache.parent.to_token_stream().to_string().replace(' ', ""),
            column: column_name(&cache.column),
            foreign_key: cache.foreign_key.field.unraw().to_string(),
            change,
            aggregate: match (&cache.amount, &cache.when) {
                (Amount::Count, None) => "COUNT(*)".to_owned(),
                (Amount::Sum { column, .. }, None) => format!("SUM({})", column.unraw()),
                (Amount::Count, Some(when)) => {
                    format!("COUNT(*) … WHERE {}", when.column.unraw())
                }
                (Amount::Sum { column, .. }, Some(when)) => {
                    format!("SUM({}) … WHERE {}", column.unraw(), when.column.unraw())
                }
            },
            refusal,
            when: cache.when.as_ref().map_or_else(String::new, |when| {
                format!(", only while its `{}` is true", when.field.unraw())
            }),
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
            when,
            ..
        } = self;
        format!(
            " Inserts this `{child}` into `{table}` and {change} `{column}` of the `{parent}` \
             whose key is `{foreign_key}`{when}: both, or neither. Returns the new row's key and the \
             parent's new value.\n\n PostgreSQL: one statement, the parent's guarded `UPDATE … \
             RETURNING` feeding the `INSERT`; MySQL, SQLite: one transaction, the parent's \
             guarded `UPDATE` first, then the `INSERT`.\n\n # Errors\n \
             `AtomicError::NotFound` when no `{parent}` has that key, {refusal}, and the \
             database's own errors for the row (`Database`); nothing is written on any error."
        )
    }

    pub fn update(&self) -> String {
        let CacheDocs {
            table,
            key_column,
            column,
            foreign_key,
            refusal,
            ..
        } = self;
        format!(
            " Sets the `{table}` row whose `{key_column}` is `key` to this struct's values (all \
             but the key) and keeps `{column}` exact, in one transaction: a new `{foreign_key}` \
             moves the row's amount from the old parent to the new one (both changed in key \
             order, so opposite moves cannot deadlock); otherwise the parent changes by the \
             difference of the new and the old amount. Returns both parents' values after the \
             change.\n\n # Errors\n `AtomicError::NotFound` when no row has that key or no \
             parent has the new `{foreign_key}`, {refusal} (on the parent that gains), \
             `OutOfRange` on the parent that loses; nothing is written on any error."
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

    /// The docs of a slotted cache's `insert_counted`, `update_counted`, `delete_counted`,
    /// `recount_<column>` and handle accessor.
    pub fn slotted(&self, accessor: &syn::Ident) -> [String; 5] {
        let CacheDocs {
            child,
            table,
            key_column,
            parent,
            column,
            foreign_key,
            aggregate,
            when,
            ..
        } = self;
        let amount = if aggregate.starts_with("COUNT") {
            "1".to_owned()
        } else {
            "its summed value".to_owned()
        };
        [
            format!(
                " Inserts this `{child}` into `{table}` and adds {amount} to a random slot of \
                 `{column}`, the slotted counter of the `{parent}` whose key is \
                 `{foreign_key}`{when}: both, or neither, in one transaction (the parent row \
                 locked `FOR KEY SHARE` on PostgreSQL, so counted inserts of one parent do not \
                 wait for each other there). Returns the new row's key.\n\n # Errors\n \
                 `AtomicError::NotFound` when no `{parent}` has that key, and the database's \
                 own errors for the row (`Database`); nothing is written on any error."
            ),
            format!(
                " Sets the `{table}` row whose `{key_column}` is `key` to this struct's values \
                 (all but the key) and keeps `{column}` exact, in one transaction: a new \
                 `{foreign_key}` moves the row's amount from the old parent's slots to the new \
                 one's (in key order), otherwise the parent changes by the difference.\n\n \
                 # Errors\n `AtomicError::NotFound` when no row has that key or no parent has \
                 the new `{foreign_key}`; nothing is written on any error."
            ),
            format!(
                " Deletes the `{table}` row whose `{key_column}` is `key` and takes its amount \
                 back from `{column}`, in one transaction, only if the `DELETE` removed the row \
                 (of two concurrent deletes, one changes the parent).\n\n # Errors\n \
                 `AtomicError::NotFound` when no row has that key (nothing changed)."
            ),
            format!(
                " Rebuilds the slots of `{column}` of each of `keys` from its `{table}` rows \
                 (`{aggregate}`), one transaction per parent with the parent row locked `FOR \
                 UPDATE`: safe beside counted inserts, updates and deletes. A parent whose \
                 slots disagree gets one slot 0 holding the count. Keys without a parent row \
                 are passed over. Returns every `(key, was, now)` it corrected."
            ),
            format!(
                " The handle on the slotted counter cache of `{child}` into `{column}` \
                 (`counter_core::SlottedCounterCached`), for per-call options, e.g. \
                 `{child}::{accessor}().retry(policy).recount(conn, &keys)`."
            ),
        ]
    }

    pub fn recount_all(&self, single: &syn::Ident) -> String {
        let CacheDocs { column, .. } = self;
        format!(
            " Rebuilds `{column}` of every parent row, in pages of 500 parents in key order, as \
             `{single}` does for given keys; returns every `(key, was, now)` it corrected."
        )
    }

    pub fn handle(&self, method: &syn::Ident, several: bool) -> String {
        let CacheDocs { child, column, .. } = self;
        let mut doc = format!(
            " The handle on the counter cache of `{child}` into `{column}` \
             (`counter_core::CounterCached`), for per-call options, e.g. \
             `{child}::{method}().retry(policy).recount(conn, &keys)`."
        );
        if several {
            doc.push_str(&format!(
                " Its `insert`, `update` and `delete` change this cache alone: `{child}`'s \
                 other caches would drift. Use `insert_counted`, `update_counted`, \
                 `delete_counted` or `{child}::counter_caches()`."
            ));
        }
        doc
    }

    /// `posts.comments`, `users.comments`: every cache's column, for the shared methods.
    fn columns(all: &[CacheDocs]) -> String {
        all.iter()
            .map(|docs| format!("`{}`", docs.column))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn insert_all(all: &[CacheDocs]) -> String {
        let CacheDocs { child, table, .. } = &all[0];
        let columns = Self::columns(all);
        format!(
            " Inserts this `{child}` into `{table}` and changes each of its counters ({columns}) \
             by the row's amount, all or nothing, in one transaction: the parents first, in \
             this order, then the `INSERT`. Returns the new row's key and each parent's new \
             value, in this order.\n\n # Errors\n `AtomicError::NotFound` when a parent does \
             not exist, `Insufficient` / `OutOfRange` / `NegativeAmount` when a parent's guard \
             refuses, and the database's own errors for the row (`Database`); nothing is \
             written on any error."
        )
    }

    pub fn update_all(all: &[CacheDocs]) -> String {
        let CacheDocs {
            table, key_column, ..
        } = &all[0];
        let columns = Self::columns(all);
        format!(
            " Sets the `{table}` row whose `{key_column}` is `key` to this struct's values (all \
             but the key) and keeps each counter ({columns}) exact, in one transaction: a new \
             foreign key moves the row's amount from the old parent to the new one (the two \
             in key order), otherwise the parent changes by the difference. Returns each \
             cache's parents after the change, in this order.\n\n # Errors\n \
             `AtomicError::NotFound` when no row has that key or a new parent does not exist, \
             a parent's guard refusal; nothing is written on any error."
        )
    }

    pub fn delete_all(all: &[CacheDocs]) -> String {
        let CacheDocs {
            table, key_column, ..
        } = &all[0];
        let columns = Self::columns(all);
        format!(
            " Deletes the `{table}` row whose `{key_column}` is `key` and reverses its change of \
             each counter ({columns}), in one transaction, only if the row was there (of two \
             concurrent deletes, one changes the parents). Returns each parent's new value, \
             `None` for a parent that does not exist.\n\n # Errors\n `AtomicError::NotFound` \
             when no row has that key (nothing changed), `OutOfRange` when a reversal would \
             pass a parent's bound (the row is kept)."
        )
    }

    pub fn handle_all(all: &[CacheDocs]) -> String {
        let CacheDocs { child, .. } = &all[0];
        let columns = Self::columns(all);
        format!(
            " The handle on every counter cache of `{child}` ({columns}) \
             (`counter_core::CounterCaches`), for per-call options, e.g. \
             `{child}::counter_caches().retry(policy).insert(conn, &row)`."
        )
    }
}
