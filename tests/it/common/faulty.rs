//! A raw-socket webhook receiver on 127.0.0.1 that misbehaves on purpose, per notification:
//! it finds the notification's name in the `webhook-id` header of a signed POST (so it knows
//! it before reading the body) and acts as told for that name, answering 200 to the others.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clair_notifier::Timestamp;

/// How to treat a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with these headers and a short body.
    Status(u16, Vec<(String, String)>),
    /// Accept, read the request, never answer (until the client gives up).
    Silent,
    /// Close the connection after the request head, before reading the body.
    CloseMidRequest,
    /// Write the start of a status line, then close.
    CloseMidStatus,
    /// Answer `200` with `Content-Length: 1000`, write 10 bytes of body, then close.
    CloseMidBody,
    /// Write a `200` answer one byte every 200 ms.
    Drip,
    /// Answer this status with an endless chunked body, as fast as the client reads.
    Endless(u16),
    /// Answer `200` with `Content-Length: 1 GiB`, written as fast as the client reads.
    Huge,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub name: String,
    pub at: Instant,
    pub ts: Timestamp,
    pub fault: Option<Fault>,
}

/// What happened after a misbehaving answer: how long until the client closed, and how many
/// bytes of the answer it took.
#[derive(Debug, Clone)]
pub struct Ending {
    pub name: String,
    pub after: Duration,
    pub bytes_written: u64,
}

#[derive(Default)]
struct State {
    faults: Mutex<HashMap<String, Fault>>,
    hits: Mutex<Vec<Hit>>,
    endings: Mutex<Vec<Ending>>,
    paths: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct Faulty {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Faulty {
    pub fn start() -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Faulty {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Treat notification `name` this way from now on (`None`: answer 200).
    pub fn set(&self, name: &str, fault: Option<Fault>) {
        let mut f = self.state.faults.lock().unwrap();
        match fault {
            Some(x) => f.insert(name.to_string(), x),
            None => f.remove(name),
        };
    }

    pub fn hits_for(&self, name: &str) -> Vec<Hit> {
        let hits = self.state.hits.lock().unwrap();
        hits.iter().filter(|h| h.name == name).cloned().collect()
    }

    pub fn endings_for(&self, name: &str) -> Vec<Ending> {
        let e = self.state.endings.lock().unwrap();
        e.iter().filter(|x| x.name == name).cloned().collect()
    }

    /// Every request target seen (to show a redirect was not followed).
    pub fn paths(&self) -> Vec<String> {
        self.state.paths.lock().unwrap().clone()
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads up to the end of a request head; `None` if the connection closed first.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(buf.drain(..p + 4).collect());
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn serve(mut conn: TcpStream, state: &State) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut conn, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        state.paths.lock().unwrap().push(path);
        // `webhook-id` is `<name>.<round>`.
        let id = header(&head, "webhook-id").unwrap_or("");
        let name = id.split('.').next().unwrap_or("").to_string();
        let fault = state.faults.lock().unwrap().get(&name).cloned();
        state.hits.lock().unwrap().push(Hit {
            name: name.clone(),
            at: Instant::now(),
            ts: Timestamp::now(),
            fault: fault.clone(),
        });
        if matches!(fault, Some(Fault::CloseMidRequest)) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
        let length: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..length);
        let started = Instant::now();
        let ending = |bytes: u64| {
            state.endings.lock().unwrap().push(Ending {
                name: name.clone(),
                after: started.elapsed(),
                bytes_written: bytes,
            });
        };
        match fault {
            None => {
                if conn
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .is_err()
                {
                    return;
                }
            }
            Some(Fault::Status(status, headers)) => {
                let mut out = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 5\r\n");
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\nnope\n");
                if conn.write_all(out.as_bytes()).is_err() {
                    return;
                }
            }
            Some(Fault::Silent) => {
                // Wait for the client to give up (its read ends, or it resets).
                let mut chunk = [0u8; 64];
                let _ = conn.read(&mut chunk);
                ending(0);
                return;
            }
            Some(Fault::CloseMidRequest) => unreachable!(),
            Some(Fault::CloseMidStatus) => {
                let _ = conn.write_all(b"HTTP/1.1 20");
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::CloseMidBody) => {
                let _ =
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::Drip) => {
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
                let mut written = 0;
                for b in answer {
                    if conn.write_all(&[*b]).is_err() {
                        break;
                    }
                    written += 1;
                    std::thread::sleep(Duration::from_millis(200));
                    if peer_closed(&conn) {
                        break;
                    }
                }
                ending(written);
                return;
            }
            Some(Fault::Endless(status)) => {
                let head =
                    format!("HTTP/1.1 {status} Whatever\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                let mut written = 0u64;
                if conn.write_all(head.as_bytes()).is_ok() {
                    while conn.write_all(chunk.as_bytes()).is_ok() {
                        written += chunk.len() as u64;
                        if started.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                    }
                }
                ending(written);
                return;
            }
            Some(Fault::Huge) => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
                let block = vec![b'x'; 64 * 1024];
                let mut written = 0u64;
                while written < 1 << 30 && conn.write_all(&block).is_ok() {
                    written += block.len() as u64;
                    if started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                }
                ending(written);
                return;
            }
        }
    }
}

/// Whether the client closed its end (a read would return 0 at once).
fn peer_closed(conn: &TcpStream) -> bool {
    let _ = conn.set_nonblocking(true);
    let mut b = [0u8; 1];
    let closed = matches!(conn.peek(&mut b), Ok(0));
    let _ = conn.set_nonblocking(false);
    closed
}
