//! The real `pgbench`, as a foreign program writing the rows the library writes, and the
//! scenario that runs it beside the library on either kind of connection.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use counter_core::AtomicError;

use crate::client::{on_n_workers, Client};
use crate::db::{pg_url, TestDb};
use crate::models::Product;
use crate::scenarios::serializable_postgres;
use crate::Postgres;

/// The parts of pgbench's report the tests need.
#[derive(Debug)]
pub struct PgbenchReport {
    /// Transactions pgbench committed.
    pub processed: u64,
    /// Transactions pgbench gave up on.
    pub failed: u64,
}

/// Runs `sql` as a pgbench script with `clients` clients for `seconds` against [`pg_url`]
/// (retrying its own serialization failures up to 100 times); panics, saying how to get it,
/// when `/usr/bin/pgbench` is missing, and with its output when it fails.
pub fn run_pgbench(sql: &str, clients: u32, seconds: u32) -> PgbenchReport {
    let pgbench = Path::new("/usr/bin/pgbench");
    assert!(
        pgbench.exists(),
        "this test runs the real pgbench as a foreign writer, and /usr/bin/pgbench is missing: \
         install postgresql-client (apt-get install postgresql-client), or `source .ci/env.sh`"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("foreign_writer.sql");
    std::fs::write(&script, sql).expect("the pgbench script");
    let output = Command::new(pgbench)
        .args(["-n", "-f"])
        .arg(&script)
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
        .arg("--max-tries=100")
        .arg(pg_url())
        .output()
        .expect("running /usr/bin/pgbench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_pgbench(&stdout)
}

fn parse_pgbench(stdout: &str) -> PgbenchReport {
    let number_after = |label: &str| -> Option<u64> {
        let line = stdout.lines().find(|l| l.starts_with(label))?;
        let rest = line[label.len()..].trim();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    PgbenchReport {
        processed: number_after("number of transactions actually processed:")
            .unwrap_or_else(|| panic!("no transaction count in pgbench's report:\n{stdout}")),
        failed: number_after("number of failed transactions:").unwrap_or(0),
    }
}

/// While the client's workers increment `sold` of one row, the real `pgbench` (4 clients, 3 s)
/// runs `UPDATE ct_products SET sold = sold + 1 WHERE id = N` on the same row. The final value
/// is exactly the initial one plus the library's successes plus pgbench's transactions, and
/// no library call failed (but for `Conflict` under SERIALIZABLE, where 20 writers on one row
/// can spend a call's retries). One more worker runs pgbench and says when it has finished.
pub async fn foreign_writer_pgbench_on_the_same_row<C>(client: &C)
where
    C: Client<Db = Postgres>,
{
    let db = client.db();
    let initial = 1_000_000_i64;
    let id = db.new_product(0, initial);
    let script = format!("UPDATE ct_products SET sold = sold + 1 WHERE id = {id};\n");
    let done = AtomicBool::new(false);
    let results = on_n_workers(client, C::WORKERS + 1, async |worker, conn| {
        if worker == 0 {
            let report = run_pgbench(&script, 4, 3);
            done.store(true, Ordering::SeqCst);
            return (0, Vec::new(), Some(report));
        }
        let mut ok = 0_i64;
        let mut errors: Vec<AtomicError> = Vec::new();
        // At least one call, then until pgbench has finished.
        loop {
            match C::done(Product::increment_sold(conn, id, 1)).await {
                Ok(_) => ok += 1,
                Err(e) => errors.push(e),
            }
            if done.load(Ordering::SeqCst) {
                break (ok, errors, None);
            }
        }
    });
    let mut report = None;
    let (mut library_ok, mut errors) = (0, Vec::new());
    for (ok, errs, pgbench) in results {
        library_ok += ok;
        errors.extend(errs.iter().map(|e| format!("{e:?}")));
        report = report.or(pgbench);
    }
    let report = report.expect("worker 0 ran pgbench");
    println!(
        "{}: pgbench: {} transactions, {} failed; library: {library_ok} increments, {} errors",
        client.name(),
        report.processed,
        report.failed,
        errors.len()
    );
    assert!(report.processed > 0, "pgbench did no work: {report:?}");
    assert!(library_ok > 0, "the library did no work");
    assert_eq!(
        db.product(id).1,
        initial + library_ok + report.processed as i64,
        "final = initial + library successes + pgbench transactions"
    );
    // Under SERIALIZABLE a call on the row that 20 writers update can spend its whole retry
    // budget (pgbench gives up on some of its own too): `Conflict`, and nothing written.
    let allowed = |e: &String| serializable_postgres(client) && e.starts_with("Conflict");
    assert!(
        errors.iter().all(allowed),
        "library calls failed: {errors:#?}"
    );
}
