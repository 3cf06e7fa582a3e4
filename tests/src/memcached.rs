//! `memcached` servers the tests and benchmarks start themselves: [`start_memcached`] for one
//! of a test's (or a benchmark's) own, which it may kill and restart, and
//! [`shared_memcached`], the randomized checker's, one per test process.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::child::{dies_with_its_spawner, free_port, without_inherited_fds};

/// Starts `memcached` on loopback `port` (TCP only, `megabytes` of memory, none of this
/// process's sockets, killed when the spawning thread ends) and waits until it answers.
/// `Err` says what to install when the binary is missing.
pub fn start_memcached(port: u16, megabytes: u32) -> Result<Child, String> {
    let mut command = Command::new("memcached");
    without_inherited_fds(&mut command);
    dies_with_its_spawner(&mut command);
    let mut child = command
        .args(["-p", &port.to_string(), "-U", "0", "-l", "127.0.0.1"])
        .args(["-m", &megabytes.to_string()])
        // Ignored unless run as root, which memcached refuses without it.
        .args(["-u", "root"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot run memcached ({e}): install it (`apt-get install memcached`; `.ci/env.sh` does)")
        })?;
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = (child.kill(), child.wait());
            return Err(format!("memcached on port {port} does not answer"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// `127.0.0.1:<port>` of the process's `memcached`, started on the first call. Panics, saying
/// what to install, when the binary is missing.
pub fn shared_memcached() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let port = free_port();
        let (sender, receiver) = std::sync::mpsc::channel();
        // The spawning thread never ends: the server's parent-death signal fires when it
        // does, so only at the process's exit.
        std::thread::spawn(move || {
            let started = start_memcached(port, 64);
            let running = started.is_ok();
            let _ = sender.send(started.map(|_| ()));
            if running {
                loop {
                    std::thread::park();
                }
            }
        });
        if let Err(e) = receiver.recv().expect("the memcached thread") {
            panic!("the checker starts its own memcached: {e}");
        }
        format!("127.0.0.1:{port}")
    })
}
