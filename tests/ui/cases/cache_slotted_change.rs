// A slotted parent has no bounds: its cache only counts up, `change` does not apply.
use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::views, foreign_key = article_id, slotted,
    change = decrement)]
pub struct NewRead {
    pub article_id: i64,
}

fn main() {}
