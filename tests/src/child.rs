//! Servers the tests start themselves (`redis-server`, a Redis Cluster's nodes, `memcached`)
//! must not inherit the test process's sockets. The client libraries of the databases do not
//! all open theirs close-on-exec, and a server that holds a copy of a database connection's
//! socket keeps that connection open on the database's side after the test closed it (with
//! whatever its session still holds), for as long as the server lives.

use std::os::unix::process::CommandExt;
use std::process::Command;

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
