//! Another process writing a SQLite file: `sqlite_hold <file> <product id> <hold ms>` takes the
//! file's write lock (`BEGIN EXCLUSIVE`), adds 1,000 to the product's `sold`, prints `held`,
//! keeps the lock for `hold ms`, then commits. The tests in `tests/sqlite.rs` check that the
//! library's writers, which take turns among themselves, still wait for a writer outside
//! their process.

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, id, hold_ms] = &args[..] else {
        eprintln!("usage: sqlite_hold <file> <product id> <hold ms>");
        std::process::exit(2);
    };
    let id: i64 = id.parse().expect("a product id");
    let hold_ms: u64 = hold_ms.parse().expect("a hold in milliseconds");
    let mut conn = SqliteConnection::establish(file).expect("open the SQLite file");
    conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE;")
        .expect("take the write lock");
    conn.batch_execute(&format!(
        "UPDATE ct_products SET sold = sold + 1000 WHERE id = {id}"
    ))
    .expect("write under the lock");
    println!("held");
    std::io::stdout().flush().expect("tell the test");
    std::thread::sleep(std::time::Duration::from_millis(hold_ms));
    conn.batch_execute("COMMIT").expect("commit");
}
