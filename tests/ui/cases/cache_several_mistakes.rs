// Several caches: one counts into a column another already counts into, and a fourth is past
// the three a struct may carry.
use counter_core::CounterCache;

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
#[counter_cache(parent = Author, column = authors::view_count, foreign_key = author_id)]
#[counter_cache(parent = Site, column = sites::view_count, foreign_key = site_id)]
pub struct NewView {
    pub article_id: i64,
    pub author_id: i64,
    pub site_id: i64,
}

fn main() {}
