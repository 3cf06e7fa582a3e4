use counter_core::CounterCache;

#[derive(CounterCache)]
#[diesel(table_name = likes, primary_key(article_id, user_id))]
#[counter_cache(parent = Article, column = articles::likes, foreign_key = article_id)]
pub struct NewLike {
    pub article_id: i64,
    pub user_id: i64,
}

fn main() {}
