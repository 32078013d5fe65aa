//! The operators' commands: `resend` and `pause`/`resume`, their arguments and help.

use std::io::Write;
use std::sync::Arc;

use clair_notifier::api::{Api, PageError};
use clair_notifier::store::Resend;
use clair_notifier::{Datastore, Registry, Timestamp};

use crate::args::Global;
use crate::open::{load, open_existing};
use crate::{CliError, count, rfc3339};

pub const RESEND_HELP: &str = "\
Usage: clair-notifier [--config FILE] resend NAME [--unread]
       clair-notifier [--config FILE] resend --failing

Makes the notification NAME due at once with a fresh round: its failed attempts, its error
and every notifier's progress in the round are forgotten, and a running `serve` sends it within
[notifier] poll_interval. A read notification is refused (exit 1) unless --unread is given,
which clears its read mark first. A notification whose send is in flight keeps its lease: that
send's outcome decides what follows. Exit 1 if there is no such notification.

Options:
  --unread    also send a notification that was read (it is unread again)
  --failing   every failing notification instead of one NAME; prints how many
";

pub const PAUSE_HELP: &str = "\
Usage: clair-notifier [--config FILE] pause NOTIFIER

Pauses the notifier (webhook, or one registered by the program): nothing is sent through it
until `resume NOTIFIER`. Kept in the database: every `serve` on it stops sending through the
notifier within [notifier] poll_interval (a send already under way finishes), and a restart
keeps the pause. Its notifications wait, due, without spending attempts and without being
marked failing; none is lost. Pausing a paused notifier changes nothing. Exit 2 for a name
that is no notifier. `stats`, `list` and /metrics show paused notifiers.
";

pub const RESUME_HELP: &str = "\
Usage: clair-notifier [--config FILE] resume NOTIFIER

Ends the pause of the notifier: what waited for it is due at once, and a running `serve`
sends it within [notifier] poll_interval, continuing where it stopped. Resuming a notifier
that is not paused changes nothing. Exit 2 for a name that is no notifier.
";

/// An operator's command, parsed.
#[derive(Debug, PartialEq)]
pub enum Op {
    Resend { name: String, unread: bool },
    ResendFailing,
    Pause { notifier: String, paused: bool },
    Attempts { name: String, json: bool },
}

/// `show NAME --attempts [--json]`, given the options `seen`.
pub fn show_attempts(name: String, seen: &[&str]) -> Result<Op, CliError> {
    if !seen.contains(&"--attempts") {
        return Err(CliError::usage(
            "show takes --json only with --attempts (a page is JSON already)",
        ));
    }
    if let Some(o) = seen.iter().find(|o| ["--limit", "--page"].contains(o)) {
        return Err(CliError::usage(format!(
            "show --attempts takes no {o} (the log is not paged)"
        )));
    }
    Ok(Op::Attempts {
        name,
        json: seen.contains(&"--json"),
    })
}

/// The command `command` with its first positional argument `name` and its options `seen`.
pub fn parse(command: &str, name: Option<&str>, seen: &[&str]) -> Result<Op, CliError> {
    let has = |o: &str| seen.contains(&o);
    let needs = |what: &str| {
        CliError::usage(format!(
            "{command} needs a {what}; see clair-notifier {command} --help"
        ))
    };
    Ok(match (command, name) {
        ("resend", Some(_)) if has("--failing") => {
            return Err(CliError::usage(
                "resend takes a NAME or --failing, not both",
            ));
        }
        ("resend", None) if has("--failing") => {
            if has("--unread") {
                return Err(CliError::usage(
                    "resend --failing takes no --unread (a read notification is never failing)",
                ));
            }
            Op::ResendFailing
        }
        ("resend", Some(name)) => Op::Resend {
            name: name.to_string(),
            unread: has("--unread"),
        },
        ("resend", None) => return Err(needs("notification NAME (or --failing)")),
        (_, Some(n)) => Op::Pause {
            notifier: n.to_string(),
            paused: command == "pause",
        },
        (_, None) => return Err(needs("NOTIFIER name, e.g. webhook")),
    })
}

pub fn run(global: &Global, op: Op) -> Result<(), CliError> {
    if let Op::Pause { notifier, .. } = &op {
        // Before the configuration and the database: a wrong name is a usage mistake.
        let known = Registry::take_global().names();
        if !known.contains(notifier) {
            return Err(CliError::usage(format!(
                "there is no notifier named \"{notifier}\" (the notifiers are {})",
                known.join(", ")
            )));
        }
    }
    let config = load(global)?;
    let store = open_existing(&config)?;
    let now = Timestamp::now();
    let mut out = std::io::stdout().lock();
    match op {
        Op::Resend { name, unread } => match store.resend(&name, unread, now)? {
            Resend::Resent => log::info!("{name} is due at once, with a fresh round"),
            Resend::Read => {
                return Err(CliError::runtime(format!(
                    "notification \"{name}\" is read, so it is not resent (resend --unread sends it again)"
                )));
            }
            Resend::Unknown => return Err(no_such(&name)),
        },
        Op::ResendFailing => {
            let n = store.resend_failing(now)?;
            log::info!("resent {}", count(n, "failing notification"));
            writeln!(out, "{n}")?;
        }
        Op::Attempts { name, json } => {
            let store: Arc<dyn Datastore> = store.clone();
            if json {
                let api = Api::new(&config.api, store)?;
                match api.read_attempts(&name) {
                    Ok(body) => out.write_all(&body)?,
                    Err(PageError::Store(e)) => return Err(e.into()),
                    Err(_) => return Err(no_such(&name)),
                }
                return Ok(());
            }
            let log = store.attempts(&name)?.ok_or_else(|| no_such(&name))?;
            let when = |t: Option<Timestamp>| t.map_or("-".to_string(), |t| rfc3339(t, true));
            for a in log {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{} ms\t{}\t{}",
                    rfc3339(a.started, true),
                    a.notifier,
                    a.class.as_str(),
                    a.status.map_or("-".to_string(), |s| s.to_string()),
                    a.duration.as_millis(),
                    when(a.next_due),
                    a.excerpt
                        .as_deref()
                        .unwrap_or("-")
                        .replace(['\t', '\n', '\r'], " ")
                )?;
            }
        }
        Op::Pause { notifier, paused } => {
            let changed = store.set_paused(&notifier, paused, now)?;
            let word = if paused { "paused" } else { "resumed" };
            if changed {
                log::info!("notifier {notifier} {word}");
            } else {
                log::info!("notifier {notifier} was already {word}: nothing changed");
            }
        }
    }
    Ok(())
}

fn no_such(name: &str) -> CliError {
    CliError::runtime(format!("there is no notification named \"{name}\""))
}

/// One sentence per held notifier (paused, or its circuit open), for the read commands to
/// show (on stderr, so that their output stays what scripts read).
pub fn paused_notes(store: &dyn Datastore) -> Result<Vec<String>, CliError> {
    let mut notes = Vec::new();
    for s in store.notifiers(Timestamp::now())? {
        let n = &s.notifier;
        if let Some(since) = s.paused {
            let since = rfc3339(since, false);
            notes.push(format!(
                "notifier {n} is paused since {since}: its notifications wait (resume {n} to go on)"
            ));
        }
        if let Some(since) = s.open_since {
            let since = rfc3339(since, false);
            notes.push(format!(
                "the circuit of notifier {n} is open since {since}: its notifications wait until \
                 a probe succeeds"
            ));
        }
    }
    Ok(notes)
}

/// `key value` lines of `stats`.
type Lines = Vec<(&'static str, String)>;

/// What `stats` shows of the notifiers: `paused` and `circuits` lines (`-` when none), and
/// the same as JSON (`{"webhook":{"paused":false,"circuit":"open","failures":25,...}}`).
pub fn notifier_stats(
    store: &dyn Datastore,
    now: Timestamp,
) -> Result<(Lines, serde_json::Value), CliError> {
    let states = store.notifiers(now)?;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(", ")
        }
    };
    let paused = states.iter().filter(|s| s.paused.is_some());
    let open = states.iter().filter(|s| s.open_since.is_some());
    let lines = vec![
        ("paused", list(paused.map(|s| s.notifier.clone()).collect())),
        (
            "circuits_open",
            list(
                open.map(|s| {
                    format!(
                        "{} (since {}, {} failed sends, next probe {})",
                        s.notifier,
                        s.open_since.map_or("-".into(), |t| rfc3339(t, false)),
                        s.failures,
                        s.next_probe.map_or("-".into(), |t| rfc3339(t, false)),
                    )
                })
                .collect(),
            ),
        ),
    ];
    let json = states
        .iter()
        .map(|s| {
            let secs = |t: Option<Timestamp>| t.map(Timestamp::as_secs);
            let v = serde_json::json!({
                "paused": s.paused.is_some(),
                "circuit": if s.open_since.is_some() { "open" } else { "closed" },
                "failures": s.failures,
                "open_since": secs(s.open_since),
                "next_probe": secs(s.next_probe),
                "waiting": s.waiting,
            });
            (s.notifier.clone(), v)
        })
        .collect::<serde_json::Map<_, _>>();
    Ok((lines, serde_json::Value::Object(json)))
}

/// The line `check-config` (and `serve`'s start) gives the circuit breaker.
pub fn describe_breaker(n: &clair_notifier::NotifierConfig) -> String {
    let b = &n.breaker;
    if b.failures == 0 {
        return "breaker        off ([notifier] breaker_failures = 0)".to_string();
    }
    format!(
        "breaker        a notifier's circuit opens after {} consecutive failed sends; then one probe every {}",
        b.failures,
        clair_notifier::config::format_duration(b.probe)
    )
}

/// What `check-config` adds to the webhook's line for `[notifier.http] max_rate`.
pub fn describe_rate(rate: u32) -> String {
    match rate {
        0 => String::new(),
        r => format!(", at most {r} a second"),
    }
}

/// What `check-config` adds to its retention line for `[retention] attempts`.
pub fn describe_attempt_retention(keep: std::time::Duration) -> String {
    if keep.is_zero() {
        "; attempt-log rows kept with their notification".to_string()
    } else {
        format!(
            "; attempt-log rows deleted {} after they were written",
            clair_notifier::config::format_duration(keep)
        )
    }
}
