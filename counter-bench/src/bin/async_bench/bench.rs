//! One server under test: its connections, opened before anything is measured, the capture
//! of the statements each async workload sends, and one slice of one configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counter_bench::db::env_or;
use diesel::connection::InstrumentationEvent;
use diesel::Connection;

use crate::cli::{Rows, Workload, HOT_ID};
use crate::client::{async_client, process_cpu, sync_client, tally, ClientResult, Tally};
use crate::server::{err, Server};

/// The connections of one backend: a deadpool per client count, blocking connections for the
/// `library-sync` clients, and one more for setting up and reading back.
pub struct Bench<S: Server> {
    pub url: String,
    pub pools: BTreeMap<usize, S::Pool>,
    pub blocking: Vec<S::Blocking>,
    pub check: S::Blocking,
    pub version: String,
    /// What the blocking and the async connections report about durability.
    pub durability: String,
}

impl<S: Server> Bench<S> {
    /// Connects (an error names the environment variable), resets the table, builds the pools
    /// and opens every connection.
    pub fn open(
        rt: &tokio::runtime::Runtime,
        clients: &[usize],
        sync: bool,
        relaxed: bool,
    ) -> Result<Self, String> {
        let url = S::session_url(&env_or(S::URL_VAR, S::DEFAULT_URL), relaxed);
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "{} is unreachable at {url} ({} {}; set {} to a reachable server): {e}",
                S::TITLE,
                S::URL_VAR,
                if std::env::var_os(S::URL_VAR).is_some() {
                    "from the environment"
                } else {
                    "the default"
                },
                S::URL_VAR
            )
        };
        let mut check = S::Blocking::establish(&url).map_err(|e| unreachable(&e))?;
        let max = clients.iter().copied().max().unwrap_or(1);
        let mut ids = vec![HOT_ID];
        ids.extend((0..max).map(|i| Rows::OwnRow.id(i)));
        S::setup(&mut check, &ids, relaxed)
            .map_err(|e| format!("{}: creating the table: {e}", S::TITLE))?;
        let version = S::version(&mut check).map_err(err)?;
        let blocking_durability = S::durability(&mut check).map_err(err)?;
        let mut async_durability = String::new();
        let mut pools = BTreeMap::new();
        for &c in clients {
            let pool =
                S::pool(&url, c).map_err(|e| format!("{}: building the pool: {e}", S::TITLE))?;
            // Every connection of the pool, opened now.
            rt.block_on(async {
                let mut held = Vec::with_capacity(c);
                for _ in 0..c {
                    held.push(S::get(&pool).await.map_err(|e| unreachable(&e))?);
                }
                async_durability = S::durability_async(&mut held[0]).await?;
                Ok::<_, String>(())
            })?;
            pools.insert(c, pool);
        }
        let mut blocking = Vec::new();
        if sync {
            for _ in 0..max {
                blocking.push(S::Blocking::establish(&url).map_err(|e| unreachable(&e))?);
            }
        }
        Ok(Bench {
            url,
            pools,
            blocking,
            check,
            version,
            durability: format!(
                "blocking connections: {blocking_durability}; async connections: {async_durability}"
            ),
        })
    }

    /// Runs each async workload once on a fresh, instrumented connection and returns the SQL
    /// and binds each sent: they must be the same.
    pub fn statements(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Vec<(Workload, Vec<String>)>, String> {
        rt.block_on(async {
            let mut conn = <S::Async as diesel_async::AsyncConnection>::establish(&self.url)
                .await
                .map_err(err)?;
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            let sink = Arc::clone(&log);
            let instrumentation = move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    sink.lock().expect("log").push(query.to_string());
                }
            };
            diesel_async::AsyncConnection::set_instrumentation(&mut conn, instrumentation);
            let mut out = Vec::new();
            for w in [
                Workload::LibraryAsync,
                Workload::HandAsync,
                Workload::HandAsyncPrepared,
            ] {
                log.lock().expect("log").clear();
                let result = match w {
                    Workload::LibraryAsync => S::library(&mut conn, HOT_ID).await,
                    Workload::HandAsync => S::hand(&mut conn, HOT_ID).await,
                    _ => S::hand_prepared(&mut conn, HOT_ID).await,
                };
                result.map_err(|e| format!("{}: {}: {e}", S::TITLE, w.name()))?;
                out.push((w, std::mem::take(&mut *log.lock().expect("log"))));
            }
            Ok(out)
        })
    }

    /// Runs one slice of one configuration and checks the table against what the clients saw.
    pub fn slice(
        &mut self,
        rt: &tokio::runtime::Runtime,
        workload: Workload,
        rows: Rows,
        clients: usize,
        duration: Duration,
    ) -> Result<Tally, String> {
        let before = S::snapshot(&mut self.check).map_err(err)?;
        let mut cpu = Duration::ZERO;
        let results: Vec<ClientResult> = if workload == Workload::LibrarySync {
            let cpu_start = process_cpu();
            let start_at = Instant::now() + Duration::from_millis(20);
            std::thread::scope(|scope| {
                let handles: Vec<_> = self.blocking[..clients]
                    .iter_mut()
                    .enumerate()
                    .map(|(i, conn)| {
                        scope.spawn(move || sync_client::<S>(conn, rows.id(i), start_at, duration))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().map_err(|_| "client thread panicked".to_owned()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .inspect(|_| cpu = process_cpu() - cpu_start)?
        } else {
            let pool = &self.pools[&clients];
            rt.block_on(async {
                // Every connection checked out before the clock starts.
                let mut conns = Vec::with_capacity(clients);
                for _ in 0..clients {
                    conns.push(S::get(pool).await?);
                }
                let cpu_start = process_cpu();
                let start_at = tokio::time::Instant::now() + Duration::from_millis(20);
                let tasks: Vec<_> = conns
                    .into_iter()
                    .enumerate()
                    .map(|(i, conn)| {
                        tokio::spawn(async_client::<S>(
                            conn,
                            workload,
                            rows.id(i),
                            start_at,
                            duration,
                        ))
                    })
                    .collect();
                let mut results = Vec::with_capacity(clients);
                for t in tasks {
                    results.push(t.await.map_err(|e| format!("client task failed: {e}"))?);
                }
                cpu = process_cpu() - cpu_start;
                Ok::<_, String>(results)
            })?
        };
        let after = S::snapshot(&mut self.check).map_err(err)?;
        let mut t = tally(&before, &after, results);
        t.cpu = cpu;
        Ok(t)
    }
}
