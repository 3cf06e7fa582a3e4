//! The real `pgbench`, as a foreign program writing the rows the library writes.

use std::path::Path;
use std::process::Command;

use crate::db::pg_url;

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
