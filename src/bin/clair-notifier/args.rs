//! The command line: raw arguments into a [`Command`] and global options, and the help texts.

use std::ffi::OsString;
use std::path::PathBuf;

use clair_notifier::State;
use lexopt::prelude::*;

use crate::CliError;

/// Options every command takes.
#[derive(Debug, Default)]
pub struct Global {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// How many times `-v` was given.
    pub verbose: u8,
}

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    Serve,
    Demo {
        count: usize,
    },
    Add {
        file: Option<PathBuf>,
    },
    List {
        state: Option<State>,
        limit: usize,
    },
    Show {
        name: String,
        limit: String,
        page: Option<String>,
    },
    MarkRead {
        name: String,
    },
    Stats {
        json: bool,
    },
    CheckConfig,
    Vacuum,
    Receive {
        addr: String,
    },
    Migrate {
        to: String,
    },
    /// `resend`, `pause`, `resume`.
    Operate(crate::operate::Op),
    /// Print this help text and exit 0.
    Help(&'static str),
    Version,
}

pub const MAIN_HELP: &str = "\
clair-notifier: durable vulnerability-change notifications, delivered to webhooks (Clair v1's notifier)

Usage: clair-notifier [--config FILE] [-v] COMMAND [OPTIONS]

Commands:
  serve          run the notifier service and the read API until Ctrl-C or SIGTERM
  demo           run everything on a temporary database with a built-in receiver; show a summary
  add [FILE]     insert notifications from JSON lines (FILE, or stdin); print their names
  list           list notifications, one a line, starting with the name
  show NAME      print what GET /v1/notifications/NAME returns (--attempts: every try)
  mark-read NAME mark a notification read (as DELETE /v1/notifications/NAME does)
  stats          counts by state and delivery figures
  resend NAME    send a notification again at once, with a fresh round (--failing: every failing one)
  pause NOTIFIER stop sending through a notifier (its notifications wait); resume NOTIFIER goes on
  check-config   validate the configuration and say what would run
  vacuum         rewrite the database file to its smallest (stop serve first)
  receive        a webhook receiver for trying it out: print each POST's body
  migrate --to URL  copy the SQLite database into an empty PostgreSQL database
  help [COMMAND] show this help, or a command's

Options:
  -c, --config FILE  the TOML configuration file (default: none, every setting at its default)
  -v, --verbose      more log lines on stderr (-v info, -vv debug, -vvv trace; RUST_LOG also works)
  -h, --help         show help
  -V, --version      show the version

Exit status: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
";

const SERVE_HELP: &str = "\
Usage: clair-notifier [--config FILE] serve

Runs the notifier service (delivers every due notification to the enabled notifiers) and the
read API ([api] addr, 127.0.0.1:6060 by default) until Ctrl-C or SIGTERM, then stops
gracefully: sends in flight finish (each bounded by [notifier.http] timeout) and the process
exits 0. A second Ctrl-C or SIGTERM exits at once, with status 1. With no [notifier.http] endpoint, notifications are
stored and served but not delivered, and the log says so.
";

const DEMO_HELP: &str = "\
Usage: clair-notifier demo [--count N]

Runs the whole loop on a database in a temporary directory, with no configuration: the
notifier service, the read API on 127.0.0.1 (a free port), and a built-in receiver that acts
like a real Clair consumer (on each webhook it reads every page through the read API, checks
every layer, then marks the notification read with DELETE). Inserts N sample notifications
(default 1000) with realistic vulnerabilities and layers, shows progress on stderr, prints a
summary on stdout, and exits 0 (1 if something was lost or a layer did not match).

Options:
  --count N   how many notifications (1 to 100000, default 1000)
";

const ADD_HELP: &str = "\
Usage: clair-notifier [--config FILE] add [FILE]

Reads notifications as JSON lines from FILE (or stdin), one object a line:
  {\"New\":{\"Vulnerability\":{\"Name\":\"CVE-2024-1234\",\"Severity\":\"High\"},\"LayersIntroducingVulnerability\":[\"sha256:...\"]}}
with an \"Old\" and/or a \"New\" side shaped like the read API's, each with a vulnerability Name.
Blank lines are skipped. All lines are inserted in one transaction: a bad line inserts nothing,
and the error names its line number (exit 2). Prints the new names, one a line, in input order.
A running `serve` on the same database notices them within [notifier] poll_interval.
";

const LIST_HELP: &str = "\
Usage: clair-notifier [--config FILE] list [--state STATE] [--limit N]

Prints notifications, newest first, one a line, tab-separated:
  NAME  STATE  CREATED  NOTIFIED  READ  ATTEMPTS  LAST-ERROR
(times in UTC, RFC 3339; \"-\" when not yet). ATTEMPTS is the number of failed tries in
the current delivery round (the most of any notifier): 0 before the first try and after a
delivery; it stays at [notifier] attempts when a round fails, until the next round starts.
LAST-ERROR is the last failure of that round.

Options:
  --state STATE  pending, notified, failing, read or all (default all)
  --limit N      at most N lines (default 100)
";

const SHOW_HELP: &str = "\
Usage: clair-notifier [--config FILE] show NAME [--limit N] [--page TOKEN]
       clair-notifier [--config FILE] show NAME --attempts [--json]

Prints exactly what GET /v1/notifications/NAME?limit=N&page=TOKEN returns: one page of the
notification in Clair v1's JSON. Follow its NextPage token with --page for the next page.

Options:
  --limit N      layers per side on the page (default 100; more than 1000 is served as
                 1000, as the API does, and Limit says so)
  --page TOKEN   a Page or NextPage token from an earlier answer (default: the first page)
  --attempts     the notification's attempt log instead, oldest first, one line a try:
                 STARTED NOTIFIER OUTCOME STATUS DURATION NEXT-DUE EXCERPT (tab-separated)
  --json         with --attempts: what GET /v1/notifications/NAME/attempts returns
";

const MARK_READ_HELP: &str = "\
Usage: clair-notifier [--config FILE] mark-read NAME

Marks the notification read, as DELETE /v1/notifications/NAME does: it is never sent again.
Marking it again moves its read time forward. Exit 1 if there is no such notification.
";

const STATS_HELP: &str = "\
Usage: clair-notifier [--config FILE] stats [--json]

Prints the notifications by state (pending, notified, failing, read), how many are due now and
leased, and how long the oldest due one has waited. Live counters of a running service (sends,
retries, latency) are on its /metrics.

Options:
  --json   one JSON object instead of lines
";

const CHECK_CONFIG_HELP: &str = "\
Usage: clair-notifier --config FILE check-config

Validates the configuration as serve would (keys, durations, URLs, files, certificates) without
starting anything, and says what would run. Exit 2 with the file, line and key at fault when it
is wrong. Reads the database read-only (never creating or writing it) and refuses one that
serve would refuse, with the same sentence and exit status.
";

const RECEIVE_HELP: &str = "\
Usage: clair-notifier receive [--addr HOST:PORT]

A webhook receiver to try the notifier with, on one machine: listens on HOST:PORT (default
127.0.0.1:8080), answers every request 200, and prints the body of each on stdout, one line
each ({\"Notification\":{\"Name\":\"...\"}} for a webhook), until Ctrl-C or SIGTERM.
Point [notifier.http] endpoint at http://127.0.0.1:8080/ to see notifications arrive.

Options:
  --addr HOST:PORT   where to listen (default 127.0.0.1:8080)
";

fn help_for(command: &str) -> Option<&'static str> {
    Some(match command {
        "serve" => SERVE_HELP,
        "demo" => DEMO_HELP,
        "add" => ADD_HELP,
        "list" => LIST_HELP,
        "show" => SHOW_HELP,
        "mark-read" => MARK_READ_HELP,
        "stats" => STATS_HELP,
        "check-config" => CHECK_CONFIG_HELP,
        "vacuum" => crate::vacuum::HELP,
        "receive" => RECEIVE_HELP,
        "migrate" => crate::migrate::HELP,
        "resend" => crate::operate::RESEND_HELP,
        "pause" => crate::operate::PAUSE_HELP,
        "resume" => crate::operate::RESUME_HELP,
        _ => return None,
    })
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::usage(message)
}

fn number<T>(option: &str, value: OsString, min: T, max: T) -> Result<T, CliError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let text = value.to_string_lossy();
    match text.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(usage(format!(
            "{option} must be a whole number from {min} to {max}, got \"{text}\""
        ))),
    }
}

/// Parses the arguments after the program's name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(Global, Command), CliError> {
    let mut p = lexopt::Parser::from_args(args);
    let mut global = Global::default();
    let mut command: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut help = false;
    let mut version = false;
    // Command options, checked against the command once it is known.
    let mut state = None;
    let mut limit: Option<OsString> = None;
    let mut page = None;
    let mut json = false;
    let mut count = None;
    let mut addr = None;
    let mut to = None;
    let mut seen: Vec<&'static str> = Vec::new();
    let err = |e: lexopt::Error| usage(format!("{e}"));
    while let Some(arg) = p.next().map_err(err)? {
        match arg {
            Short('c') | Long("config") => {
                global.config = Some(p.value().map_err(err)?.into());
            }
            Short('v') | Long("verbose") => global.verbose = global.verbose.saturating_add(1),
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Long("state") => {
                seen.push("--state");
                state = Some(p.value().map_err(err)?);
            }
            Long("limit") => {
                seen.push("--limit");
                limit = Some(p.value().map_err(err)?);
            }
            Long("page") => {
                seen.push("--page");
                page = Some(p.value().map_err(err)?.to_string_lossy().into_owned());
            }
            Long("json") => {
                seen.push("--json");
                json = true;
            }
            Long("addr") => {
                seen.push("--addr");
                addr = Some(p.value().map_err(err)?.to_string_lossy().into_owned());
            }
            Long("to") => {
                seen.push("--to");
                to = Some(p.value().map_err(err)?.to_string_lossy().into_owned());
            }
            Long("unread") => seen.push("--unread"),
            Long("attempts") => seen.push("--attempts"),
            Long("failing") => seen.push("--failing"),
            Long("count") => {
                seen.push("--count");
                count = Some(p.value().map_err(err)?);
            }
            Value(v) => {
                let v = v
                    .into_string()
                    .map_err(|v| usage(format!("argument {v:?} is not valid UTF-8")))?;
                if command.is_none() {
                    command = Some(v);
                } else {
                    positional.push(v);
                }
            }
            other => {
                let text = other.unexpected().to_string();
                return Err(usage(format!("{text}; see clair-notifier --help")));
            }
        }
    }
    if version {
        return Ok((global, Command::Version));
    }
    let Some(command) = command else {
        if help {
            return Ok((global, Command::Help(MAIN_HELP)));
        }
        return Err(usage(
            "a command is needed, e.g. serve or demo; see clair-notifier --help",
        ));
    };
    if command == "help" {
        let text = match positional.first() {
            None => MAIN_HELP,
            Some(c) => help_for(c).ok_or_else(|| {
                usage(format!(
                    "there is no command \"{c}\"; see clair-notifier --help"
                ))
            })?,
        };
        return Ok((global, Command::Help(text)));
    }
    let Some(command_help) = help_for(&command) else {
        return Err(usage(format!(
            "there is no command \"{command}\"; see clair-notifier --help"
        )));
    };
    if help {
        return Ok((global, Command::Help(command_help)));
    }
    let allowed: &[&str] = match command.as_str() {
        "list" => &["--state", "--limit"],
        "show" => &["--limit", "--page", "--attempts", "--json"],
        "stats" => &["--json"],
        "demo" => &["--count"],
        "receive" => &["--addr"],
        "migrate" => &["--to"],
        "resend" => &["--unread", "--failing"],
        _ => &[],
    };
    if let Some(bad) = seen.iter().find(|o| !allowed.contains(o)) {
        return Err(usage(format!(
            "{command} takes no option {bad}; see clair-notifier {command} --help"
        )));
    }
    let max_positional = match command.as_str() {
        "add" | "show" | "mark-read" | "resend" | "pause" | "resume" => 1,
        _ => 0,
    };
    if positional.len() > max_positional {
        return Err(usage(format!(
            "unexpected argument \"{}\" for {command}; see clair-notifier {command} --help",
            positional[max_positional]
        )));
    }
    let name = || {
        positional.first().cloned().ok_or_else(|| {
            usage(format!(
                "{command} needs a notification NAME; see clair-notifier {command} --help"
            ))
        })
    };
    let cmd = match command.as_str() {
        "serve" => Command::Serve,
        "check-config" => Command::CheckConfig,
        "vacuum" => Command::Vacuum,
        "demo" => Command::Demo {
            count: match count {
                Some(v) => number("--count", v, 1, 100_000)?,
                None => 1000,
            },
        },
        "add" => Command::Add {
            file: positional.first().map(PathBuf::from),
        },
        "list" => Command::List {
            state: match state.as_ref().map(|s| s.to_string_lossy().into_owned()) {
                None => None,
                Some(s) => match s.as_str() {
                    "all" => None,
                    "pending" => Some(State::Pending),
                    "notified" => Some(State::Notified),
                    "failing" => Some(State::Failing),
                    "read" => Some(State::Read),
                    _ => {
                        return Err(usage(format!(
                            "--state must be pending, notified, failing, read or all, got \"{s}\""
                        )));
                    }
                },
            },
            limit: match limit {
                Some(v) => number("--limit", v, 1, 1_000_000)?,
                None => 100,
            },
        },
        "show" if seen.contains(&"--attempts") || json => {
            Command::Operate(crate::operate::show_attempts(name()?, &seen)?)
        }
        "show" => Command::Show {
            name: name()?,
            limit: limit.map_or_else(|| "100".to_string(), |v| v.to_string_lossy().into_owned()),
            page,
        },
        "mark-read" => Command::MarkRead { name: name()? },
        "stats" => Command::Stats { json },
        "receive" => Command::Receive {
            addr: addr.unwrap_or_else(|| "127.0.0.1:8080".to_string()),
        },
        "migrate" => Command::Migrate {
            to: to.ok_or_else(|| usage("migrate needs --to postgres://user@host:port/database"))?,
        },
        "resend" | "pause" | "resume" => Command::Operate(crate::operate::parse(
            &command,
            positional.first().map(String::as_str),
            &seen,
        )?),
        _ => unreachable!("help_for knows every command"),
    };
    Ok((global, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<(Global, Command), CliError> {
        parse(args.split_whitespace().map(OsString::from))
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let (g, c) = parse_str("--config a.toml list --state read --limit 5 -vv").unwrap();
        assert_eq!(g.config.unwrap(), PathBuf::from("a.toml"));
        assert_eq!(g.verbose, 2);
        assert_eq!(
            c,
            Command::List {
                state: Some(State::Read),
                limit: 5
            }
        );
        let (g, c) = parse_str("show abc -c x.toml --page T").unwrap();
        assert_eq!(g.config.unwrap(), PathBuf::from("x.toml"));
        assert_eq!(
            c,
            Command::Show {
                name: "abc".into(),
                limit: "100".into(),
                page: Some("T".into())
            }
        );
    }

    #[test]
    fn mistakes_are_usage_errors_with_a_sentence() {
        for (args, want) in [
            ("", "a command is needed"),
            ("frobnicate", "no command \"frobnicate\""),
            ("list --page x", "list takes no option --page"),
            ("list --state maybe", "--state must be"),
            ("list --limit 0", "--limit must be a whole number"),
            ("show", "show needs a notification NAME"),
            ("mark-read a b", "unexpected argument \"b\""),
            ("serve --nope", "invalid option '--nope'"),
            ("demo --count lots", "--count must be"),
        ] {
            let e = parse_str(args).unwrap_err();
            assert_eq!(e.code, 2, "{args}");
            assert!(e.message.contains(want), "{args}: {}", e.message);
        }
    }

    #[test]
    fn every_command_has_help() {
        for c in [
            "serve",
            "demo",
            "add",
            "list",
            "show",
            "mark-read",
            "stats",
            "check-config",
            "receive",
            "migrate",
        ] {
            let (_, h) = parse_str(&format!("{c} --help")).unwrap();
            let Command::Help(text) = h else {
                panic!("{c}")
            };
            assert!(text.contains(c), "{c}");
            assert!(MAIN_HELP.contains(c), "{c}");
        }
    }
}
