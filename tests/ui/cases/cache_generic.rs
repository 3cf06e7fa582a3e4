use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
pub struct NewView<T> {
    pub article_id: i64,
    pub visitor: T,
}

fn main() {}
