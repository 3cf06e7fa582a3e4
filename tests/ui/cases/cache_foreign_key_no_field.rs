use counter_core::CounterCache;

// `foreign_key` names a field, not a column.
#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
pub struct NewView {
    #[diesel(column_name = article_id)]
    pub article: i64,
}

fn main() {}
