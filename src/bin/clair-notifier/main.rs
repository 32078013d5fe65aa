//! `clair-notifier`: parse the arguments, run the command, map its error to an exit status
//! (0 success, 1 runtime failure, 2 bad usage or configuration) and one sentence on stderr.

mod add;
mod args;
mod check;
mod demo;
mod migrate;
mod open;
mod operate;
mod read;
mod receive;
mod sample;
mod serve;
mod vacuum;

use std::io::Write;
use std::process::ExitCode;

use clair_notifier::{ErrorKind, Timestamp};

use args::Command;

/// A failure to report: one sentence and an exit status.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Bad usage or bad configuration: exit 2.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: 2,
            message: message.into(),
        }
    }

    /// A runtime failure: exit 1.
    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<clair_notifier::Error> for CliError {
    fn from(e: clair_notifier::Error) -> CliError {
        let code = match e.kind() {
            ErrorKind::Config | ErrorKind::InvalidInput => 2,
            _ => 1,
        };
        CliError {
            code,
            message: e.chain(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader of our output went away (`| head`): not worth a word.
            return CliError {
                code: 0,
                message: String::new(),
            };
        }
        CliError::runtime(format!("could not write the output: {e}"))
    }
}

fn main() -> ExitCode {
    let outcome = args::parse(std::env::args_os().skip(1)).and_then(|(global, command)| {
        init_logging(global.verbose, &command);
        run(&global, command)
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                let mut message = e.message.replace('\n', " ");
                if !message.ends_with(['.', '?', '!']) {
                    message.push('.');
                }
                eprintln!("clair-notifier: {message}");
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(global: &args::Global, command: Command) -> Result<(), CliError> {
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
            demo::run(count)
        }
        Command::Serve => serve::serve(global),
        Command::CheckConfig => check::check_config(global),
        Command::Add { file } => add::add(global, file.as_deref()),
        Command::List { state, limit } => read::list(global, state, limit),
        Command::Show { name, limit, page } => read::show(global, &name, &limit, page.as_deref()),
        Command::MarkRead { name } => read::mark_read(global, &name),
        Command::Stats { json } => read::stats(global, json),
        Command::Vacuum => vacuum::run(global),
        Command::Receive { addr } => receive::receive(&addr),
        Command::Migrate { to } => migrate::migrate(global, &to),
        Command::Operate(op) => operate::run(global, op),
    }
}

/// Log lines go to stderr: `-v` chooses the level (info, debug, trace), else `RUST_LOG`, else
/// info for `serve` and `receive`, and warnings only for the other commands (whose stdout is
/// their result).
fn init_logging(verbose: u8, command: &Command) {
    let base = match command {
        Command::Serve | Command::Receive { .. } => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(base);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if verbose > 0 {
        builder.filter_level(match verbose {
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        });
    }
    builder.format(|buf, record| {
        writeln!(
            buf,
            "{} {:<5} {}",
            rfc3339(Timestamp::now(), true),
            record.level(),
            record.args()
        )
    });
    builder.target(env_logger::Target::Stderr);
    let _ = builder.try_init();
}

/// `1 notification`, `2 notifications`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `2026-11-28T04:25:46Z` (with `.123` milliseconds when asked), in UTC.
pub fn rfc3339(t: Timestamp, millis: bool) -> String {
    let ms = t.as_millis();
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
            ms.rem_euclid(1000)
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_civil_time() {
        assert_eq!(
            rfc3339(Timestamp::from_millis(0), false),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_795_839_944_123), true),
            "2026-11-28T04:25:44.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_millis(951_782_400_000), false),
            "2000-02-29T00:00:00Z"
        );
    }
}
