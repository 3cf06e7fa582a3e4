use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id, step = 2)]
pub struct NewView {
    pub article_id: i64,
}

fn main() {}
