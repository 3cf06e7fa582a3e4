//! The `memcached` the randomized checker's Memcached counter talks to: one per test process,
//! started on first use on a free loopback port and killed when the process ends.
//! (tests/memcached.rs starts servers of its own, one per test, since it kills and restarts
//! them.)

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::child::{dies_with_its_spawner, free_port, without_inherited_fds};

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
            let mut command = Command::new("memcached");
            without_inherited_fds(&mut command);
            dies_with_its_spawner(&mut command);
            let child = command
                .args([
                    "-p",
                    &port.to_string(),
                    "-U",
                    "0",
                    "-l",
                    "127.0.0.1",
                    "-m",
                    "64",
                ])
                .args(["-u", "root"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let started = child.is_ok();
            let _ = sender.send(child.map(|_| ()).map_err(|e| e.to_string()));
            if started {
                loop {
                    std::thread::park();
                }
            }
        });
        if let Err(e) = receiver.recv().expect("the memcached thread") {
            panic!(
                "the checker starts its own memcached and cannot run it ({e}): install it \
                 (`apt-get install memcached`; `.ci/env.sh` does)"
            );
        }
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "memcached on port {port} does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        format!("127.0.0.1:{port}")
    })
}
