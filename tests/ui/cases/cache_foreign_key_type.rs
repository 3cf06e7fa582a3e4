// The article's key is an i64; the view holds it in an i32.
use counter_core::{AtomicField, CounterCache};
use diesel::prelude::*;

diesel::table! { articles (id) { id -> BigInt, view_count -> BigInt, } }
diesel::table! { views (id) { id -> BigInt, article_id -> Integer, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    #[atomic(min = 0)]
    pub view_count: i64,
}

#[derive(CounterCache)]
#[diesel(table_name = views)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
pub struct NewView {
    pub article_id: i32,
}

fn main() {}
