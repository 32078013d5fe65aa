//! `vacuum`: rewrites the database file in full, which converts a database made before
//! incremental auto-vacuum and gives back at once the space that deletes freed.

use std::path::Path;

use clair_notifier::SqliteStore;

use crate::CliError;
use crate::args::Global;

pub const HELP: &str = "\
Usage: clair-notifier [--config FILE] vacuum

Rewrites the database file in full (SQLite's VACUUM): the file shrinks to what its rows take,
and a database made by a version without retention is converted to incremental auto-vacuum,
after which serve returns the space of deleted notifications by itself.

Needs the database to itself while it runs: stop serve (and every other command using the
file) first; it refuses, changing nothing, while another process has the database open.
Needs free disk about the size of the file, for the copy it writes. Exit 1 if it could not
run.
";

pub fn run(global: &Global) -> Result<(), CliError> {
    let config = crate::open::load(global)?;
    // Says so, with the usual sentences, if the file is missing or not clair-notifier's.
    drop(crate::open::open_existing(&config)?);
    let db = &config.database.path;
    let size = std::fs::metadata(db).map_or(0, |m| m.len());
    eprintln!(
        "clair-notifier: vacuum rewrites {db} ({}): it needs the database to itself (no serve or \
         other command using it) and about {} of free disk for the copy.",
        mib(size),
        mib(size)
    );
    let v = SqliteStore::vacuum(Path::new(db))?;
    println!(
        "{db}: {} before, {} after; {}",
        mib(v.bytes_before),
        mib(v.bytes_after),
        if v.was_incremental {
            "it already returned freed space by itself"
        } else {
            "converted: from now on it returns freed space by itself"
        }
    );
    Ok(())
}

/// A size in MiB, with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
