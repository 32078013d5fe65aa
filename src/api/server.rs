//! The HTTP server: tiny_http, and a fixed pool of [`THREADS`] handler threads.
//!
//! Limits enforced before a request reaches the routes: the URL ([`MAX_URL_BYTES`], else
//! 414), the header block ([`MAX_HEADER_BYTES`] and 100 headers, else 431) and the body
//! ([`MAX_BODY_BYTES`], else 413; the API reads no body, so a body is only drained). tiny_http
//! reads each connection's header block on a connection thread of its own before the limits
//! are checked, and sets no read timeout: keep the API on loopback (the default) or behind a
//! reverse proxy when it must face an untrusted network.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{Api, Request, Response, ServiceView};
use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Datastore;

/// Handler threads per server.
pub const THREADS: usize = 4;
/// The longest URL (path and query) served.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// The largest header block served (names and values).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest request body accepted (the API reads none).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// Starts the read API.
#[derive(Debug)]
pub struct Server;

/// A running read API. Dropping it stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

pub(crate) fn parse_addr(addr: &str) -> Result<SocketAddr> {
    let mut found = addr.to_socket_addrs().map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("api.addr \"{addr}\" is not a host:port address"),
            e,
        )
    })?;
    found.next().ok_or_else(|| {
        Error::config(format!(
            "api.addr \"{addr}\" does not resolve to any address"
        ))
    })
}

impl Server {
    /// Serves the read API for `store` on `config.addr` (`127.0.0.1:0` picks a free port;
    /// see [`ServerHandle::addr`]), showing `service` in `/health` and `/metrics`.
    ///
    /// # Errors
    ///
    /// A configuration error (bad `api.addr` or `api.pagination_key`; an empty `api.addr`
    /// means the API is off and is refused here), the address could not be bound, or a store
    /// failure while resolving the page key.
    pub fn start(
        config: &ApiConfig,
        store: Arc<dyn Datastore>,
        service: Option<ServiceView>,
    ) -> Result<ServerHandle> {
        let mut api = Api::new(config, store)?;
        if let Some(s) = service {
            api = api.service(s);
        }
        Server::serve(&config.addr, api)
    }

    /// Serves `api` on `addr`.
    ///
    /// # Errors
    ///
    /// A bad address, one that could not be bound, or a thread that could not be spawned.
    pub fn serve(addr: &str, api: Api) -> Result<ServerHandle> {
        if addr.is_empty() {
            return Err(Error::config("api.addr is empty: the read API is off"));
        }
        let socket = parse_addr(addr)?;
        let server = listen(socket)
            .map_err(|e| e.to_string())
            .and_then(|l| tiny_http::Server::from_listener(l, None).map_err(|e| e.to_string()))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("could not listen on {addr} for the read API: {e}"),
                )
            })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::new(ErrorKind::Other, "the read API is not on an IP socket"))?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let api = Arc::new(api);
        let mut handle = ServerHandle {
            addr: bound,
            server,
            stopping,
            threads: Vec::with_capacity(THREADS),
        };
        for i in 0..THREADS {
            let (server, stopping, api) = (
                Arc::clone(&handle.server),
                Arc::clone(&handle.stopping),
                Arc::clone(&api),
            );
            let t = std::thread::Builder::new()
                .name(format!("clair-notifier-api-{i}"))
                .spawn(move || serve_loop(&server, &stopping, &api))
                .map_err(|e| Error::with_source(ErrorKind::Other, "could not start a thread", e))?;
            handle.threads.push(t);
        }
        log::info!("read API listening on http://{bound}");
        Ok(handle)
    }
}

/// A listening socket with `TCP_NODELAY`, which the connections it accepts inherit: an answer
/// larger than one write must not wait for the client's delayed ACK (40 ms a page on a
/// kept-alive connection otherwise).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

impl ServerHandle {
    /// The address the API listens on (with the port chosen, for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets the handler threads finish the requests they hold, and
    /// waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        log::info!("read API on http://{} stopped", self.addr);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

fn serve_loop(server: &tiny_http::Server, stopping: &AtomicBool, api: &Api) {
    while !stopping.load(Ordering::SeqCst) {
        match server.recv() {
            Ok(req) => serve_one(api, req),
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                // tiny_http's accept thread ends after reporting this error: the server
                // takes no new connections from now on.
                log::error!("read API: could not accept connections: {e}");
            }
        }
    }
}

/// A body reader drained up to `limit + 1` bytes: `true` if it stayed within `limit`.
fn body_within(req: &mut tiny_http::Request, limit: usize) -> bool {
    if req.body_length().is_some_and(|n| n > limit) {
        return false;
    }
    let mut sink = Vec::new();
    match req
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut sink)
    {
        Ok(n) => n <= limit,
        Err(_) => true, // the connection is gone; nothing to answer anyway
    }
}

fn serve_one(api: &Api, mut req: tiny_http::Request) {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    let mut close = false;
    let response = if url.len() > MAX_URL_BYTES {
        close = true;
        Response::error(414, "the URL is too long")
    } else if header_bytes > MAX_HEADER_BYTES || req.headers().len() > MAX_HEADERS {
        close = true;
        Response::error(431, "the request's headers are too large")
    } else if !body_within(&mut req, MAX_BODY_BYTES) {
        close = true;
        Response::error(413, "the request's body is too large")
    } else {
        let request = Request {
            method: method.clone(),
            url: url.clone(),
            authorization: req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str().to_string()),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| api.handle(&request)))
            .unwrap_or_else(|_| {
                log::error!("read API: a handler panicked on {method} {}", path_of(&url));
                Response::error(500, "internal error")
            })
    };
    let status = response.status;
    let mut out = tiny_http::Response::from_data(response.body)
        .with_status_code(status)
        .with_header(header("Server", "clair-notifier"));
    if let Some(ct) = response.content_type {
        out.add_header(header("Content-Type", ct));
    }
    for (k, v) in &response.headers {
        out.add_header(header(k, v));
    }
    if close {
        out.add_header(header("Connection", "close"));
    }
    if let Err(e) = req.respond(out) {
        log::debug!("read API: could not answer {method}: {e}");
    }
    log::debug!(
        "{method} {} {status} {:.1}ms",
        path_of(&url),
        start.elapsed().as_secs_f64() * 1000.0
    );
}

/// The path without the query (which may hold a page token).
fn path_of(url: &str) -> String {
    url.split('?')
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|_| tiny_http::Header::from_bytes("X-Invalid", "").expect("valid header"))
}
