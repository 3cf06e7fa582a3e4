//! A TCP proxy on loopback that can lose a reply: the server's answer to a request that did
//! reach it (so the server did what was asked) is swallowed and the client's connection cut,
//! as when a network fails between a server's commit and the client hearing of it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A proxy from a free loopback port to `upstream`, forwarding both ways until told to lose
/// the next reply. It runs until the test process ends.
pub struct LossyProxy {
    port: u16,
    lose_next: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
    /// Bytes whose next appearance in a request arms `lose_next` as the request passes.
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
}

impl LossyProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub fn to(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("its address").port();
        let lose_next = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let trigger = Arc::new(Mutex::new(None));
        let (lose, count, armed) = (lose_next.clone(), lost.clone(), trigger.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                forward(client, server, lose.clone(), count.clone(), armed.clone());
            }
        });
        LossyProxy {
            port,
            lose_next,
            lost,
            trigger,
        }
    }

    /// A proxy in front of the server of database URL `url` (`scheme://[user@]host[:port]/db`,
    /// the port `default_port` when absent), and the URL that connects through it.
    pub fn in_front_of(url: &str, default_port: u16) -> (Self, String) {
        let (target, through) = crate::gate::through_proxy(url, default_port);
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&target)
            .expect("the server's address")
            .next()
            .expect("one address");
        let proxy = Self::to(upstream);
        let url = through(proxy.port);
        (proxy, url)
    }

    /// The reply to the next request that contains `pattern` (say `b"COMMIT"`, which Diesel
    /// sends as text on PostgreSQL and MySQL) is lost: the request reaches the server, which
    /// does it, and its answer never reaches the client, whose connection is cut.
    pub fn lose_reply_to(&self, pattern: &[u8]) {
        *self.trigger.lock().unwrap_or_else(PoisonError::into_inner) = Some(pattern.to_vec());
    }

    /// The proxy's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next bytes any server sends back are swallowed and both sides of their connection
    /// cut: the request they answer was received and done, its answer never arrives.
    pub fn lose_next_reply(&self) {
        self.lose_next.store(true, Ordering::SeqCst);
    }

    /// How many replies were lost so far.
    pub fn replies_lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Copies client to server and server to client on two threads; the server-to-client side
/// loses a reply when `lose` is set.
fn forward(
    client: TcpStream,
    server: TcpStream,
    lose: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let (mut client_in, mut server_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let arm = lose.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match client_in.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let request = &buffer[..n];
            {
                let mut armed = trigger.lock().unwrap_or_else(PoisonError::into_inner);
                let hit = armed
                    .as_deref()
                    .is_some_and(|p| request.windows(p.len()).any(|w| w == p));
                if hit {
                    // Armed before the request leaves: its answer is the next server bytes.
                    *armed = None;
                    arm.store(true, Ordering::SeqCst);
                }
            }
            if server_out.write_all(request).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut server_in, mut client_out) = (server, client);
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match server_in.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if lose.swap(false, Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                let _ = client_out.shutdown(Shutdown::Both);
                let _ = server_in.shutdown(Shutdown::Both);
                return;
            }
            if client_out.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = client_out.shutdown(Shutdown::Write);
    });
}
