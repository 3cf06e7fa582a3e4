// `slotted` on a plain #[atomic] column, and a slotted column without `slotted`.
use counter_core::{AtomicField, CounterCache};
use diesel::prelude::*;

diesel::table! { articles (id) { id -> BigInt, views -> BigInt, likes -> BigInt, } }
diesel::table! { article_view_slots (id, slot) { id -> BigInt, slot -> Integer, count -> BigInt, } }
diesel::table! { reads (id) { id -> BigInt, article_id -> BigInt, } }
diesel::table! { likes (id) { id -> BigInt, article_id -> BigInt, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    #[atomic(slots = 8, table = article_view_slots)]
    pub views: i64,
    #[atomic]
    pub likes: i64,
}

#[derive(CounterCache)]
#[diesel(table_name = likes)]
#[counter_cache(parent = Article, column = articles::likes, foreign_key = article_id, slotted)]
pub struct NewLike {
    pub article_id: i64,
}

#[derive(CounterCache)]
#[diesel(table_name = reads)]
#[counter_cache(parent = Article, column = articles::views, foreign_key = article_id)]
pub struct NewRead {
    pub article_id: i64,
}

fn main() {}
