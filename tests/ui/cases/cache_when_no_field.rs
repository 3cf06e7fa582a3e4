// `when` names a field the struct does not have.
use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Topic, column = topics::stars, foreign_key = topic_id, when = visible)]
pub struct NewReview {
    pub topic_id: i64,
    pub published: bool,
}

fn main() {}
