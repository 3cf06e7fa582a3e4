//! `, "updated_at" = <now>`: the assignments that stamp a field's touched column
//! ([`AtomicField::TOUCH`](crate::AtomicField::TOUCH)) in the `SET` list of the statement that
//! changes the field, so the stamp commits (or rolls back) with the change itself.

use diesel::query_builder::AstPass;
use diesel::result::QueryResult;

use crate::backend::Dialect;

/// Appends `, t = <now>` for each touched column in `touches`, once each, skipping any the
/// statement already assigns (`assigned`): a column named twice in one `SET` list is an error
/// on PostgreSQL and order-dependent on MySQL.
pub(crate) fn walk_touches<DB: Dialect>(
    touches: &[Option<&'static str>],
    assigned: &[&'static str],
    out: &mut AstPass<'_, '_, DB>,
) -> QueryResult<()> {
    for (i, touch) in touches.iter().enumerate() {
        let Some(column) = touch else { continue };
        if assigned.contains(column) || touches[..i].contains(touch) {
            continue;
        }
        out.push_sql(", ");
        out.push_identifier(column)?;
        out.push_sql(" = ");
        out.push_sql(DB::NOW);
    }
    Ok(())
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::query_builder::{AstPass, QueryFragment};
    use diesel::sqlite::Sqlite;

    /// `SET x = 1` followed by the touches of `touches`, rendered.
    struct Touches(Vec<Option<&'static str>>, Vec<&'static str>);

    impl QueryFragment<Sqlite> for Touches {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
            out.push_sql("SET x = 1");
            super::walk_touches(&self.0, &self.1, &mut out)
        }
    }

    fn render(touches: Vec<Option<&'static str>>, assigned: Vec<&'static str>) -> String {
        let sql = diesel::debug_query::<Sqlite, _>(&Touches(touches, assigned)).to_string();
        sql.split(" -- binds").next().unwrap().to_string()
    }

    #[test]
    fn each_touched_column_is_set_once_and_never_over_an_assigned_one() {
        let now = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
        assert_eq!(render(vec![None, None], vec!["x"]), "SET x = 1");
        assert_eq!(
            render(vec![Some("at"), None, Some("at")], vec!["x"]),
            format!("SET x = 1, `at` = {now}")
        );
        assert_eq!(
            render(vec![Some("at"), Some("seen")], vec!["x"]),
            format!("SET x = 1, `at` = {now}, `seen` = {now}")
        );
        assert_eq!(render(vec![Some("x")], vec!["x"]), "SET x = 1");
    }
}
