//! HTTP/1.1 framing for the read API's server: reading request heads and bodies (by
//! `Content-Length` or chunks) from a connection, and writing answers.
//!
//! The parsing is [httparse]'s: the request line and the header fields
//! ([`httparse::Request::parse`], which also says whether the head is complete yet), the
//! chunk-size lines of a chunked body ([`httparse::parse_chunk_size`]) and its trailer fields
//! ([`httparse::parse_headers`]). It checks the syntax (a token method, a target of visible
//! characters, `HTTP/1.0` or `HTTP/1.1`, token header names, header values without control
//! characters) and reads nothing from the socket. This module does the rest: reading from the
//! connection, framing (where a head ends and the next request begins, the body by
//! `Content-Length` or chunks, `Expect: 100-continue`), the size limits, the request deadlines
//! and the statuses httparse's answers map to: a malformed head is 400, a version other than
//! 1.0 and 1.1 is 505, a 101st header is 431, and a target or header value that is not UTF-8
//! is 400. The connections themselves (accepting, counting, threads, shutdown) are
//! [`super::server`]'s.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use super::Response;

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
const MAX_HEADERS: usize = 100;
/// The most bytes of a request head read before giving up on it.
const MAX_HEAD_BYTES: usize = MAX_URL_BYTES + MAX_HEADER_BYTES + 1024;

/// A connection requests are read from and answers written to.
pub(super) trait Conn: Read + Write {
    /// Bounds how long the next read may wait.
    fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
    /// Ends the sending side once the last answer is written (the client sees the end of the
    /// stream).
    fn finish(&mut self);
}

impl Conn for &TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }

    fn finish(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// A request head as read from the connection.
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asks to close after this request.
    pub(super) fn wants_close(&self) -> bool {
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
pub(super) enum ReadFailure {
    /// The connection closed or went idle before a request began: close quietly.
    Gone,
    /// Answer this and close.
    Answer(Response),
}

/// Reads more bytes into `buf`, waiting until `deadline` at most. `Ok(false)` at the end of
/// the stream or at the deadline.
fn fill(stream: &mut impl Conn, buf: &mut Vec<u8>, deadline: Instant) -> std::io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    stream.set_read_timeout(left.max(Duration::from_millis(1)))?;
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

/// Reads the next request head from `stream` (after what `buf` already holds), waiting
/// [`IDLE_TIMEOUT`] for its first byte and [`REQUEST_TIMEOUT`] from there for the rest.
pub(super) fn read_head(
    stream: &mut impl Conn,
    buf: &mut Vec<u8>,
) -> std::result::Result<Head, ReadFailure> {
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
        if buf[seen..].contains(&b'\n')
            && let Some((head, len)) = parse_head(buf).map_err(ReadFailure::Answer)?
        {
            buf.drain(..len);
            return Ok(head);
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
pub(super) fn check_and_drain(
    stream: &mut impl Conn,
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
        let _ = stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| stream.flush());
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
fn drain_chunked(stream: &mut impl Conn, buf: &mut Vec<u8>) -> std::result::Result<(), Response> {
    /// The longest chunk-size line (with extensions) read.
    const MAX_CHUNK_LINE: usize = 4096;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let bad = || Response::error(400, "bad request: bad chunked body");
    let mut more = |buf: &mut Vec<u8>| {
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

/// Writes `r` (without its body when `head_only`), saying `Connection: close` when `close`.
pub(super) fn write_response(
    stream: &mut impl Write,
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
pub(super) fn path_of(url: &str) -> String {
    url.split('?')
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests;
