//! The HTTP server: a small HTTP/1.1 server with every resource bounded.
//!
//! One accept thread, one thread per open connection (at most [`MAX_CONNECTIONS`]; one more
//! is answered 503 and closed), and at most [`THREADS`] requests answered at once. Limits
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
//! (This replaced tiny_http, which reads headers without a size or time limit on an unbounded
//! number of threads, lets a slow request body hold one of the handler threads for as long as
//! the client likes, and aborts the process on a request with a huge `Content-Length`.)

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::{Api, Request, Response, ServiceView};
use crate::config::ApiConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Datastore;

/// Requests answered at once (the rest wait for a turn).
pub const THREADS: usize = 4;
/// Connections open at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 512;
/// The longest URL (path and query) served.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// The largest header block served (names and values).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest request body accepted (the API reads none).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a request (request line, headers and body) may take to arrive, from its first
/// byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kept-alive connection may stay idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing an answer may block on a client that does not read it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 100;
/// The most bytes of a request head read before giving up on it.
const MAX_HEAD_BYTES: usize = MAX_URL_BYTES + MAX_HEADER_BYTES + 1024;

/// Starts the read API.
#[derive(Debug)]
pub struct Server;

/// A running read API. Dropping it stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
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
        let listener = listen(socket).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("could not listen on {addr} for the read API: {e}"),
            )
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::with_source(ErrorKind::Other, "the read API has no address", e))?;
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
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("api-accept".into())
            .spawn(move || accept_loop(&listener, &s))
            .map_err(|e| Error::with_source(ErrorKind::Other, "could not start a thread", e))?;
        log::info!("read API listening on http://{bound}");
        Ok(ServerHandle {
            addr: bound,
            shared,
            accept: Some(accept),
        })
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

impl ServerHandle {
    /// The address the API listens on (with the port chosen, for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, lets the requests being answered finish, closes every
    /// connection, and waits for their threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = accept.join();
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
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
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let r = Response::error(503, "too many connections; try again later");
                let _ = write_response(&stream, &r, false, true);
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            open.insert(id, Arc::clone(&stream));
        }
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("api-conn".into())
            .spawn(move || {
                serve_connection(&stream, &s);
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

/// A request head as read from the connection.
struct Head {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asks to close after this request.
    fn wants_close(&self) -> bool {
        let conn = self.header("Connection").unwrap_or("");
        let has = |t: &str| conn.split(',').any(|x| x.trim().eq_ignore_ascii_case(t));
        if self.http10 {
            !has("keep-alive")
        } else {
            has("close")
        }
    }
}

/// Why reading a request stopped.
enum ReadFailure {
    /// The connection closed or went idle before a request began: close quietly.
    Gone,
    /// Answer this and close.
    Answer(Response),
}

/// Reads requests from one connection and answers them until it closes.
fn serve_connection(stream: &TcpStream, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = match read_head(stream, &mut buf) {
            Ok(h) => h,
            Err(ReadFailure::Gone) => return,
            Err(ReadFailure::Answer(r)) => {
                log::debug!("read API: refused a request: {}", r.status);
                let _ = write_response(stream, &r, false, true);
                let _ = stream.shutdown(Shutdown::Write);
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
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Reads more bytes into `buf`, waiting until `deadline` at most. `Ok(false)` at the end of
/// the stream or at the deadline.
fn fill(mut stream: &TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> std::io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

/// Where the head in `buf` ends (after its blank line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let next = &buf[nl + 1..];
        if next.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn read_head(stream: &TcpStream, buf: &mut Vec<u8>) -> std::result::Result<Head, ReadFailure> {
    // Blank lines before a request are allowed (RFC 9112, 2.2).
    let idle_until = Instant::now() + IDLE_TIMEOUT;
    let mut deadline = None;
    loop {
        while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            buf.remove(0);
        }
        if !buf.is_empty() && deadline.is_none() {
            deadline = Some(Instant::now() + REQUEST_TIMEOUT);
        }
        if let Some(end) = head_end(buf) {
            let head: Vec<u8> = buf.drain(..end).collect();
            return parse_head(&head).map_err(ReadFailure::Answer);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ReadFailure::Answer(too_large(buf)));
        }
        let more = fill(stream, buf, deadline.unwrap_or(idle_until)).unwrap_or(false);
        if !more {
            return Err(match deadline {
                Some(_) if !buf.is_empty() => {
                    ReadFailure::Answer(Response::error(408, "the request did not arrive in time"))
                }
                _ => ReadFailure::Gone,
            });
        }
    }
}

/// 414 when the request line alone is too long, else 431.
fn too_large(head: &[u8]) -> Response {
    let line = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    if line > MAX_URL_BYTES {
        Response::error(414, "the URL is too long")
    } else {
        Response::error(431, "the request's headers are too large")
    }
}

fn parse_head(raw: &[u8]) -> std::result::Result<Head, Response> {
    let bad = |why: &str| Response::error(400, &format!("bad request: {why}"));
    let text = std::str::from_utf8(raw).map_err(|_| bad("the request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        if line.len() > MAX_URL_BYTES {
            return Err(too_large(raw));
        }
        return Err(bad("the request line is not METHOD TARGET HTTP/1.1"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad("the method is not a token"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Err(Response::error(
                505,
                "only HTTP/1.0 and HTTP/1.1 are served",
            ));
        }
        _ => return Err(bad("the request line is not METHOD TARGET HTTP/1.1")),
    };
    if target.len() > MAX_URL_BYTES {
        return Err(Response::error(414, "the URL is too long"));
    }
    // The absolute form (a proxy's) is served as its path.
    let target = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => target,
    };
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("the target is not a path"));
    }
    let mut headers = Vec::new();
    let mut bytes = 0;
    for l in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad("a header line has no colon"));
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad("a header name is not a token"));
        }
        bytes += name.len() + value.len() + 4;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        return Err(Response::error(431, "the request's headers are too large"));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        http10,
        headers,
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the body's framing and reads the body (up to [`MAX_BODY_BYTES`]) to throw it away.
fn check_and_drain(
    mut stream: &TcpStream,
    buf: &mut Vec<u8>,
    head: &Head,
) -> std::result::Result<(), Response> {
    if let Some(te) = head.header("Transfer-Encoding") {
        if !te.trim().eq_ignore_ascii_case("chunked") {
            return Err(Response::error(
                411,
                "a request body needs a Content-Length or chunked encoding",
            ));
        }
        return drain_chunked(stream, buf);
    }
    let mut length: Option<u64> = None;
    for (_, v) in head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
    {
        let n = v
            .parse::<u64>()
            .ok()
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()));
        match (n, length) {
            (None, _) => return Err(Response::error(400, "bad request: bad Content-Length")),
            (Some(n), Some(m)) if n != m => {
                return Err(Response::error(400, "bad request: bad Content-Length"));
            }
            (Some(n), _) => length = Some(n),
        }
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES as u64 {
        return Err(Response::error(413, "the request's body is too large"));
    }
    let length = length as usize;
    if length > buf.len()
        && head
            .header("Expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while buf.len() < length {
        if !fill(stream, buf, deadline).unwrap_or(false) {
            return Err(Response::error(408, "the request did not arrive in time"));
        }
    }
    buf.drain(..length);
    Ok(())
}

/// Reads a chunked body (at most [`MAX_BODY_BYTES`] of data) and its trailers, to throw them
/// away.
fn drain_chunked(stream: &TcpStream, buf: &mut Vec<u8>) -> std::result::Result<(), Response> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let late = || Response::error(408, "the request did not arrive in time");
    let bad = || Response::error(400, "bad request: bad chunked body");
    let mut total = 0usize;
    // One line (without its CRLF), reading more as needed; lines are short.
    let line = |stream: &TcpStream, buf: &mut Vec<u8>| loop {
        if let Some(p) = buf.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = buf.drain(..=p).collect();
            let l = String::from_utf8_lossy(&l).trim_end().to_string();
            return Ok(l);
        }
        if buf.len() > 4096 {
            return Err(bad());
        }
        if !fill(stream, buf, deadline).unwrap_or(false) {
            return Err(late());
        }
    };
    loop {
        let size_line = line(stream, buf)?;
        let hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| bad())?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !line(stream, buf)?.is_empty() {}
            return Ok(());
        }
        total = total.saturating_add(size);
        if total > MAX_BODY_BYTES {
            return Err(Response::error(413, "the request's body is too large"));
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf, deadline).unwrap_or(false) {
                return Err(late());
            }
        }
        buf.drain(..size + 2);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn write_response(
    mut stream: &TcpStream,
    r: &Response,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nServer: clair-notifier\r\nDate: {}\r\nContent-Length: {}\r\n",
        r.status,
        reason(r.status),
        httpdate::fmt_http_date(SystemTime::now()),
        r.body.len()
    );
    if let Some(ct) = r.content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in &r.headers {
        // Values come from the routes; a line break would split the answer.
        if !v.contains(['\r', '\n']) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn heads_parse_or_are_refused_with_a_status() {
        let h = parse_head(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/x?y=1"));
        assert!(h.wants_close());
        let h = parse_head(b"GET http://h:1/p HTTP/1.0\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!(h.target, "/p");
        assert!(h.wants_close());
        for (raw, status) in [
            (&b"GET /\r\n\r\n"[..], 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"G(T / HTTP/1.1\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n", 400),
        ] {
            assert_eq!(
                parse_head(raw).err().map(|r| r.status),
                Some(status),
                "{raw:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_head_parses_or_gets_a_refusal_status(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)
        ) {
            if let Err(r) = parse_head(&raw) {
                proptest::prop_assert!([400, 414, 431, 505].contains(&r.status), "{}", r.status);
            }
            let _ = head_end(&raw);
            let _ = too_large(&raw);
        }

        #[test]
        fn generated_heads_parse_to_their_parts(
            method in "[A-Z]{1,8}",
            path in "/[!-~]{0,60}",
            headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..10),
        ) {
            let mut raw = format!("{method} {path} HTTP/1.1\r\n");
            for (k, v) in &headers {
                raw.push_str(&format!("{k}: {v}\r\n"));
            }
            raw.push_str("\r\n");
            proptest::prop_assert_eq!(head_end(raw.as_bytes()), Some(raw.len()));
            let h = parse_head(raw.as_bytes()).ok().unwrap();
            proptest::prop_assert_eq!(h.method, method);
            let want = if path.starts_with("//") || !path.contains("://") { path.clone() } else { h.target.clone() };
            proptest::prop_assert_eq!(h.target, want);
            proptest::prop_assert_eq!(h.headers.len(), headers.len());
        }
    }
}
