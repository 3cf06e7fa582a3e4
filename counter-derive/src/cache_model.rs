//! `#[derive(CounterCache)]`, stage 2: the typed model of a child struct and its counter cache.
//!
//! Built from the syn input and the parsed `#[counter_cache]` and `#[diesel]` attributes,
//! running the checks of `cache_valid.rs` on the way and reporting into the `Ctxt`; only used
//! for expansion when no error was reported.

use crate::attr::{self, CounterCacheAttr, Keyed};
use crate::cache_valid as valid;
use crate::ctxt::Ctxt;
use crate::model::{infer_table_name, same, ValueType};
use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{DeriveInput, Ident, Path, Type};

/// The name errors give the derive.
pub const DERIVE: &str = "CounterCache";

pub struct CacheModel<'a> {
    pub ident: &'a Ident,
    /// The child's `table!` module, as written in `table_name` (or inferred).
    pub table: Path,
    pub key: ChildKey<'a>,
    /// The columns an insert sets, in field order.
    pub inserted: Vec<Inserted<'a>>,
    /// One per `#[counter_cache]`, in order (at most [`MAX_CACHES`]).
    pub caches: Vec<Cache<'a>>,
}

/// How many `#[counter_cache]` attributes one struct may carry: counter-core's
/// `CounterCaches` takes tuples of up to three parent columns.
pub const MAX_CACHES: usize = 3;

/// One `#[counter_cache]`, resolved against the fields.
pub struct Cache<'a> {
    /// `parent = ..`: the model whose counter the child counts into.
    pub parent: Path,
    /// `column = ..`: the parent's counter column.
    pub column: Path,
    pub foreign_key: ForeignKey<'a>,
    pub amount: Amount<'a>,
    /// `when = field`: the boolean field a row counts by; `None`: every row counts.
    pub when: Option<When<'a>>,
    pub change: Change,
    /// `slotted`: the parent's column is a slotted counter (the word, for spans).
    pub slotted: Option<Ident>,
}

/// `when = field`.
pub struct When<'a> {
    /// As written in the attribute: `counts()` returns the field with its span, so a field
    /// that is not a `bool` is a mismatch there.
    pub written: Ident,
    pub field: &'a Ident,
    pub column: Ident,
}

/// The child's primary key.
pub struct ChildKey<'a> {
    /// The key column (`primary_key(x)`, default `id`).
    pub column: Ident,
    /// Its Rust type: the key field's type, else `key_type = ..`, else `i64`.
    pub ty: TokenStream,
    /// The field `ChildRow::key` answers: the key field when the struct has one and inserts
    /// it; `None` when the database generates the key.
    pub field: Option<&'a Ident>,
    /// Where the key was chosen: the `primary_key(..)` item, else the struct's name.
    pub span: Span,
}

/// A field an insert writes.
pub struct Inserted<'a> {
    pub ident: &'a Ident,
    /// As written, so a type Diesel cannot bind as the column's type is an error at the field.
    pub ty: &'a Type,
    pub column: Ident,
}

/// `foreign_key = field`.
pub struct ForeignKey<'a> {
    /// The value as written in the attribute: the parent key's expression takes its span.
    pub written: Ident,
    pub field: &'a Ident,
    pub column: Ident,
}

/// What a child row is worth to its parent.
pub enum Amount<'a> {
    /// One per row.
    Count,
    /// `sum = field`: the field's value.
    Sum {
        field: &'a Ident,
        ty: &'a Type,
        column: Ident,
    },
}

/// `change = ..`: counter-core's `CacheChange`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Change {
    Increment,
    Decrement,
    DecrementIfAtLeast,
}

impl Change {
    /// The values `change = ..` accepts, and what each is.
    pub const ALL: [(&'static str, Change); 3] = [
        ("increment", Change::Increment),
        ("decrement", Change::Decrement),
        ("decrement_if_at_least", Change::DecrementIfAtLeast),
    ];

    /// The `CacheChange` variant.
    pub fn variant(self) -> Ident {
        let name = match self {
            Change::Increment => "Increment",
            Change::Decrement => "Decrement",
            Change::DecrementIfAtLeast => "DecrementIfAtLeast",
        };
        Ident::new(name, Span::call_site())
    }
}

/// A field with its `#[diesel]` attributes read.
struct Field<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    column: Ident,
    /// `skip_insertion`, as written.
    skipped: Option<Ident>,
}

impl<'a> CacheModel<'a> {
    /// Builds the model, running every check and reporting into `cx`. Returns `None` only
    /// after reporting at least one error.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let named = match crate::valid::named_fields(input, DERIVE) {
            Ok(named) => named,
            Err(err) => {
                cx.syn_error(err);
                return None;
            }
        };
        if let Err(err) = crate::valid::no_generics(&input.generics, DERIVE) {
            cx.syn_error(err);
        }

        let attrs = attr::counter_caches(cx, &input.attrs);
        for extra in attrs.iter().skip(MAX_CACHES) {
            cx.syn_error(valid::too_many_caches(extra.original, MAX_CACHES));
        }
        let diesel = attr::diesel_struct(cx, &input.attrs);
        let table = diesel.table_name.unwrap_or_else(|| {
            Ident::new(&infer_table_name(&input.ident), input.ident.span()).into()
        });
        let key_column = match valid::key_column(input, diesel.primary_key.as_ref()) {
            Ok(column) => Some(column),
            Err(err) => {
                cx.syn_error(err);
                None
            }
        };
        let key_span = diesel
            .primary_key
            .as_ref()
            .map_or(input.ident.span(), |key| {
                syn::spanned::Spanned::span(&key.tokens)
            });

        let fields: Vec<Field> = named
            .named
            .iter()
            .map(|field| {
                let ident = field.ident.as_ref().expect("named field");
                let diesel = attr::diesel_field(cx, &field.attrs);
                for key in &diesel.remapped {
                    cx.syn_error(valid::remapped(key));
                }
                Field {
                    ident,
                    ty: &field.ty,
                    column: diesel.column_name.unwrap_or_else(|| ident.clone()),
                    skipped: diesel.skip_insertion,
                }
            })
            .collect();

        let Some(first) = attrs.first() else {
            cx.syn_error(valid::no_cache(&input.ident));
            return None;
        };
        // `key_type` describes the child, not a cache: read from the first attribute, an
        // error on any other.
        for later in attrs.iter().skip(1) {
            if let Some(key_type) = &later.key_type {
                cx.syn_error(valid::key_type_not_first(key_type));
            }
        }
        let key = key_column
            .map(|column| ChildKey::new(cx, column, &fields, first.key_type.as_ref(), key_span));
        let caches: Vec<Option<Cache>> = attrs
            .iter()
            .take(MAX_CACHES)
            .map(|attr| Cache::from_attr(cx, attr, &fields, &input.ident))
            .collect();
        if attrs.len() > 1 {
            for attr in &attrs {
                if let Some(slotted) = &attr.slotted {
                    cx.syn_error(valid::slotted_not_alone(slotted));
                }
            }
        }
        let caches: Option<Vec<Cache>> = caches.into_iter().collect();
        if let Some(caches) = &caches {
            for (i, cache) in caches.iter().enumerate() {
                let column = cache.column.to_token_stream().to_string();
                let twice = caches[..i]
                    .iter()
                    .any(|earlier| earlier.column.to_token_stream().to_string() == column);
                if twice {
                    cx.syn_error(valid::column_twice(&cache.column));
                }
            }
        }

        let inserted = fields
            .iter()
            .filter(|field| field.skipped.is_none())
            .map(|field| Inserted {
                ident: field.ident,
                ty: field.ty,
                column: field.column.clone(),
            })
            .collect();

        let (caches, key) = (caches?, key?);
        Some(CacheModel {
            ident: &input.ident,
            table,
            key,
            inserted,
            caches,
        })
    }
}

impl<'a> ChildKey<'a> {
    /// The key of column `column`: the field mapped to it, if any (`key_type` is then an
    /// error), else `key_type`, else `i64`.
    fn new(
        cx: &Ctxt,
        column: Ident,
        fields: &[Field<'a>],
        key_type: Option<&Keyed<Type>>,
        span: Span,
    ) -> Self {
        let field = fields.iter().find(|field| same(&field.column, &column));
        let ty = match (field, key_type) {
            (Some(field), Some(key_type)) => {
                cx.syn_error(valid::key_type_with_field(key_type, field.ident));
                field.ty.to_token_stream()
            }
            (Some(field), None) => field.ty.to_token_stream(),
            (None, Some(key_type)) => key_type.value.to_token_stream(),
            (None, None) => quote!(i64),
        };
        ChildKey {
            column,
            ty,
            // A key the insert leaves out is the database's to generate.
            field: field
                .filter(|field| field.skipped.is_none())
                .map(|field| field.ident),
            span,
        }
    }
}

impl<'a> Cache<'a> {
    /// Every check of the attribute runs; `None` after at least one error.
    fn from_attr(
        cx: &Ctxt,
        attr: &CounterCacheAttr,
        fields: &[Field<'a>],
        ident: &Ident,
    ) -> Option<Self> {
        // After a syntax error the keys behind it were not read: none is reported missing.
        let required = |value: Option<&Keyed<Path>>, key: &str| {
            if value.is_none() && attr.complete {
                cx.syn_error(valid::missing_key(attr.original, key));
            }
            value.map(|keyed| keyed.value.clone())
        };
        let parent = required(attr.parent.as_ref(), "parent");
        let column = required(attr.column.as_ref(), "column");
        if attr.foreign_key.is_none() && attr.complete {
            cx.syn_error(valid::missing_key(attr.original, "foreign_key"));
        }

        let field_named = |keyed: &Keyed<Ident>| {
            let found = fields.iter().find(|field| same(field.ident, &keyed.value));
            match found {
                None => cx.syn_error(valid::no_such_field(keyed, ident)),
                Some(Field {
                    skipped: Some(skipped),
                    ..
                }) => cx.syn_error(valid::skipped(keyed, skipped)),
                Some(_) => {}
            }
            found.filter(|field| field.skipped.is_none())
        };
        let foreign_key = attr.foreign_key.as_ref().and_then(|keyed| {
            field_named(keyed).map(|field| ForeignKey {
                written: keyed.value.clone(),
                field: field.ident,
                column: field.column.clone(),
            })
        });
        let amount = match &attr.sum {
            None => Some(Amount::Count),
            Some(keyed) => {
                field_named(keyed).and_then(|field| match ValueType::from_type(field.ty) {
                    Some(_) => Some(Amount::Sum {
                        field: field.ident,
                        ty: field.ty,
                        column: field.column.clone(),
                    }),
                    None => {
                        cx.syn_error(valid::sum_not_integer(keyed, field.ty));
                        None
                    }
                })
            }
        };
        // `Some(None)`: no `when`; `None`: a `when` naming no insertable field (reported).
        let when = match &attr.when {
            None => Some(None),
            Some(keyed) => field_named(keyed).map(|field| {
                Some(When {
                    written: keyed.value.clone(),
                    field: field.ident,
                    column: field.column.clone(),
                })
            }),
        };
        if let (Some(_), Some(change)) = (&attr.slotted, &attr.change) {
            cx.syn_error(valid::change_on_slotted(change));
        }
        let change = match &attr.change {
            None => Some(Change::Increment),
            Some(keyed) => match valid::change(keyed) {
                Ok(change) => Some(change),
                Err(err) => {
                    cx.syn_error(err);
                    None
                }
            },
        };

        Some(Cache {
            parent: parent?,
            column: column?,
            foreign_key: foreign_key?,
            amount: amount?,
            when: when?,
            change: change?,
            slotted: attr.slotted.clone(),
        })
    }
}

/// The examples of the crate docs: a count with a generated key, and a guarded sum whose
/// struct carries its key in a renamed column.
#[cfg(test)]
pub fn new_view() -> DeriveInput {
    syn::parse_quote! {
        #[derive(CounterCache)]
        #[diesel(table_name = views)]
        #[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
        pub struct NewView {
            pub article_id: i64,
            pub visitor: ::std::string::String,
        }
    }
}

#[cfg(test)]
pub fn new_order() -> DeriveInput {
    syn::parse_quote! {
        #[derive(CounterCache)]
        #[diesel(table_name = crate::schema::orders, primary_key(order_no))]
        #[counter_cache(
            parent = Product,
            column = crate::schema::products::stock,
            foreign_key = product,
            sum = quantity,
            change = decrement_if_at_least,
        )]
        pub struct NewOrder {
            #[diesel(column_name = order_no)]
            pub number: i32,
            #[diesel(column_name = product_id)]
            pub product: i64,
            pub quantity: i32,
            pub note: Option<String>,
            #[diesel(skip_insertion)]
            pub placed_at: i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(input: &DeriveInput) -> CacheModel<'_> {
        let cx = Ctxt::new();
        let model = CacheModel::from_syn(&cx, input);
        cx.check().unwrap();
        model.unwrap()
    }

    #[test]
    fn a_count_with_a_generated_key() {
        let input = new_view();
        let model = model(&input);
        assert_eq!(model.table.to_token_stream().to_string(), "views");
        assert_eq!(model.key.column, "id");
        assert_eq!(model.key.ty.to_string(), "i64");
        assert!(model.key.field.is_none());
        let columns: Vec<String> = model
            .inserted
            .iter()
            .map(|f| f.column.to_string())
            .collect();
        assert_eq!(columns, ["article_id", "visitor"]);
        let cache = &model.caches[0];
        assert_eq!(cache.foreign_key.column, "article_id");
        assert!(matches!(cache.amount, Amount::Count));
        assert_eq!(cache.change, Change::Increment);
    }

    #[test]
    fn a_guarded_sum_with_its_own_key() {
        let input = new_order();
        let model = model(&input);
        assert_eq!(model.key.column, "order_no");
        assert_eq!(model.key.ty.to_string(), "i32");
        assert_eq!(model.key.field.unwrap(), "number");
        let columns: Vec<String> = model
            .inserted
            .iter()
            .map(|f| f.column.to_string())
            .collect();
        assert_eq!(columns, ["order_no", "product_id", "quantity", "note"]);
        let cache = &model.caches[0];
        assert_eq!(cache.foreign_key.field, "product");
        assert_eq!(cache.foreign_key.column, "product_id");
        assert!(matches!(&cache.amount, Amount::Sum { column, .. } if column == "quantity"));
        assert_eq!(cache.change, Change::DecrementIfAtLeast);
    }
}
