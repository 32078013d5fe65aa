//! A tiny HTTP proxy on 127.0.0.1 that handles `CONNECT` (what ureq sends for every target,
//! http or https) by tunnelling to 127.0.0.1 only, and records each request head it gets.
//! Anything else (an absolute-form request) is recorded and answered 501. Like a proxy with
//! its own DNS, it can know names the test machine does not (always as 127.0.0.1).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request head the proxy got.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// The request line, e.g. `CONNECT 127.0.0.1:4242 HTTP/1.1`.
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl ProxyRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<ProxyRequest>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        Proxy::with_names(&[])
    }

    /// A proxy that resolves each of `names` to 127.0.0.1.
    pub fn with_names(names: &[&str]) -> Proxy {
        let names: Arc<Vec<String>> = Arc::new(names.iter().map(|n| n.to_string()).collect());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let (s, names) = (Arc::clone(&s), Arc::clone(&names));
                    std::thread::spawn(move || handle(stream, &s, &names));
                }
            }
        });
        Proxy {
            addr,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn handle(client: TcpStream, seen: &Mutex<Vec<ProxyRequest>>, names: &[String]) {
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    seen.lock().unwrap().push(ProxyRequest {
        line: line.clone(),
        headers,
    });
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = reader.get_ref().try_clone().unwrap();
    if method != "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    // Tunnel to loopback only: a test never reaches any other address.
    let upstream = target.rsplit_once(':').and_then(|(host, port)| {
        let loopback =
            host == "127.0.0.1" || host == "localhost" || names.iter().any(|n| n == host);
        let port: u16 = port.parse().ok()?;
        loopback
            .then(|| TcpStream::connect(("127.0.0.1", port)).ok())
            .flatten()
    });
    let Some(mut upstream) = upstream else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    // Bytes the client sent after the head (none with ureq, which waits for the 200).
    let early = reader.buffer().to_vec();
    if upstream.write_all(&early).is_err() {
        return;
    }
    let mut client_in = reader.into_inner();
    let mut upstream_out = upstream.try_clone().unwrap();
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}
