//! Servers the tests start themselves (`redis-server`, a Redis Cluster's nodes, `memcached`)
//! must not inherit the test process's sockets. The client libraries of the databases do not
//! all open theirs close-on-exec, and a server that holds a copy of a database connection's
//! socket keeps that connection open on the database's side after the test closed it (with
//! whatever its session still holds), for as long as the server lives. And what the tests do
//! to such a server: signals, and the free port to start it on.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// `command`, set to close every file descriptor above stderr in the child before it runs.
pub fn without_inherited_fds(command: &mut Command) -> &mut Command {
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; close_range(2)
    // is a plain system call, and its result is deliberately ignored (an old kernel without
    // it leaves the descriptors, as before).
    unsafe {
        command.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        })
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, `-KILL`) to `child` with `kill`.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// A loopback port free at this moment.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `command`, set so that the child is killed (SIGKILL) when the thread that spawns it ends:
/// a test's own server dies with its test's thread even when the process is killed and no
/// `Drop` runs; a server shared by the whole process is spawned from a thread that never
/// ends, so it dies with the process.
pub fn dies_with_its_spawner(command: &mut Command) -> &mut Command {
    // SAFETY: prctl(2) is a plain system call, allowed between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}
