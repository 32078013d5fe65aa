//! The `exec` notifier: runs a program for each notification (Unix).
//!
//! `[notifier.exec] command = ["/path/prog", "arg"]` is an argument list, never given to a
//! shell. The program gets the whole notification (every layer; the read API's document
//! without its paging fields) as JSON on stdin, and its name in `CLAIR_NOTIFICATION_NAME`.
//! Exit status 0 is a delivery; anything else is a failed attempt whose error holds an
//! excerpt of what the program wrote (stderr, else stdout; at most [`MAX_OUTPUT`] of each is
//! kept). The program runs in a process group of its own: after `timeout` (default 30s) the
//! group is sent SIGTERM, and SIGKILL two seconds later. Every program is waited for, so none
//! is left a zombie.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::config::{NotifierConfig, format_duration};
use crate::document::Source;
use crate::error::{Error, Result};
use crate::notifier::{Delivery, Notifier, SendError};
use crate::params::Table;
use crate::store::Datastore;
use crate::text::{one_line, truncate};

/// The most of a program's stdout, and of its stderr, that is kept.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How long a program may run when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after SIGTERM the process group is sent SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(2);

/// The characters of output quoted in an error.
const EXCERPT: usize = 200;

/// The built-in `exec` notifier, enabled when `[notifier.exec] command` is set.
#[derive(Default)]
pub struct Exec {
    settings: Option<Settings>,
    source: Source,
}

#[derive(Clone)]
struct Settings {
    command: Vec<String>,
    timeout: Duration,
}

/// Shows the program and the timeout; never the arguments, which may hold a secret.
impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Exec");
        if let Some(s) = &self.settings {
            d.field("program", &s.command[0])
                .field("arguments", &(s.command.len() - 1))
                .field("timeout", &s.timeout);
        }
        d.finish_non_exhaustive()
    }
}

impl Exec {
    /// Checks `[notifier.exec]` of `config` as configuring does; `true` when it enables the
    /// notifier.
    ///
    /// # Errors
    ///
    /// A configuration error naming the key: an unknown key, a `command` that is not a list
    /// of strings or whose program is missing or not executable, a bad `timeout`.
    pub fn check(config: &NotifierConfig) -> Result<bool> {
        Ok(settings(config)?.is_some())
    }
}

fn settings(config: &NotifierConfig) -> Result<Option<Settings>> {
    let Some(table) = Table::of(config, "exec", &["command", "timeout"])? else {
        return Ok(None);
    };
    let command = table.strings("command")?;
    let timeout = table.duration("timeout", DEFAULT_TIMEOUT)?;
    let Some(program) = command.first() else {
        return Ok(None);
    };
    // The run may last the timeout and the two seconds before SIGKILL.
    if config.lease < timeout.saturating_mul(2).saturating_add(KILL_AFTER) {
        return Err(Error::config(format!(
            "notifier.lease ({}) must be at least twice notifier.exec.timeout ({}) plus 2s, so \
             a program still running keeps its lease",
            format_duration(config.lease),
            format_duration(timeout)
        )));
    }
    check_program(program)?;
    Ok(Some(Settings { command, timeout }))
}

/// The program must be an executable file: by its path when it holds a `/`, else found in
/// `PATH`.
fn check_program(program: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = Path::new(program);
        let why = match path.metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
            Err(_) => "cannot be read",
            Ok(m) if !m.is_file() => "is not a file",
            Ok(_) if !executable(path) => "is not executable",
            Ok(_) => return Ok(()),
        };
        return Err(Error::config(format!(
            "notifier.exec.command: the program \"{program}\" {why}"
        )));
    }
    if program.is_empty() {
        return Err(Error::config(
            "notifier.exec.command: the program (its first item) is empty",
        ));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
        return Ok(());
    }
    Err(Error::config(format!(
        "notifier.exec.command: no executable program \"{program}\" in PATH"
    )))
}

impl Notifier for Exec {
    fn configure(&mut self, config: &NotifierConfig) -> Result<bool> {
        self.settings = settings(config)?;
        Ok(self.settings.is_some())
    }

    fn send(&self, delivery: &Delivery) -> std::result::Result<(), SendError> {
        let settings = (self.settings.as_ref())
            .ok_or_else(|| SendError::new("the exec notifier is not configured"))?;
        run(settings, &delivery.name, self.source.read(&delivery.name)?)
    }

    fn bind(&mut self, store: &Arc<dyn Datastore>) {
        self.source.bind(store);
    }
}

/// What a finished run left: how it ended and what it wrote.
struct Finished {
    status: ExitStatus,
    /// `None`: the timeout; `Some(true)`: SIGKILL was needed too.
    timed_out: Option<bool>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run(settings: &Settings, name: &str, document: Vec<u8>) -> std::result::Result<(), SendError> {
    let program = &settings.command[0];
    let fail = |why: String| SendError::new(one_line(&format!("exec {program}: {why}")));
    let finished = spawn_and_wait(settings, name, document).map_err(|e| fail(e.to_string()))?;
    if let Some(killed) = finished.timed_out {
        return Err(fail(format!(
            "timed out after {}; its process group was sent SIGTERM{}",
            format_duration(settings.timeout),
            if killed { ", then SIGKILL" } else { "" }
        )));
    }
    if finished.status.success() {
        return Ok(());
    }
    let ended = match (finished.status.code(), signal_of(finished.status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".to_string(),
    };
    let output = if finished.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &finished.stderr
    } else {
        &finished.stdout
    };
    let excerpt = String::from_utf8_lossy(output);
    let excerpt = excerpt.trim();
    if excerpt.is_empty() {
        Err(fail(ended))
    } else {
        Err(fail(format!("{ended}: {}", truncate(excerpt, EXCERPT))))
    }
}

fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Runs the program: the document written to its stdin and its output read on threads of
/// their own (so that neither side can block the other), its exit awaited on another (which
/// reaps it whatever happens here).
fn spawn_and_wait(settings: &Settings, name: &str, document: Vec<u8>) -> std::io::Result<Finished> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(&settings.command[0])
        .args(&settings.command[1..])
        .env("CLAIR_NOTIFICATION_NAME", name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let group = Pid::from_child(&child);
    let deadline = Instant::now() + settings.timeout;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is not an error of the writer.
        spawn_thread("exec-stdin", move || {
            let _ = stdin.write_all(&document);
        })?;
    }
    let stdout = read_on_thread(child.stdout.take())?;
    let stderr = read_on_thread(child.stderr.take())?;
    let exited = wait_on_thread(child)?;

    let mut timed_out = None;
    let status = match exited.recv_timeout(settings.timeout) {
        Ok(status) => status?,
        Err(_) => {
            let _ = kill_process_group(group, Signal::TERM);
            timed_out = Some(false);
            match exited.recv_timeout(KILL_AFTER) {
                Ok(status) => status?,
                Err(_) => {
                    let _ = kill_process_group(group, Signal::KILL);
                    timed_out = Some(true);
                    exited
                        .recv()
                        .map_err(|_| std::io::Error::other("its waiting thread ended"))??
                }
            }
        }
    };
    // The output ends when every process holding the pipes has gone; one that the program
    // left running in its group must not hold the attempt past its deadline.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(KILL_AFTER);
    let collect = |rx: &mpsc::Receiver<Vec<u8>>| match rx.recv_timeout(left) {
        Ok(out) => out,
        Err(_) => {
            let _ = kill_process_group(group, Signal::KILL);
            rx.recv_timeout(KILL_AFTER).unwrap_or_default()
        }
    };
    let stdout = collect(&stdout);
    let stderr = collect(&stderr);
    Ok(Finished {
        status,
        timed_out,
        stdout,
        stderr,
    })
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(drop)
}

/// Reads `pipe` to its end on a thread, keeping the first [`MAX_OUTPUT`] bytes.
fn read_on_thread(
    pipe: Option<impl Read + Send + 'static>,
) -> std::io::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    let Some(mut pipe) = pipe else {
        let _ = tx.send(Vec::new());
        return Ok(rx);
    };
    spawn_thread("exec-output", move || {
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(MAX_OUTPUT as u64).read_to_end(&mut kept);
        // The rest is read and dropped, so the program never blocks on a full pipe.
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        let _ = tx.send(kept);
    })?;
    Ok(rx)
}

fn wait_on_thread(
    mut child: Child,
) -> std::io::Result<mpsc::Receiver<std::io::Result<ExitStatus>>> {
    let (tx, rx) = mpsc::channel();
    spawn_thread("exec-wait", move || {
        let _ = tx.send(child.wait());
    })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::with_table;

    #[test]
    fn programs_that_cannot_run_are_named_with_the_key() {
        assert!(
            Exec::check(&with_table(
                "exec",
                serde_json::json!({"command": ["sh", "-c", "true"]})
            ))
            .unwrap()
        );
        assert!(!Exec::check(&with_table("exec", serde_json::json!({"command": []}))).unwrap());
        assert!(!Exec::check(&NotifierConfig::default()).unwrap());
        let long = serde_json::json!({"command": ["sh"], "timeout": "5m"});
        let err = Exec::check(&with_table("exec", long))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "notifier.lease (10m) must be at least twice notifier.exec.timeout (5m) plus 2s, so \
             a program still running keeps its lease"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "not a program").unwrap();
        for (command, why) in [
            (vec!["/nonexistent/prog".to_string()], "does not exist"),
            (vec![plain.display().to_string()], "is not executable"),
            (vec![dir.path().display().to_string()], "is not a file"),
            (vec!["no-such-program-here".to_string()], "in PATH"),
            (vec![String::new()], "is empty"),
        ] {
            let err = Exec::check(&with_table(
                "exec",
                serde_json::json!({ "command": command }),
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("notifier.exec.command"), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn debug_shows_the_program_but_no_argument() {
        let mut e = Exec::default();
        let command = serde_json::json!({"command": ["sh", "-c", "notify --token s3cr3t"]});
        assert!(e.configure(&with_table("exec", command)).unwrap());
        let shown = format!("{e:?}");
        assert!(shown.contains("program: \"sh\", arguments: 2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
