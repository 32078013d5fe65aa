//! `serve`: the notifier service and the read API until a signal stops them.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clair_notifier::api::{Server, ServiceView};
use clair_notifier::config::format_duration;
use clair_notifier::{Registry, Service, Stopper};

use crate::CliError;
use crate::args::Global;
use crate::check::describe;
use crate::open::{load_validated, open_configured};

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

pub fn serve(global: &Global) -> Result<(), CliError> {
    // First of all, so that a signal during start-up is a graceful stop, not a kill.
    let stopper = signal_stopper()?;
    let registry = Registry::take_global();
    let (config, origin) = load_validated(global, &registry)?;
    let existed = config.database.is_postgres() || Path::new(&config.database.path).exists();
    let store = open_configured(&config)?;
    // With no notifier enabled, the service logs that it is disabled (once).
    let handle = Service::new(config.notifier.clone(), store.clone())
        .retention(config.retention)
        .registry(registry)
        .stopper(stopper.clone())
        .start()?;
    let api = if config.api.addr.is_empty() {
        None
    } else {
        Some(Server::start(
            &config.api,
            store.clone(),
            Some(ServiceView::of(&handle)),
        )?)
    };
    let database = if existed { "exists" } else { "created" };
    let enabled = handle.notifiers();
    for line in describe(&config, origin.as_deref(), database, enabled) {
        if enabled.is_empty() && line.starts_with("notifier ") {
            continue;
        }
        log::info!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    // Wait for Ctrl-C or SIGTERM.
    stopper.wait();
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
