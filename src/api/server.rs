//! The HTTP server: a small HTTP/1.1 server with every resource bounded.
//!
//! The parsing is [httparse]'s: the request line and the header fields
//! ([`httparse::Request::parse`], which also says whether the head is complete yet), the
//! chunk-size lines of a chunked body ([`httparse::parse_chunk_size`]) and its trailer fields
//! ([`httparse::parse_headers`]). It checks the syntax (a token method, a target of visible
//! characters, `HTTP/1.0` or `HTTP/1.1`, token header names, header values without control
//! characters) and reads nothing from the socket. Our code does the rest: reading from the
//! connection, framing (where a head ends and the next request begins, the body by
//! `Content-Length` or chunks, keep-alive, `Expect: 100-continue`, `HEAD` answered without a
//! body), the limits, the deadlines and the statuses httparse's answers map to: a malformed
//! head is 400, a version other than 1.0 and 1.1 is 505, a 101st header is 431, and a target
//! or header value that is not UTF-8 is 400.
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
//! (Why not tiny_http: it reads headers without a size or time limit on an unbounded number
//! of threads, lets a slow request body hold one of the handler threads for as long as the
//! client likes, and aborts the process on a request with a huge `Content-Length`.)

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

fn read_head(stream: &TcpStream, buf: &mut Vec<u8>) -> std::result::Result<Head, ReadFailure> {
    let idle_until = Instant::now() + IDLE_TIMEOUT;
    let mut deadline = None;
    // How much of `buf` httparse has seen. A head ends with a line end, so httparse runs again
    // only when one has arrived since: a head sent in many small pieces is not parsed again
    // for each piece.
    let mut seen = 0;
    loop {
        if deadline.is_none() {
            // Blank lines before a request are allowed (RFC 9112, 2.2) and start no clock.
            let blank = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            buf.drain(..blank);
            if !buf.is_empty() {
                deadline = Some(Instant::now() + REQUEST_TIMEOUT);
            }
        }
        if buf[seen..].contains(&b'\n') {
            if let Some((head, len)) = parse_head(buf).map_err(ReadFailure::Answer)? {
                buf.drain(..len);
                return Ok(head);
            }
        }
        seen = buf.len();
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

/// For a head past [`MAX_HEAD_BYTES`]: 414 when the request line alone is too long (its
/// target is over [`MAX_URL_BYTES`], or httparse has not reached the end of the target), else
/// 431.
fn too_large(buf: &[u8]) -> Response {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let _ = request.parse(buf);
    match request.path {
        Some(target) if target.len() <= MAX_URL_BYTES => {
            Response::error(431, "the request's headers are too large")
        }
        _ => Response::error(414, "the URL is too long"),
    }
}

/// The request head at the start of `buf` and its length in bytes (with its blank line), or
/// `Ok(None)` while it is incomplete. httparse checks the syntax (a token method, a target of
/// visible characters, `HTTP/1.0` or `HTTP/1.1`, token header names and header values
/// without control characters); this maps its errors to statuses and applies our limits.
fn parse_head(buf: &[u8]) -> std::result::Result<Option<(Head, usize)>, Response> {
    let bad = |why: &str| Response::error(400, &format!("bad request: {why}"));
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Response::error(431, "the request's headers are too large"));
        }
        // httparse refuses every version but 1.0 and 1.1 this way, and a third word that is
        // no version at all too: only an `HTTP/x` one is a 505.
        Err(httparse::Error::Version) if names_a_version(&request, buf) => {
            return Err(Response::error(
                505,
                "only HTTP/1.0 and HTTP/1.1 are served",
            ));
        }
        Err(e) => return Err(bad(&format!("{e} in the request head"))),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(bad("the request line is not METHOD TARGET HTTP/1.1"));
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
    if !target.starts_with('/') {
        return Err(bad("the target is not a path"));
    }
    let mut headers = Vec::with_capacity(request.headers.len());
    let mut bytes = 0;
    for field in request.headers.iter() {
        // httparse lets through bytes above 0x7f (obsolete text); we serve UTF-8 only.
        let value =
            std::str::from_utf8(field.value).map_err(|_| bad("a header value is not UTF-8"))?;
        bytes += field.name.len() + value.len() + 4;
        headers.push((field.name.to_string(), value.to_string()));
    }
    if bytes > MAX_HEADER_BYTES {
        return Err(Response::error(431, "the request's headers are too large"));
    }
    Ok(Some((
        Head {
            method: method.to_string(),
            target: target.to_string(),
            http10: version == 0,
            headers,
        },
        len,
    )))
}

/// Whether the word httparse refused as a version starts with `HTTP/`. It stands after the
/// method, the target and one space each (httparse allows no more; `buf` has no blank lines
/// before the request line).
fn names_a_version(request: &httparse::Request<'_, '_>, buf: &[u8]) -> bool {
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return false;
    };
    buf.get(method.len() + target.len() + 2..)
        .is_some_and(|v| v.starts_with(b"HTTP/"))
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
/// away. httparse reads each chunk-size line (the size and any extensions) and the trailer
/// fields; the framing around them (data, its CRLF, limits, deadline) is ours.
fn drain_chunked(stream: &TcpStream, buf: &mut Vec<u8>) -> std::result::Result<(), Response> {
    /// The longest chunk-size line (with extensions) read.
    const MAX_CHUNK_LINE: usize = 4096;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let bad = || Response::error(400, "bad request: bad chunked body");
    let more = |buf: &mut Vec<u8>| {
        if fill(stream, buf, deadline).unwrap_or(false) {
            Ok(())
        } else {
            Err(Response::error(408, "the request did not arrive in time"))
        }
    };
    let mut total = 0u64;
    loop {
        let (line, size) = loop {
            // httparse reads an empty line as size 0; a size has at least one digit.
            if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete(c)) => break c,
                Ok(httparse::Status::Partial) if buf.len() <= MAX_CHUNK_LINE => more(buf)?,
                _ => return Err(bad()),
            }
        };
        buf.drain(..line);
        if size == 0 {
            break;
        }
        total = total.saturating_add(size);
        if total > MAX_BODY_BYTES as u64 {
            return Err(Response::error(413, "the request's body is too large"));
        }
        // At most MAX_BODY_BYTES, so it fits.
        let size = size as usize;
        while buf.len() < size + 2 {
            more(buf)?;
        }
        if buf[size..size + 2] != *b"\r\n" {
            return Err(bad());
        }
        buf.drain(..size + 2);
    }
    // Trailer fields, up to the blank line (parsed again only once a line has ended, as the
    // head is).
    let mut seen = 0;
    loop {
        if buf[seen..].contains(&b'\n') {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(buf, &mut fields) {
                Ok(httparse::Status::Complete((len, _))) => {
                    buf.drain(..len);
                    return Ok(());
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(bad()),
            }
        }
        seen = buf.len();
        if buf.len() > MAX_HEADER_BYTES {
            return Err(bad());
        }
        more(buf)?;
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

    /// The head and its length, for a complete head that parses.
    fn head(raw: &[u8]) -> (Head, usize) {
        parse_head(raw).ok().flatten().unwrap()
    }

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\nrest").1, 18);
        assert_eq!(head(b"GET / HTTP/1.1\n\nrest").1, 16);
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nA: b\r\n"),
            Ok(None)
        ));
    }

    #[test]
    fn heads_parse_or_are_refused_with_a_status() {
        let (h, _) = head(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/x?y=1"));
        assert!(h.wants_close());
        let (h, _) = head(b"GET http://h:1/p HTTP/1.0\r\n\r\n");
        assert_eq!(h.target, "/p");
        assert!(h.wants_close());
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let big = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "v".repeat(MAX_HEADER_BYTES)
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "u".repeat(MAX_URL_BYTES));
        for (raw, status) in [
            (&b"GET /\r\n\r\n"[..], 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\n\r\n", 505),
            (b"GET / FTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\n\r\n", 400),
            (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n", 400),
            (many.as_bytes(), 431),
            (big.as_bytes(), 431),
            (long.as_bytes(), 414),
        ] {
            assert_eq!(
                parse_head(raw).err().map(|r| r.status),
                Some(status),
                "{:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(60)])
            );
        }
    }

    #[test]
    fn heads_too_large_to_finish_are_414_or_431_by_their_request_line() {
        let url = format!("GET /{}", "u".repeat(MAX_HEAD_BYTES));
        assert_eq!(too_large(url.as_bytes()).status, 414);
        let target = format!("GET /{} HTTP/1.1\r\nX: v", "u".repeat(MAX_URL_BYTES));
        assert_eq!(too_large(target.as_bytes()).status, 414);
        let header = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(MAX_HEAD_BYTES));
        assert_eq!(too_large(header.as_bytes()).status, 431);
    }

    #[test]
    fn chunked_bodies_are_drained_up_to_the_next_request_or_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let full = format!("8000\r\n{}\r\n8001\r\n", "b".repeat(0x8000));
        let ok = |rest: &[u8]| Ok(rest.to_vec());
        // What is left in the buffer after the body, or the status it is refused with.
        type Outcome = std::result::Result<Vec<u8>, u16>;
        let cases: Vec<(&[u8], Outcome)> = vec![
            (b"3\r\nabc\r\n0\r\n\r\nNEXT", ok(b"NEXT")),
            (
                b"3;a=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: v\r\n\r\nN",
                ok(b"N"),
            ),
            (b"zz\r\n", Err(400)),
            (b"\r\n", Err(400)),
            (b"3\nabc\r\n0\r\n\r\n", Err(400)),
            (b"3\r\nabcX\r\n0\r\n\r\n", Err(400)),
            (b"0\r\nno colon\r\n\r\n", Err(400)),
            (b"10001\r\n", Err(413)),
            (full.as_bytes(), Err(413)),
            (b"3\r\nab", Err(408)),
            (b"0\r\nX-T: v\r\n", Err(408)),
        ];
        for (body, want) in cases {
            let mut client = TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().unwrap();
            client.write_all(body).unwrap();
            // The end of the stream stands for the deadline (both end the reading).
            drop(client);
            let mut buf = Vec::new();
            let got = drain_chunked(&server, &mut buf).map(|()| buf);
            assert_eq!(
                got.map_err(|r| r.status),
                want,
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
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
            let (h, len) = head(raw.as_bytes());
            proptest::prop_assert_eq!(len, raw.len());
            proptest::prop_assert_eq!(h.method, method);
            let want = if path.starts_with("//") || !path.contains("://") { path.clone() } else { h.target.clone() };
            proptest::prop_assert_eq!(h.target, want);
            proptest::prop_assert_eq!(h.headers.len(), headers.len());
        }
    }
}
