use counter_core::AtomicField;
use diesel::prelude::*;

diesel::table! { articles (id) { id -> BigInt, views -> BigInt, } }
diesel::table! { article_view_slots (id, slot) { id -> BigInt, slot -> Integer, count -> BigInt, } }

#[derive(AtomicField)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    #[atomic(slots = 16, table = article_view_slots)]
    pub views: i64,
}

fn main() {
    let conn = &mut SqliteConnection::establish(":memory:").unwrap();
    // Bounds need the sum of every slot, locked: refused, with the reason.
    let _ = Article::take_views_up_to(conn, 1, 5);
    let _ = Article::transfer_views(conn, 1, 2, 5);
    let _ = Article::set_views_max(conn, 1, 5);
    // Not declared `allow_decrement`: there is no decrement.
    let _ = Article::decrement_views(conn, 1, 1);
}
