//! [`RawConnection`] for diesel-async's connections (feature `async`), and
//! [`AtomicConnection`] for their deadpool and bb8 pooled connections (features `deadpool`,
//! `bb8`).
//!
//! PostgreSQL and MySQL are truly asynchronous (tokio-postgres, mysql_async); SQLite goes
//! through diesel-async's `SyncConnectionWrapper`, which runs each statement on tokio's
//! blocking pool, as SQLite has no async interface.

use std::time::Duration;

use diesel::connection::TransactionManagerStatus;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel_async::{AsyncConnection as DieselAsyncConnection, AsyncConnectionCore};
use futures_util::{StreamExt, TryStreamExt};

use super::{in_transaction, AtomicConnection, Awaited, RawConnection};

/// Loads every row of `query` on any diesel-async connection.
async fn rows<C, Q, U>(conn: &mut C, query: Q) -> QueryResult<Vec<U>>
where
    C: AsyncConnectionCore,
    Q: Query + QueryFragment<C::Backend> + QueryId,
    C::Backend: QueryMetadata<Q::SqlType>,
    U: FromSqlRow<Q::SqlType, C::Backend> + 'static,
{
    conn.load(query)
        .await?
        .map(|row| U::build_from_row(&row?).map_err(Error::DeserializationError))
        .try_collect()
        .await
}

/// Implements both traits for a diesel-async connection; `$begin` opens a transaction with
/// the given SQL (`BEGIN`, `BEGIN IMMEDIATE`) when none is open.
macro_rules! async_connection {
    ($conn:ty, $db:ty, |$c:ident, $sql:ident| $begin:expr $(, writers_file = $file:path)?) => {
        impl AtomicConnection for $conn {
            type Raw = $conn;
            type Mode = Awaited;
            fn raw(&mut self) -> &mut $conn {
                self
            }
        }

        impl RawConnection for $conn {
            type Db = $db;

            async fn query_rows<Q, U>(&mut self, query: Q) -> QueryResult<Vec<U>>
            where
                Q: Query + QueryFragment<$db> + QueryId,
                $db: QueryMetadata<Q::SqlType>,
                U: FromSqlRow<Q::SqlType, $db> + 'static,
            {
                rows(self, query).await
            }

            async fn query_count<Q>(&mut self, statement: Q) -> QueryResult<usize>
            where
                Q: QueryFragment<$db> + QueryId,
            {
                AsyncConnectionCore::execute_returning_count(self, statement).await
            }

            async fn begin(&mut self, sql: &'static str) -> QueryResult<()> {
                use diesel_async::TransactionManager;
                if in_transaction(self)? {
                    <$conn as DieselAsyncConnection>::TransactionManager::begin_transaction(self)
                        .await
                } else {
                    let ($c, $sql) = (self, sql);
                    $begin.await
                }
            }

            async fn commit(&mut self) -> QueryResult<()> {
                use diesel_async::TransactionManager;
                <$conn as DieselAsyncConnection>::TransactionManager::commit_transaction(self).await
            }

            async fn rollback(&mut self) -> QueryResult<()> {
                use diesel_async::TransactionManager;
                <$conn as DieselAsyncConnection>::TransactionManager::rollback_transaction(self)
                    .await
            }

            fn transaction_status(&mut self) -> &mut TransactionManagerStatus {
                use diesel_async::TransactionManager;
                <$conn as DieselAsyncConnection>::TransactionManager::transaction_manager_status_mut(
                    self,
                )
            }

            async fn pause(duration: Duration) {
                tokio::time::sleep(duration).await
            }

            async fn wait_notified(listener: event_listener::EventListener, timeout: Duration) {
                let _ = tokio::time::timeout(timeout, listener).await;
            }

            $(
                async fn writers_file(&mut self) -> QueryResult<Option<String>> {
                    $file(self).await
                }
            )?
        }

        #[cfg(feature = "deadpool")]
        impl AtomicConnection for diesel_async::pooled_connection::deadpool::Object<$conn> {
            type Raw = $conn;
            type Mode = Awaited;
            fn raw(&mut self) -> &mut $conn {
                self
            }
        }

        #[cfg(feature = "bb8")]
        impl AtomicConnection for diesel_async::pooled_connection::bb8::PooledConnection<'_, $conn> {
            type Raw = $conn;
            type Mode = Awaited;
            fn raw(&mut self) -> &mut $conn {
                self
            }
        }
    };
}

#[cfg(feature = "postgres")]
async_connection!(diesel_async::AsyncPgConnection, diesel::pg::Pg, |c, sql| {
    diesel_async::AnsiTransactionManager::begin_transaction_sql(c, sql)
});

#[cfg(feature = "mysql")]
async_connection!(
    diesel_async::AsyncMysqlConnection,
    diesel::mysql::Mysql,
    |c, sql| { diesel_async::AnsiTransactionManager::begin_transaction_sql(c, sql) }
);

#[cfg(feature = "sqlite")]
async_connection!(
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    diesel::sqlite::Sqlite,
    |c, sql| c.spawn_blocking(move |inner| {
        diesel::connection::AnsiTransactionManager::begin_transaction_sql(inner, sql)
    }),
    writers_file = crate::backend::sqlite::main_file
);
