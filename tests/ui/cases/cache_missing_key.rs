use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(column = articles::view_count, foreign_key = article_id)]
pub struct NoParent {
    pub article_id: i64,
}

#[derive(CounterCache)]
#[counter_cache(parent = Article, foreign_key = article_id)]
pub struct NoColumn {
    pub article_id: i64,
}

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count)]
pub struct NoForeignKey {
    pub article_id: i64,
}

fn main() {}
