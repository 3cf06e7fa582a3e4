//! [`RawConnection`] for Diesel's blocking connections: every method does its work before its
//! future is first polled, so [`Blocking::drive`](super::Blocking) needs one poll.

/// Implements [`AtomicConnection`](super::AtomicConnection) and
/// [`RawConnection`](super::RawConnection) for a blocking Diesel connection.
macro_rules! blocking_connection {
    ($conn:ty, $db:ty $(, writers_file = $file:path)?) => {
        impl $crate::backend::AtomicConnection for $conn {
            type Raw = $conn;
            type Mode = $crate::backend::Blocking;
            fn raw(&mut self) -> &mut $conn {
                self
            }
        }

        impl $crate::backend::RawConnection for $conn {
            type Db = $db;

            async fn query_rows<Q, U>(&mut self, query: Q) -> ::diesel::result::QueryResult<Vec<U>>
            where
                Q: ::diesel::query_builder::Query
                    + ::diesel::query_builder::QueryFragment<$db>
                    + ::diesel::query_builder::QueryId,
                $db: ::diesel::expression::QueryMetadata<Q::SqlType>,
                U: ::diesel::deserialize::FromSqlRow<Q::SqlType, $db> + 'static,
            {
                // To the end of the cursor: on SQLite a `RETURNING` statement in autocommit
                // commits when stepped to its end, and that commit's error must not be lost.
                <Self as ::diesel::connection::LoadConnection>::load(self, query)?
                    .map(|row| {
                        U::build_from_row(&row?)
                            .map_err(::diesel::result::Error::DeserializationError)
                    })
                    .collect()
            }

            async fn query_count<Q>(&mut self, statement: Q) -> ::diesel::result::QueryResult<usize>
            where
                Q: ::diesel::query_builder::QueryFragment<$db> + ::diesel::query_builder::QueryId,
            {
                ::diesel::Connection::execute_returning_count(self, &statement)
            }

            async fn begin(&mut self, sql: &'static str) -> ::diesel::result::QueryResult<()> {
                use ::diesel::connection::{AnsiTransactionManager, TransactionManager};
                if $crate::backend::in_transaction(self)? {
                    AnsiTransactionManager::begin_transaction(self)
                } else {
                    AnsiTransactionManager::begin_transaction_sql(self, sql)
                }
            }

            async fn commit(&mut self) -> ::diesel::result::QueryResult<()> {
                use ::diesel::connection::{AnsiTransactionManager, TransactionManager};
                AnsiTransactionManager::commit_transaction(self)
            }

            async fn rollback(&mut self) -> ::diesel::result::QueryResult<()> {
                use ::diesel::connection::{AnsiTransactionManager, TransactionManager};
                AnsiTransactionManager::rollback_transaction(self)
            }

            fn transaction_status(
                &mut self,
            ) -> &mut ::diesel::connection::TransactionManagerStatus {
                use ::diesel::connection::{AnsiTransactionManager, TransactionManager};
                AnsiTransactionManager::transaction_manager_status_mut(self)
            }

            async fn pause(duration: ::std::time::Duration) {
                ::std::thread::sleep(duration)
            }

            async fn wait_notified(
                listener: ::event_listener::EventListener,
                timeout: ::std::time::Duration,
            ) {
                use ::event_listener::Listener;
                let _ = listener.wait_timeout(timeout);
            }

            $(
                async fn writers_file(
                    &mut self,
                ) -> ::diesel::result::QueryResult<Option<String>> {
                    $file(self).await
                }
            )?
        }
    };
}

#[cfg(feature = "postgres")]
blocking_connection!(diesel::PgConnection, diesel::pg::Pg);
#[cfg(feature = "mysql")]
blocking_connection!(diesel::MysqlConnection, diesel::mysql::Mysql);
#[cfg(feature = "sqlite")]
blocking_connection!(
    diesel::SqliteConnection,
    diesel::sqlite::Sqlite,
    writers_file = crate::backend::sqlite::main_file
);
