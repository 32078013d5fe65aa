//! The commands, over the library.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clair_notifier::api::{self, Api, Server, ServiceView};
use clair_notifier::config::format_duration;
use clair_notifier::store::ListFilter;
use clair_notifier::{
    Config, Datastore, NewNotification, Registry, Service, SqliteStore, Stopper, Timestamp, Webhook,
};

use crate::args::{Command, Global};
use crate::{CliError, rfc3339};

pub fn run(global: &Global, command: Command) -> Result<(), CliError> {
    match command {
        Command::Help(text) => {
            print!("{text}");
            Ok(())
        }
        Command::Version => {
            println!("clair-notifier {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Demo { count } => {
            if global.config.is_some() {
                return Err(CliError::usage(
                    "demo runs without a configuration (its own temporary database, receiver and ports); drop --config",
                ));
            }
            crate::demo::run(count)
        }
        Command::Serve => serve(global),
        Command::CheckConfig => check_config(global),
        Command::Vacuum => crate::vacuum::run(global),
        Command::Add { file } => add(global, file.as_deref()),
        Command::List { state, limit } => {
            let (config, _) = load(global)?;
            let store = open_existing(&config)?;
            let mut out = std::io::stdout().lock();
            for s in store.list(ListFilter { state, limit })? {
                let when = |t: Option<Timestamp>| t.map_or("-".to_string(), |t| rfc3339(t, false));
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    s.name,
                    s.state().as_str(),
                    rfc3339(s.created, false),
                    when(s.notified),
                    when(s.read),
                    s.attempts,
                    s.last_error
                        .as_deref()
                        .unwrap_or("-")
                        .replace(['\t', '\n'], " ")
                )?;
            }
            Ok(())
        }
        Command::Show { name, limit, page } => {
            let (config, _) = load(global)?;
            let store: Arc<dyn Datastore> = Arc::new(open_existing(&config)?);
            let api = Api::new(&config.api, store)?;
            let r = api.read_notification(&name, Some(&limit), page.as_deref());
            match r.status {
                200 => {
                    std::io::stdout().lock().write_all(&r.body)?;
                    Ok(())
                }
                404 => Err(CliError::runtime(format!(
                    "there is no notification named \"{name}\""
                ))),
                400 => Err(CliError::usage(
                    r.error_message()
                        .unwrap_or_default()
                        .replace("limit format", "--limit")
                        .replace("page format", "--page"),
                )),
                _ => Err(CliError::runtime(
                    r.error_message()
                        .unwrap_or_else(|| "the store failed".into()),
                )),
            }
        }
        Command::MarkRead { name } => {
            let (config, _) = load(global)?;
            let store = open_existing(&config)?;
            if store.mark_read(&name, Timestamp::now())? {
                Ok(())
            } else {
                Err(CliError::runtime(format!(
                    "there is no notification named \"{name}\""
                )))
            }
        }
        Command::Stats { json } => stats(global, json),
    }
}

/// The configuration file, or the defaults when `--config` is not given.
pub(crate) fn load(global: &Global) -> Result<(Config, Option<PathBuf>), CliError> {
    match &global.config {
        Some(path) => Ok((Config::load(path)?, Some(path.clone()))),
        None => Ok((Config::default(), None)),
    }
}

/// Everything `serve` would refuse, without starting anything.
fn check(config: &Config, notifiers: &[String]) -> Result<(), CliError> {
    let db = &config.database.path;
    if db.trim().is_empty() {
        return Err(CliError::usage("database.path must not be empty"));
    }
    let parent = Path::new(db).parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "database.path: the directory {} does not exist",
                dir.display()
            )));
        }
    }
    config.notifier.validate()?;
    api::validate_config(&config.api)?;
    Webhook::from_config(&config.notifier.http)?;
    for name in config.notifier.params.keys() {
        if name == "webhook" {
            return Err(CliError::usage(
                "[notifier.webhook]: the webhook notifier is configured in [notifier.http]",
            ));
        }
        if !notifiers.contains(name) {
            return Err(CliError::usage(format!(
                "[notifier.{name}]: no notifier named \"{name}\" is built into this program (the webhook is configured in [notifier.http])"
            )));
        }
    }
    Ok(())
}

pub(crate) fn open_existing(config: &Config) -> Result<SqliteStore, CliError> {
    let path = &config.database.path;
    if !Path::new(path).exists() {
        return Err(CliError::runtime(format!(
            "there is no database at {path} (serve and add create it; is --config right?)"
        )));
    }
    open_store(path)
}

/// Opens (or creates) the database at `path`. A file that is not an SQLite database, or whose
/// first page is destroyed, is a mistake in `database.path` rather than a failure of a running
/// system: exit 2, with the short message (the driver's codes add nothing for a user). The
/// store never writes to such a file.
fn open_store(path: &str) -> Result<SqliteStore, CliError> {
    SqliteStore::open(path).map_err(|e| {
        let code = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<rusqlite::Error>())
            .and_then(rusqlite::Error::sqlite_error_code);
        match code {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                CliError::usage(format!(
                    "{e} (it was left untouched; database.path must name a clair-notifier \
                     database, or a file to create)"
                ))
            }
            _ => e.into(),
        }
    })
}

fn describe(config: &Config, origin: Option<&Path>, enabled: &[String]) -> Vec<String> {
    let n = &config.notifier;
    let mut lines = vec![match origin {
        Some(p) => format!("configuration  {} is valid", p.display()),
        None => "configuration  none given: every setting at its default".to_string(),
    }];
    let db = &config.database.path;
    lines.push(format!(
        "database       {db} ({})",
        if Path::new(db).exists() {
            "exists"
        } else {
            "will be created"
        }
    ));
    if enabled.is_empty() {
        lines.push(
            "notifier       disabled: no notifier is enabled (set [notifier.http] endpoint to deliver)"
                .to_string(),
        );
    } else {
        for name in enabled {
            if name == "webhook" {
                lines.push(format!(
                    "notifier       webhook POSTs to {} (timeout {}{}{})",
                    n.http.endpoint,
                    format_duration(n.http.timeout),
                    if n.http.proxy.is_empty() {
                        ""
                    } else {
                        ", through a proxy"
                    },
                    if n.http.signing_secret.is_empty() {
                        ""
                    } else {
                        ", signed"
                    },
                ));
            } else {
                lines.push(format!("notifier       {name}"));
            }
        }
        lines.push(format!(
            "delivery       {} workers, {} attempts a round (backoff up to {}), renotify every {}, poll every {}, lease {}",
            n.workers,
            n.attempts,
            format_duration(n.max_backoff),
            format_duration(n.renotify_interval),
            format_duration(n.poll_interval),
            format_duration(n.lease)
        ));
    }
    let a = &config.api;
    if a.addr.is_empty() {
        lines.push("read API       off ([api] addr is empty)".to_string());
    } else {
        lines.push(format!(
            "read API       http://{} ({}; page tokens keyed by {})",
            a.addr,
            if a.token.is_empty() {
                "no token needed"
            } else {
                "bearer token required"
            },
            if a.pagination_key.is_empty() {
                "a key generated once and kept in the database"
            } else {
                "the configured pagination_key"
            }
        ));
    }
    lines
}

fn check_config(global: &Global) -> Result<(), CliError> {
    let (config, origin) = load(global)?;
    let registry = Registry::take_global();
    check(&config, &registry.names())?;
    let enabled: Vec<String> = registry
        .configure(&config.notifier)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut out = std::io::stdout().lock();
    for line in describe(&config, origin.as_deref(), &enabled) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The process's stop signal, raised by Ctrl-C, SIGTERM or SIGHUP; a second signal exits at
/// once.
pub fn signal_stopper() -> Result<Stopper, CliError> {
    let stopper = Stopper::new();
    let s = stopper.clone();
    let count = AtomicU32::new(0);
    ctrlc::set_handler(move || {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            log::warn!("stopping (signal received; a second one exits at once)");
            s.stop();
        } else {
            eprintln!("clair-notifier: stopped at once by a second signal.");
            std::process::exit(1);
        }
    })
    .map_err(|e| CliError::runtime(format!("could not handle Ctrl-C and SIGTERM: {e}")))?;
    Ok(stopper)
}

fn serve(global: &Global) -> Result<(), CliError> {
    // First of all, so that a signal during start-up is a graceful stop, not a kill.
    let stopper = signal_stopper()?;
    let (config, origin) = load(global)?;
    let registry = Registry::take_global();
    check(&config, &registry.names())?;
    let store = Arc::new(open_store(&config.database.path)?);
    let handle = Service::new(config.notifier.clone(), store.clone())
        .retention(config.retention)
        .registry(registry)
        .stopper(stopper.clone())
        .start()?;
    if !handle.is_running() {
        log::warn!(
            "notifier disabled: notifications are stored and served but not delivered until [notifier.http] endpoint is set"
        );
    }
    let api = if config.api.addr.is_empty() {
        log::info!("read API off ([api] addr is empty)");
        None
    } else {
        Some(Server::start(
            &config.api,
            store.clone(),
            Some(ServiceView::of(&handle)),
        )?)
    };
    for line in describe(&config, origin.as_deref(), handle.notifiers()) {
        log::info!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    // Wait for Ctrl-C or SIGTERM (the stopper's receiver disconnects when it is raised).
    let _ = stopper.receiver().recv();
    // Bounded: sends in flight end within their timeout; past that, leave anyway (their
    // leases expire and another instance or the next start delivers them).
    let grace = config.notifier.http.timeout * 2 + Duration::from_secs(5);
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        eprintln!(
            "clair-notifier: could not stop within {}; exiting.",
            format_duration(grace)
        );
        std::process::exit(1);
    });
    if let Some(api) = api {
        api.stop();
    }
    handle.stop();
    log::info!("stopped");
    Ok(())
}

/// The longest line `add` reads: one notification's JSON (room for about 200 000 layer
/// names). Input is read a line at a time, so a longer line is refused after reading this
/// much of it, without holding the rest in memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

fn add(global: &Global, file: Option<&Path>) -> Result<(), CliError> {
    let (config, _) = load(global)?;
    check(&config, &Registry::take_global().names())?;
    let (mut input, what): (Box<dyn BufRead>, String) = match file {
        Some(path) if path != Path::new("-") => {
            let f = std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("could not read {}: {e}", path.display())))?;
            (
                Box::new(std::io::BufReader::new(f)),
                path.display().to_string(),
            )
        }
        _ => (
            Box::new(std::io::stdin().lock()),
            "standard input".to_string(),
        ),
    };
    let batch = read_lines(&mut input, &what)?;
    if batch.is_empty() {
        return Ok(());
    }
    let store = open_store(&config.database.path)?;
    let names = store.insert(&batch, Timestamp::now())?;
    let mut out = std::io::stdout().lock();
    for name in names {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

/// Every notification in `input`, one JSON object a line (blank lines skipped); the first bad
/// line is an error naming it.
fn read_lines(input: &mut dyn BufRead, what: &str) -> Result<Vec<NewNotification>, CliError> {
    let mut batch = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let bad = |why: String| CliError::usage(format!("line {number}: {why}; nothing was added"));
        let n = input
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::usage(format!("could not read {what}: {e}")))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE_BYTES {
            return Err(bad(format!(
                "the line is longer than {} MiB, the most one notification may take",
                MAX_LINE_BYTES >> 20
            )));
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Err(bad("the line is not valid UTF-8".to_string()));
        };
        if text.trim().is_empty() {
            continue;
        }
        let n: NewNotification = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        n.check().map_err(|e| bad(e.to_string()))?;
        batch.push(n);
    }
    Ok(batch)
}

fn stats(global: &Global, json: bool) -> Result<(), CliError> {
    let (config, _) = load(global)?;
    let store = open_existing(&config)?;
    let now = Timestamp::now();
    let c = store.counts(now)?;
    let oldest = c.oldest_due.map(|t| now.since(t).as_secs());
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "pending": c.pending, "notified": c.notified, "failing": c.failing, "read": c.read,
            "total": c.total(), "due": c.due, "leased": c.leased, "oldest_due_age_secs": oldest,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    for (k, v) in [
        ("pending", c.pending.to_string()),
        ("notified", c.notified.to_string()),
        ("failing", c.failing.to_string()),
        ("read", c.read.to_string()),
        ("total", c.total().to_string()),
        ("due", c.due.to_string()),
        ("leased", c.leased.to_string()),
        (
            "oldest_due_age",
            oldest.map_or("-".into(), |s| format_duration(Duration::from_secs(s))),
        ),
    ] {
        writeln!(out, "{k:<15}{v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Vec<NewNotification>, CliError> {
        read_lines(&mut std::io::Cursor::new(bytes), "input")
    }

    fn notification() -> impl Strategy<Value = NewNotification> {
        let side = prop::option::of(
            (
                "[ -~]{1,20}",
                "[ -~]{0,10}",
                prop::collection::vec("[ -~]{0,30}", 0..5),
            )
                .prop_map(|(name, severity, layers)| {
                    clair_notifier::VulnerabilityWithLayers {
                        vulnerability: clair_notifier::Vulnerability {
                            name,
                            severity,
                            ..Default::default()
                        },
                        layers,
                    }
                }),
        );
        (side.clone(), side)
            .prop_map(|(old, new)| NewNotification { old, new })
            .prop_filter("a side and a name", |n| n.check().is_ok())
    }

    proptest! {
        #[test]
        fn any_input_is_notifications_or_a_usage_error_naming_a_line(
            bytes in prop::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Err(e) = parse(&bytes) {
                prop_assert_eq!(e.code, 2);
                prop_assert!(e.message.starts_with("line "), "{}", e.message);
                prop_assert!(e.message.ends_with("; nothing was added"), "{}", e.message);
            }
        }

        #[test]
        fn json_lines_of_notifications_parse_back_with_a_bad_line_named(
            batch in prop::collection::vec(notification(), 1..6),
            bad_at in any::<prop::sample::Index>(),
        ) {
            let mut text: Vec<String> =
                batch.iter().map(|n| serde_json::to_string(n).unwrap()).collect();
            prop_assert_eq!(parse(text.join("\n").as_bytes()).ok(), Some(batch.clone()));
            prop_assert_eq!(parse(text.join("\r\n\n").as_bytes()).ok(), Some(batch));
            let i = bad_at.index(text.len());
            text[i].pop();
            let e = parse(text.join("\n").as_bytes()).unwrap_err();
            prop_assert!(e.message.starts_with(&format!("line {}: ", i + 1)), "{}", e.message);
        }
    }

    #[test]
    fn a_line_over_the_limit_is_refused_before_the_rest_is_read() {
        let mut bytes = vec![b'{'; MAX_LINE_BYTES + 1];
        bytes.extend_from_slice(b"\n");
        let e = parse(&bytes).unwrap_err();
        assert!(
            e.message
                .starts_with("line 1: the line is longer than 16 MiB"),
            "{}",
            e.message
        );
        let mut ok =
            serde_json::to_vec(&serde_json::json!({"New":{"Vulnerability":{"Name":"x"}}})).unwrap();
        ok.resize(MAX_LINE_BYTES, b' ');
        assert_eq!(
            parse(&ok).unwrap().len(),
            1,
            "a line of exactly the limit is read"
        );
    }
}
