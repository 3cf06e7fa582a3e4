// A review counts while `published`; the field is a status string, not a bool.
use counter_core::{AtomicField, CounterCache};
use diesel::prelude::*;

diesel::table! { topics (id) { id -> BigInt, stars -> BigInt, } }
diesel::table! { reviews (id) { id -> BigInt, topic_id -> BigInt, published -> Text, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = topics)]
pub struct Topic {
    pub id: i64,
    #[atomic(min = 0)]
    pub stars: i64,
}

#[derive(CounterCache)]
#[diesel(table_name = reviews)]
#[counter_cache(parent = Topic, column = topics::stars, foreign_key = topic_id, when = published)]
pub struct NewReview {
    pub topic_id: i64,
    pub published: String,
}

fn main() {}
