//! What the commands open: the configuration file and the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clair_notifier::{Config, Datastore, ErrorKind, Registry, SqliteStore};

use crate::CliError;
use crate::args::Global;

/// The configuration file, or the defaults when `--config` is not given; not validated (the
/// read commands need only `database.path` and `[api]`).
pub fn load(global: &Global) -> Result<Config, CliError> {
    match &global.config {
        Some(path) => {
            let config = Config::load(path)?;
            log::info!("configuration {} read", path.display());
            Ok(config)
        }
        None => {
            log::info!("no configuration given: every setting at its default");
            Ok(Config::default())
        }
    }
}

/// The configuration, checked as `serve` would check it against the notifiers of `registry`
/// (mistakes name the file, line and key), and the file it came from.
pub fn load_validated(
    global: &Global,
    registry: &Registry,
) -> Result<(Config, Option<PathBuf>), CliError> {
    let config = match &global.config {
        Some(path) => Config::load_validated(path, registry)?,
        None => {
            let config = Config::default();
            config.validate(registry)?;
            config
        }
    };
    Ok((config, global.config.clone()))
}

/// Opens the database of `config`, which must exist (the read commands never create one).
pub fn open_existing(config: &Config) -> Result<Arc<dyn Datastore>, CliError> {
    if config.database.is_postgres() {
        return open_configured(config);
    }
    let path = &config.database.path;
    if !Path::new(path).exists() {
        return Err(CliError::runtime(format!(
            "there is no database at {path} (serve and add create it; is --config right?)"
        )));
    }
    let store = open_store(path)?;
    log::info!("database {path} opened");
    Ok(Arc::new(store))
}

/// Opens (or creates) the store `config` names: the SQLite file of `database.path`, or the
/// PostgreSQL database of `database.url` (its schema created or migrated).
pub fn open_configured(config: &Config) -> Result<Arc<dyn Datastore>, CliError> {
    if config.database.is_postgres() {
        return open_postgres(&config.database);
    }
    Ok(Arc::new(open_store(&config.database.path)?))
}

#[cfg(feature = "postgres")]
fn open_postgres(db: &clair_notifier::DatabaseConfig) -> Result<Arc<dyn Datastore>, CliError> {
    let store = clair_notifier::PostgresStore::open(&db.postgres_options()?)?;
    log::info!("database PostgreSQL at {} opened", store.server());
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &clair_notifier::DatabaseConfig) -> Result<Arc<dyn Datastore>, CliError> {
    Err(CliError::usage(clair_notifier::config::NO_POSTGRES))
}

/// Opens (or creates) the database at `path`. A file that is not an SQLite database, or whose
/// first page is destroyed, is a mistake in `database.path` rather than a failure of a running
/// system: exit 2, with the short message (the driver's codes add nothing for a user). The
/// store never writes to such a file.
pub fn open_store(path: &str) -> Result<SqliteStore, CliError> {
    SqliteStore::open(path).map_err(refused)
}

/// The error of a store that could not be opened, as the command line reports it.
pub fn refused(e: clair_notifier::Error) -> CliError {
    if e.kind() == ErrorKind::NotADatabase {
        CliError::usage(format!(
            "{e} (it was left untouched; database.path must name a clair-notifier database, \
             or a file to create)"
        ))
    } else {
        e.into()
    }
}
