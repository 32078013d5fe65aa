//! `migrate --to postgres://...`: the SQLite database copied into an empty PostgreSQL one.

use crate::CliError;
use crate::args::Global;
use crate::open::load;

pub const HELP: &str = "\
Usage: clair-notifier [--config FILE] migrate --to postgres://user@host:port/database

Copies the SQLite database of database.path (notifications, layers, delivery state, read marks,
attempt log, the read API's pagination key, so page tokens handed out stay valid, and the
notifiers' pauses and circuits) into an empty PostgreSQL database, in one transaction, and prints
what it copied. A database that already holds notifications, settings or notifier states is
refused and left untouched. The password comes from the URL, PGPASSWORD or
database.password_file; sslmode and sslrootcert from [database]. Needs the cargo feature
postgres. Stop serve first: what it delivers meanwhile is not copied.
";

pub fn migrate(global: &Global, to: &str) -> Result<(), CliError> {
    let config = load(global)?;
    if config.database.is_postgres() {
        return Err(CliError::usage(
            "migrate copies the SQLite database of database.path, but this configuration sets \
             database.url: give a configuration without url",
        ));
    }
    copy(&config, to)
}

#[cfg(feature = "postgres")]
fn copy(config: &clair_notifier::Config, to: &str) -> Result<(), CliError> {
    use std::io::Write;

    let mut target = config.database.clone();
    target.url = to.to_string();
    let store = clair_notifier::PostgresStore::open(&target.postgres_options()?)?;
    let source = &config.database.path;
    let c = store.import_sqlite(std::path::Path::new(source))?;
    log::info!("copied {source} into PostgreSQL at {}", store.server());
    writeln!(
        std::io::stdout().lock(),
        "copied {} notifications ({} read, {} layer names, {} attempts), {} settings and {} \
         notifier states from {source} to PostgreSQL at {}",
        c.notifications,
        c.read,
        c.layers,
        c.attempts,
        c.settings,
        c.notifiers,
        store.server()
    )?;
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn copy(_: &clair_notifier::Config, _: &str) -> Result<(), CliError> {
    Err(CliError::usage(
        "migrate --to needs PostgreSQL, but this clair-notifier was built without it: build it \
         with `cargo install clair-notifier --features postgres`",
    ))
}
