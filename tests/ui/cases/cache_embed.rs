use counter_core::CounterCache;

pub struct Visitor {
    pub name: String,
}

#[derive(CounterCache)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
pub struct NewView {
    pub article_id: i64,
    #[diesel(embed)]
    pub visitor: Visitor,
}

fn main() {}
