//! A raw HTTP/1.1 server on 127.0.0.1, over TCP or TLS (rustls), that answers what the test
//! tells it to (any status, any headers, any body) and records each request with the
//! connection it came on, and for TLS the SNI name and whether a client certificate was shown.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Which accepted connection (from 1) carried it.
    pub conn: usize,
    pub peer: SocketAddr,
    pub method: String,
    /// The request target, e.g. `/hook`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The SNI name the client sent (TLS only).
    pub sni: Option<String>,
    /// Whether the client presented a certificate (TLS only).
    pub client_cert: bool,
}

impl RawRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer to a request.
pub type Respond = dyn Fn(&RawRequest) -> Vec<u8> + Send + Sync;

/// A raw HTTP response: `status`, extra `headers`, `body`, with `Content-Length`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<RawRequest>>,
    tls_errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A running server; stops accepting when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl RawServer {
    /// A plain HTTP server answering with `respond`.
    pub fn http(respond: impl Fn(&RawRequest) -> Vec<u8> + Send + Sync + 'static) -> RawServer {
        RawServer::start(None, Arc::new(respond))
    }

    /// An HTTPS server with rustls configuration `tls`, answering with `respond`.
    pub fn https(
        tls: Arc<rustls::ServerConfig>,
        respond: impl Fn(&RawRequest) -> Vec<u8> + Send + Sync + 'static,
    ) -> RawServer {
        RawServer::start(Some(tls), Arc::new(respond))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, respond: Arc<Respond>) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let conn = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let (st, tls, respond) = (Arc::clone(&st), tls.clone(), Arc::clone(&respond));
                std::thread::spawn(move || serve(conn, stream, tls, &st, &*respond));
            }
        });
        RawServer {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many requests named each notification (webhook bodies), and how many requests in
    /// all.
    pub fn names_seen(&self) -> (HashMap<String, usize>, usize) {
        let requests = self.requests();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for r in &requests {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let name = v["Notification"]["Name"].as_str().unwrap().to_string();
            *by_name.entry(name).or_default() += 1;
        }
        (by_name, requests.len())
    }

    /// Failed TLS handshakes, as rustls described them.
    pub fn tls_errors(&self) -> Vec<String> {
        self.state.tls_errors.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn serve(
    conn: usize,
    mut tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: &State,
    respond: &Respond,
) {
    // A client that goes quiet must not hold this thread forever.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let peer = tcp.peer_addr().unwrap();
    let (stream, sni, client_cert): (Box<dyn Stream>, _, _) = match tls {
        None => (Box::new(tcp), None, false),
        Some(config) => {
            let mut tls = rustls::ServerConnection::new(config).unwrap();
            while tls.is_handshaking() {
                if let Err(e) = tls.complete_io(&mut tcp) {
                    state.tls_errors.lock().unwrap().push(e.to_string());
                    // Send the alert, if any, before closing.
                    let _ = tls.write_tls(&mut tcp);
                    return;
                }
            }
            let sni = tls.server_name().map(str::to_string);
            let client_cert = tls.peer_certificates().is_some_and(|c| !c.is_empty());
            (
                Box::new(rustls::StreamOwned::new(tls, tcp)),
                sni,
                client_cert,
            )
        }
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some(mut req) = read_request(&mut reader) else {
            // TLS 1.3 finishes the client's handshake before the server has checked the
            // client's certificate: a rejection shows up here.
            return;
        };
        req.conn = conn;
        req.peer = peer;
        req.sni = sni.clone();
        req.client_cert = client_cert;
        let answer = respond(&req);
        state.requests.lock().unwrap().push(req);
        let out = reader.get_mut();
        if out.write_all(&answer).and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

/// Reads one request (with a `Content-Length` body); `None` at the end of the connection.
fn read_request(r: &mut impl BufRead) -> Option<RawRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(RawRequest {
        conn: 0,
        peer: "0.0.0.0:0".parse().unwrap(),
        method,
        target,
        headers,
        body,
        sni: None,
        client_cert: false,
    })
}

/// A listener on 127.0.0.1 that accepts connections and never answers; it keeps them open
/// until dropped.
pub struct Silent {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent listener");
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (Arc::clone(&held), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    h.lock().unwrap().push(stream);
                }
            }
        });
        Silent {
            addr,
            held,
            stop,
            accept: Some(accept),
        }
    }

    /// How many connections it holds.
    pub fn accepted(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The status and body of a raw HTTP answer (status 0 when there is none).
pub fn status_and_body(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}
