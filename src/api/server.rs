//! The read API's server: the listener, the accept loop, one thread per connection, the
//! limits on connections and concurrent requests, and shutdown. Reading requests and writing
//! answers (HTTP/1.1 framing, its size limits and request deadlines) is [`super::http1`]'s.
//!
//! One accept thread per listener (the API's, and the plain `/health` and `/metrics` one of
//! `api.health_addr`), one thread per open connection (at most [`MAX_CONNECTIONS`] in all; one
//! more is answered 503 and closed, or only closed over TLS), and at most [`THREADS`] requests
//! answered at once. Over TLS ([`super::tls`]) the handshake runs on the connection's thread
//! under the deadlines of a request head ([`super::tls_stream`]). Limits
//! enforced before a request reaches the routes: the URL ([`MAX_URL_BYTES`], else 414), the
//! header block ([`MAX_HEADER_BYTES`] and 100 headers, else 431), the body
//! ([`MAX_BODY_BYTES`], else 413, without reading it when `Content-Length` says so; the API
//! reads no body, so a body is only drained). Time limits:
//! a request (head and body) must arrive within [`REQUEST_TIMEOUT`] of its first byte (else
//! 408 and the connection is closed), a kept-alive connection is closed after
//! [`IDLE_TIMEOUT`] without a request, and an answer the client does not read is given up
//! after [`WRITE_TIMEOUT`]. So a client sending its headers one byte a second (slowloris)
//! holds one connection thread for at most [`REQUEST_TIMEOUT`], never a request handler.
//!
//! (Why not tiny_http: it reads headers without a size or time limit on an unbounded number
//! of threads, lets a slow request body hold one of the handler threads for as long as the
//! client likes, and aborts the process on a request with a huge `Content-Length`.)

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rustls::ServerConfig;

use super::http1::{Conn, ReadFailure, check_and_drain, path_of, read_head, write_response};
#[cfg(doc)]
use super::http1::{
    IDLE_TIMEOUT, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES, REQUEST_TIMEOUT,
};
use super::tls_stream::handshake;
use super::{Api, Request, Response, ServiceView};
use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Datastore;

/// Requests answered at once (the rest wait for a turn).
pub const THREADS: usize = 4;
/// Connections open at once, on every listener; one more is answered 503 and closed (over
/// TLS, closed).
pub const MAX_CONNECTIONS: usize = 512;
/// How long writing an answer may block on a client that does not read it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the read API.
#[derive(Debug)]
pub struct Server;

/// The read API while it serves, as [`Server::start`] returns it: its addresses, and the way
/// to stop it ([`stop`](RunningServer::stop), or dropping it).
pub struct RunningServer {
    addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    tls: bool,
    shared: Arc<Shared>,
    /// The accept threads (the API's, then the health listener's), until stopped.
    accept: Vec<(SocketAddr, JoinHandle<()>)>,
}

/// What a listener serves.
#[derive(Clone)]
enum Role {
    /// The whole API, over TLS when there is a configuration.
    Api(Option<Arc<ServerConfig>>),
    /// `/health` and `/metrics` only, plain HTTP.
    Health,
}

/// What the accept thread and the connection threads share.
struct Shared {
    api: Api,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// The open connections (to shut them down on stop).
    open: Mutex<HashMap<u64, Arc<TcpStream>>>,
    closed: Condvar,
    /// Turns to answer a request: [`THREADS`] tokens.
    turns: (Sender<()>, Receiver<()>),
}

/// The address `addr` given as `key`.
pub(crate) fn parse_addr(key: &str, addr: &str) -> Result<SocketAddr> {
    let mut found = addr.to_socket_addrs().map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("{key} \"{addr}\" is not a host:port address"),
            e,
        )
    })?;
    found
        .next()
        .ok_or_else(|| Error::config(format!("{key} \"{addr}\" does not resolve to any address")))
}

/// A listener on `addr` (the setting `key`), and the address it got.
fn bind(key: &str, addr: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = listen(parse_addr(key, addr)?).map_err(|e| {
        Error::with_source(
            ErrorKind::Other,
            format!("could not listen on {addr} for the read API ({key})"),
            e,
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::with_source(ErrorKind::Other, "the read API has no address", e))?;
    Ok((listener, bound))
}

impl Server {
    /// Serves the read API for `store` as `config` says: on `addr` (`127.0.0.1:0` picks a
    /// free port; see [`RunningServer::addr`]), over TLS with `certfile` and `keyfile`,
    /// requiring client certificates with `cafile`, and `/health` and `/metrics` on
    /// `health_addr` too if set; showing `service` in `/health` and `/metrics`.
    ///
    /// # Errors
    ///
    /// A configuration error (a bad `api.addr`, `api.health_addr`, `api.pagination_key` or
    /// TLS file; an empty `api.addr` means the API is off and is refused here), an address
    /// that could not be bound, or a store failure while resolving the page key.
    pub fn start(
        config: &ApiConfig,
        store: Arc<dyn Datastore>,
        service: Option<ServiceView>,
    ) -> Result<RunningServer> {
        Server::serve(config, Api::new(config, store)?, service)
    }

    /// Serves `api` (built with, say, a clock of its own: [`Api::clock`]) where `config`
    /// says, as [`start`](Server::start) does.
    ///
    /// # Errors
    ///
    /// As [`start`](Server::start), or a thread that could not be spawned.
    pub fn serve(
        config: &ApiConfig,
        mut api: Api,
        service: Option<ServiceView>,
    ) -> Result<RunningServer> {
        api.service = service;
        if config.addr.is_empty() {
            return Err(Error::config("api.addr is empty: the read API is off"));
        }
        let tls = super::tls::server_config(config)?;
        let mut listeners = vec![(bind("api.addr", &config.addr)?, Role::Api(tls.clone()))];
        if !config.health_addr.is_empty() {
            listeners.push((bind("api.health_addr", &config.health_addr)?, Role::Health));
        }
        let turns = crossbeam_channel::bounded(THREADS);
        for _ in 0..THREADS {
            let _ = turns.0.send(());
        }
        let shared = Arc::new(Shared {
            api,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            closed: Condvar::new(),
            turns,
        });
        let mut server = RunningServer {
            addr: listeners[0].0.1,
            health_addr: listeners.get(1).map(|l| l.0.1),
            tls: tls.is_some(),
            shared,
            accept: Vec::new(),
        };
        for ((listener, bound), role) in listeners {
            let s = Arc::clone(&server.shared);
            let what = match role {
                Role::Api(None) => "read API listening on http",
                Role::Api(Some(_)) => "read API listening on https",
                Role::Health => "read API health checks listening on http",
            };
            let accept = std::thread::Builder::new()
                .name("api-accept".into())
                .spawn(move || accept_loop(&listener, &s, &role))
                .map_err(|e| Error::with_source(ErrorKind::Other, "could not start a thread", e))?;
            server.accept.push((bound, accept));
            log::info!("{what}://{bound}");
        }
        Ok(server)
    }
}

/// A listening socket with `TCP_NODELAY`, which the connections it accepts inherit: an answer
/// larger than one write must not wait for the client's delayed ACK (40 ms a page on a
/// kept-alive connection otherwise).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

impl RunningServer {
    /// The address the API listens on (with the port chosen, for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the plain-HTTP listener for `/health` and `/metrics` (`api.health_addr`),
    /// if there is one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// Stops taking connections, lets the requests being answered finish, closes every
    /// connection, and waits for their threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.accept.is_empty() {
            return;
        }
        self.shared.stopping.store(true, Ordering::SeqCst);
        for (mut wake, accept) in self.accept.drain(..) {
            // Wake the accept thread with a connection of our own.
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
            let _ = accept.join();
        }
        // Idle connections wait in a read: end it. A connection answering a request finishes
        // its answer first (its write fails at worst).
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        for s in open.values() {
            let _ = s.shutdown(Shutdown::Read);
        }
        let deadline = Instant::now() + WRITE_TIMEOUT + Duration::from_secs(1);
        while !open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            open = match self.shared.closed.wait_timeout(open, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        drop(open);
        log::info!("read API on {} stopped", self.addr);
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("health_addr", &self.health_addr)
            .field("tls", &self.tls)
            .finish()
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, role: &Role) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => {
                backoff = Duration::from_millis(10);
                s
            }
            Err(e) => {
                // Out of file descriptors, say: wait a little and go on (never stop serving).
                log::error!("read API: could not accept a connection: {e}");
                std::thread::park_timeout(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let stream = Arc::new(stream);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.len() >= MAX_CONNECTIONS {
                drop(open);
                log::warn!("read API: {MAX_CONNECTIONS} connections open; refusing one more");
                // Over TLS, an answer would need a handshake first: the connection is closed.
                if !matches!(role, Role::Api(Some(_))) {
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let r = Response::error(503, "too many connections; try again later");
                    let _ = write_response(&mut &*stream, &r, false, true);
                }
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            open.insert(id, Arc::clone(&stream));
        }
        let s = Arc::clone(shared);
        let role = role.clone();
        let spawned = std::thread::Builder::new()
            .name("api-conn".into())
            .spawn(move || {
                match role {
                    Role::Api(None) => serve_connection(&mut &*stream, &s, false),
                    Role::Api(Some(tls)) => {
                        if let Some(mut conn) = handshake(tls, &stream) {
                            serve_connection(&mut conn, &s, false);
                        }
                    }
                    Role::Health => serve_connection(&mut &*stream, &s, true),
                }
                let mut open = s.open.lock().unwrap_or_else(|e| e.into_inner());
                open.remove(&id);
                s.closed.notify_all();
            });
        if let Err(e) = spawned {
            log::error!("read API: could not start a connection thread: {e}");
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = open.remove(&id) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Reads requests from one connection and answers them until it closes; with `health_only`,
/// every path but `/health` and `/metrics` is 404.
fn serve_connection(stream: &mut impl Conn, shared: &Shared, health_only: bool) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = match read_head(stream, &mut buf) {
            Ok(h) => h,
            Err(ReadFailure::Gone) => return,
            Err(ReadFailure::Answer(r)) => {
                log::debug!("read API: refused a request: {}", r.status);
                let _ = write_response(stream, &r, false, true);
                stream.finish();
                return;
            }
        };
        let start = Instant::now();
        let mut close = head.wants_close();
        let response = match check_and_drain(stream, &mut buf, &head) {
            Err(r) => {
                close = true;
                r
            }
            Ok(())
                if health_only
                    && !matches!(path_of(&head.target).as_str(), "/health" | "/metrics") =>
            {
                Response::error(404, "page not found")
            }
            Ok(()) => {
                let request = Request {
                    method: head.method.clone(),
                    url: head.target.clone(),
                    authorization: head.header("Authorization").map(str::to_string),
                };
                // Wait for a turn (at most THREADS requests are answered at once).
                let turn = shared.turns.1.recv();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    shared.api.handle(&request)
                }))
                .unwrap_or_else(|_| {
                    log::error!(
                        "read API: a handler panicked on {} {}",
                        head.method,
                        path_of(&head.target)
                    );
                    Response::error(500, "internal error")
                });
                if turn.is_ok() {
                    let _ = shared.turns.0.send(());
                }
                r
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            close = true;
        }
        let head_only = head.method == "HEAD";
        let written = write_response(stream, &response, head_only, close);
        log::debug!(
            "{} {} {} {:.1}ms",
            head.method,
            path_of(&head.target),
            response.status,
            start.elapsed().as_secs_f64() * 1000.0
        );
        if let Err(e) = written {
            log::debug!("read API: could not answer {}: {e}", head.method);
            return;
        }
        if close {
            stream.finish();
            return;
        }
    }
}

#[cfg(test)]
mod tests;
