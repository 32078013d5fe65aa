//! nginx as a fast receiver: one worker process answering `return 200;` on 127.0.0.1 and a
//! free port, keep-alive, access log on, started from a configuration written in a temp dir
//! and stopped when dropped. Needs no root: every path nginx writes is in that dir.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A running nginx and its access log.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
    log: std::fs::File,
    /// Where the next run's log lines start.
    offset: u64,
}

/// What the access log holds since [`Nginx::mark`]: requests logged, of them POSTs answered
/// 200, and the wall-clock time of the last one (`$msec`, millisecond resolution).
#[derive(Debug, Default, Clone, Copy)]
pub struct Logged {
    pub lines: usize,
    pub posts_ok: usize,
    pub last: Option<SystemTime>,
}

/// The nginx program: `BENCH_NGINX_BIN`, else `nginx` on PATH, else the usual sbin paths
/// (a user's PATH often lacks /usr/sbin, where the distributions put it).
pub fn find_nginx() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_NGINX_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(
            ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    // `user` is only honoured when nginx starts as root; then the worker keeps root's rights,
    // so that it can reach the temp dir (mode 0700) like the master.
    let user = if rustix::process::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    format!(
        r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format bench '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_length $msec';
    access_log {d}/access.log bench;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200; }}
    }}
}}
"#
    )
}

impl Nginx {
    /// Starts nginx, or says why not (missing program, a start that failed).
    pub fn start(program: &Path) -> Result<Nginx, String> {
        let mut last_error = String::new();
        // A free port can be taken by someone else between our probe and nginx's bind: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port)).map_err(|e| e.to_string())?;
            std::fs::write(dir.path().join("access.log"), b"").map_err(|e| e.to_string())?;
            let mut child = Command::new(program)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e}", program.display()))?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    last_error = format!("nginx exited ({status}): {} {}", err.trim(), log.trim());
                    break;
                }
                if std::net::TcpStream::connect(addr).is_ok() {
                    let log = std::fs::File::open(dir.path().join("access.log"))
                        .map_err(|e| e.to_string())?;
                    return Ok(Nginx {
                        child,
                        dir,
                        addr,
                        log,
                        offset: 0,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = "nginx did not listen within 10 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Err(last_error)
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Starts a new run: later [`Nginx::logged`] calls count the lines written from now on.
    pub fn mark(&mut self) {
        self.offset = self.log.seek(SeekFrom::End(0)).expect("seek access log");
    }

    /// Reads the access log from the mark. Only whole lines count (nginx writes each line
    /// with one `write`, but a reader may catch one half written).
    pub fn logged(&mut self) -> Logged {
        let mut text = String::new();
        self.log
            .seek(SeekFrom::Start(self.offset))
            .expect("seek access log");
        self.log.read_to_string(&mut text).expect("read access log");
        let mut l = Logged::default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in whole.lines() {
            l.lines += 1;
            let mut fields = line.rsplit(' ');
            let msec = fields.next().and_then(|m| m.parse::<f64>().ok());
            let status = fields.nth(2);
            if line.contains("\"POST ") && status == Some("200") {
                l.posts_ok += 1;
            }
            if let Some(m) = msec {
                let t = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(m);
                l.last = Some(l.last.map_or(t, |p: SystemTime| p.max(t)));
            }
        }
        l
    }

    /// Waits until `n` requests have been logged since the mark, and returns them.
    pub fn wait_for(&mut self, what: &str, n: usize, timeout: Duration) -> Logged {
        let deadline = Instant::now() + timeout;
        // Only the new bytes are read while waiting, counting line ends: a parse of the
        // whole log every few ms would steal the CPU being measured.
        let (mut lines, mut buf) = (0, vec![0u8; 1 << 16]);
        self.log
            .seek(SeekFrom::Start(self.offset))
            .expect("seek access log");
        loop {
            loop {
                let got = self.log.read(&mut buf).expect("read access log");
                if got == 0 {
                    break;
                }
                lines += buf[..got].iter().filter(|b| **b == b'\n').count();
            }
            if lines >= n {
                return self.logged();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {lines} of {n} logged by nginx"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: a graceful stop (the log is complete); kill if it does not come.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
