// A slotted cache cannot share its struct with another cache (`CounterCaches` changes plain
// columns only).
use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::views, foreign_key = article_id, slotted)]
#[counter_cache(parent = User, column = users::reads, foreign_key = user_id)]
pub struct NewRead {
    pub article_id: i64,
    pub user_id: i64,
}

fn main() {}
