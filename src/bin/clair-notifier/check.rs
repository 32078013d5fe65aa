//! `check-config`: the configuration checked as `serve` would check it, and what would run.

use std::io::Write;
use std::path::Path;

use clair_notifier::config::format_duration;
use clair_notifier::{Config, Registry, SqliteStore};

use crate::CliError;
use crate::args::Global;
use crate::open::{load_validated, refused};

pub fn check_config(global: &Global) -> Result<(), CliError> {
    let registry = Registry::take_global();
    let (config, origin) = load_validated(global, &registry)?;
    // Read-only, as serve would open it: nothing is created or written.
    let database = match SqliteStore::check(&config.database.path) {
        _ if config.database.is_postgres() => "not contacted by check-config",
        Ok(true) => "exists",
        Ok(false) => "will be created",
        Err(e) => return Err(refused(e)),
    };
    if !config.database.is_postgres() && !SqliteStore::owner_locks_work(&config.database.path) {
        log::warn!(
            "file locks do not work beside {} (a network file system?): the work of a crashed \
             instance will wait for its lease ({}) to expire",
            config.database.path,
            format_duration(config.notifier.lease)
        );
    }
    let enabled: Vec<String> = registry
        .configure(&config.notifier)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut out = std::io::stdout().lock();
    for line in describe(&config, origin.as_deref(), database, &enabled) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// What would run, one line a part (`serve` logs the same lines).
/// `database` says whether the database exists.
pub fn describe(
    config: &Config,
    origin: Option<&Path>,
    database: &str,
    enabled: &[String],
) -> Vec<String> {
    let n = &config.notifier;
    let mut lines = vec![match origin {
        Some(p) => format!("configuration  {} is valid", p.display()),
        None => "configuration  none given: every setting at its default".to_string(),
    }];
    let db = config.database.shown();
    lines.push(format!("database       {db} ({database})"));
    if enabled.is_empty() {
        lines.push(
            "notifier       disabled: no notifier is enabled (set [notifier.http] endpoint to deliver)"
                .to_string(),
        );
    } else {
        for name in enabled {
            if name == "webhook" {
                lines.push(
                    format!(
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
                    ) + &crate::operate::describe_rate(n.http.max_rate),
                );
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
        lines.push(crate::operate::describe_breaker(n));
        lines.push(
            match config.retention.read {
                d if d.is_zero() => "retention      read notifications kept forever".to_string(),
                d => format!(
                    "retention      read notifications deleted {} after they were read",
                    format_duration(d)
                ),
            } + &crate::operate::describe_attempt_retention(config.retention.attempts),
        );
    }
    let a = &config.api;
    if a.addr.is_empty() {
        lines.push("read API       off ([api] addr is empty)".to_string());
    } else {
        lines.push(format!(
            "read API       {}://{} ({}{}; page tokens keyed by {})",
            if a.certfile.is_empty() {
                "http"
            } else {
                "https"
            },
            a.addr,
            if a.cafile.is_empty() {
                ""
            } else {
                "client certificate required; "
            },
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
        if !a.health_addr.is_empty() {
            lines.push(format!(
                "health checks  http://{} (/health and /metrics)",
                a.health_addr
            ));
        }
    }
    lines
}
