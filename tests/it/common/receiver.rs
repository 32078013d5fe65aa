//! A loopback webhook receiver: a real HTTP server on 127.0.0.1, with a programmable status
//! and delay, recording every request it gets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The notification name in a webhook body.
    pub fn name(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON body");
        v["Notification"]["Name"]
            .as_str()
            .expect("a name")
            .to_string()
    }
}

#[derive(Default)]
struct State {
    status: AtomicU16,
    delay_ms: AtomicU64,
    /// Answer `fail_status` for the next N requests, then `status`.
    fail_next: AtomicUsize,
    fail_status: AtomicU16,
    requests: Mutex<Vec<Recorded>>,
    /// Per-name status overrides (one notification's delivery keeps failing).
    by_name: Mutex<HashMap<String, u16>>,
    /// Per-name delays (one notification's delivery hangs).
    delay_for: Mutex<HashMap<String, u64>>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: Arc<State>,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver answering 200 at once, with `threads` handler threads.
    pub fn start(threads: usize) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
        let addr = server.server_addr().to_ip().expect("ip address");
        let state = Arc::new(State {
            status: AtomicU16::new(200),
            fail_status: AtomicU16::new(500),
            ..State::default()
        });
        let threads = (0..threads)
            .map(|_| {
                let (server, state) = (Arc::clone(&server), Arc::clone(&state));
                std::thread::spawn(move || serve(&server, &state))
            })
            .collect();
        Receiver {
            addr,
            state,
            server,
            threads,
        }
    }

    /// The webhook URL of this receiver.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer `status` to the next `n` requests.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Always answer `status` for notification `name`.
    pub fn status_for(&self, name: &str, status: u16) {
        self.state
            .by_name
            .lock()
            .unwrap()
            .insert(name.to_string(), status);
    }

    /// Wait `d` before answering for notification `name`.
    pub fn delay_for(&self, name: &str, d: Duration) {
        self.state
            .delay_for
            .lock()
            .unwrap()
            .insert(name.to_string(), d.as_millis() as u64);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// How many requests named `name`.
    pub fn count_for(&self, name: &str) -> usize {
        self.requests().iter().filter(|r| r.name() == name).count()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, state: &State) {
    while let Ok(mut req) = server.recv() {
        let mut body = Vec::new();
        let _ = std::io::Read::read_to_end(req.as_reader(), &mut body);
        let rec = Recorded {
            method: req.method().to_string(),
            url: req.url().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect(),
            body,
            at: Instant::now(),
        };
        let name = serde_json::from_slice::<serde_json::Value>(&rec.body)
            .ok()
            .and_then(|v| v["Notification"]["Name"].as_str().map(str::to_string));
        state.requests.lock().unwrap().push(rec);
        let mut delay = state.delay_ms.load(Ordering::SeqCst);
        if let Some(d) = name
            .as_ref()
            .and_then(|n| state.delay_for.lock().unwrap().get(n).copied())
        {
            delay = d;
        }
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let mut status = state.status.load(Ordering::SeqCst);
        if let Some(s) = name
            .as_ref()
            .and_then(|n| state.by_name.lock().unwrap().get(n).copied())
        {
            status = s;
        } else if state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            status = state.fail_status.load(Ordering::SeqCst);
        }
        let _ = req.respond(tiny_http::Response::empty(status));
    }
}
