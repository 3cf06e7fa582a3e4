//! One HTTP/1.1 keep-alive connection to the example service, for the programs that load it
//! (`tests/service_load.rs`, `bin/soak.rs`). Transport failures are values, not panics: the
//! soak kills servers under load and counts what their clients could not learn.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A keep-alive HTTP/1.1 connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    /// Connects to `addr` (`TCP_NODELAY`) and runs the connection on a tokio task.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake with {addr}: {e}"))?;
        tokio::spawn(connection);
        Ok(Client {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer, a JSON object. `Err`: the connection
    /// failed before the whole answer arrived (the request may or may not have been served),
    /// or the answer is not JSON.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let request = request.body(body).map_err(|e| format!("request: {e}"))?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("response: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        Ok((status, value))
    }
}
