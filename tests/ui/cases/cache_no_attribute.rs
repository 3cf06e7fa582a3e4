use counter_core::CounterCache;

#[derive(CounterCache)]
#[diesel(table_name = views)]
pub struct NewView {
    pub article_id: i64,
}

fn main() {}
