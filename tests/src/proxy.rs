//! A TCP proxy on loopback that can lose a reply: the server's answer to a request that did
//! reach it (so the server did what was asked) is swallowed and the client's connection cut,
//! as when a network fails between a server's commit and the client hearing of it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A proxy from a free loopback port to `upstream`, forwarding both ways until told to lose
/// the next reply. It runs until the test process ends.
pub struct LossyProxy {
    port: u16,
    lose_next: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
}

impl LossyProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub fn to(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("its address").port();
        let lose_next = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let (lose, count) = (lose_next.clone(), lost.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                forward(client, server, lose.clone(), count.clone());
            }
        });
        LossyProxy {
            port,
            lose_next,
            lost,
        }
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
fn forward(client: TcpStream, server: TcpStream, lose: Arc<AtomicBool>, lost: Arc<AtomicUsize>) {
    let (mut client_in, mut server_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
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
