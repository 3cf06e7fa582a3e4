//! [`Gate`]: a way into a test's database that the test can close, to see what the library
//! does while the database is down and after it is back.
//!
//! - PostgreSQL and MySQL: a TCP proxy on a port of its own in front of the server. `down`
//!   closes every connection through it and refuses new ones (as a stopped server would);
//!   `up` lets them through again; `cut` closes the live connections only (as a killed
//!   session or a network failure would), in the middle of whatever they were doing.
//! - SQLite: the file itself. `down` takes an exclusive lock on it from a connection of the
//!   gate's own, so no other connection can write (the library gives up after its busy
//!   timeout); `up` releases it. An embedded database has no connection to cut.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

/// A way into one database that the test opens and closes.
pub struct Gate {
    url: String,
    kind: Kind,
}

enum Kind {
    Proxy(Arc<Proxy>),
    /// The gate's own connection, holding an exclusive lock while the gate is down.
    Sqlite(Mutex<Option<SqliteConnection>>),
}

impl Gate {
    /// A TCP proxy in front of the server of `url` (`scheme://[user@]host[:port]/db`, the
    /// port `default_port` when absent).
    pub fn proxy(url: &str, default_port: u16) -> Gate {
        let (target, through) = through_proxy(url, default_port);
        let proxy = Proxy::start(target);
        Gate {
            url: through(proxy.port),
            kind: Kind::Proxy(proxy),
        }
    }

    /// The SQLite file at `path`.
    pub fn sqlite(path: &str) -> Gate {
        Gate {
            url: path.to_owned(),
            kind: Kind::Sqlite(Mutex::new(None)),
        }
    }

    /// The URL to connect through.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Can [`cut`](Self::cut) close live connections (a server), or is there none to cut
    /// (SQLite)?
    pub fn can_cut(&self) -> bool {
        matches!(self.kind, Kind::Proxy(_))
    }

    /// The database becomes unreachable (servers) or unwritable (SQLite).
    pub fn down(&self) {
        match &self.kind {
            Kind::Proxy(proxy) => proxy.close(),
            Kind::Sqlite(holder) => {
                let mut conn =
                    SqliteConnection::establish(&self.url).expect("the gate's connection");
                conn.batch_execute("BEGIN EXCLUSIVE")
                    .expect("the gate's exclusive lock");
                *holder.lock().unwrap() = Some(conn);
            }
        }
    }

    /// The database is back.
    pub fn up(&self) {
        match &self.kind {
            Kind::Proxy(proxy) => proxy.open.store(true, Ordering::SeqCst),
            Kind::Sqlite(holder) => {
                if let Some(mut conn) = holder.lock().unwrap().take() {
                    conn.batch_execute("ROLLBACK")
                        .expect("the gate's lock released");
                }
            }
        }
    }

    /// Closes every live connection through the gate, both ways, and lets new ones through.
    /// Panics on SQLite ([`can_cut`](Self::can_cut)).
    pub fn cut(&self) {
        match &self.kind {
            Kind::Proxy(proxy) => proxy.cut(),
            Kind::Sqlite(_) => panic!("an SQLite file has no connection to cut"),
        }
    }

    /// How many connections went through the gate since it opened.
    pub fn connections(&self) -> usize {
        match &self.kind {
            Kind::Proxy(proxy) => *proxy.accepted.lock().unwrap(),
            Kind::Sqlite(_) => 0,
        }
    }
}

/// The server address (`host:port`) of database URL `url` (`scheme://[user@]host[:port]/db`,
/// the port `default_port` when absent), and the URL to it through a proxy on a loopback port.
pub fn through_proxy(url: &str, default_port: u16) -> (String, impl Fn(u16) -> String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (user, rest) = match rest.split_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let (scheme, path) = (scheme.to_owned(), path.to_owned());
    let through = move |port: u16| {
        let mut url = format!("{scheme}://{user}127.0.0.1:{port}{path}");
        if scheme == "mysql" {
            // mysql_async (diesel-async) otherwise moves a loopback TCP connection to the
            // server's Unix socket, past the proxy; libmysqlclient ignores the parameter.
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str("prefer_socket=false");
        }
        url
    };
    (target, through)
}

/// A TCP proxy: a listener on a free port, two copying threads per connection.
struct Proxy {
    port: u16,
    /// `false`: new connections are closed at once.
    open: AtomicBool,
    /// Both ends of every live connection.
    live: Mutex<Vec<(TcpStream, TcpStream)>>,
    accepted: Mutex<usize>,
}

impl Proxy {
    fn start(target: String) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let proxy = Arc::new(Proxy {
            port: listener.local_addr().expect("the proxy's port").port(),
            open: AtomicBool::new(true),
            live: Mutex::new(Vec::new()),
            accepted: Mutex::new(0),
        });
        let weak = Arc::downgrade(&proxy);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Some(proxy) = weak.upgrade() else { return };
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                // Checked under the lock `down` takes: a connection accepted while the gate
                // closes is either cut by it or refused here, never left open.
                let mut live = proxy.live.lock().unwrap();
                if !proxy.open.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                *proxy.accepted.lock().unwrap() += 1;
                live.push((client.try_clone().unwrap(), server.try_clone().unwrap()));
                drop(live);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(client, server));
                std::thread::spawn(move || copy(s2, c2));
            }
        });
        proxy
    }

    /// Refuses new connections and cuts the live ones, under the lock the accept loop
    /// checks `open` with.
    fn close(&self) {
        let mut live = self.live.lock().unwrap();
        self.open.store(false, Ordering::SeqCst);
        for (client, server) in live.drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    fn cut(&self) {
        for (client, server) in self.live.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        // Wakes the accept loop, which finds the proxy gone and returns.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` into `to` until either end closes, then closes both.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
