//! Integration tests: real SQLite files, real HTTP servers on 127.0.0.1, the real binary.
//! One module per area; shared helpers live in `common`.

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "api")]
mod api_tls;
#[cfg(feature = "cli")]
mod attempts;
#[cfg(feature = "cli")]
mod bad_input;
#[cfg(feature = "cli")]
mod breaker;
#[cfg(feature = "cli")]
mod cli;
mod common;
#[cfg(feature = "cli")]
mod crash;
#[cfg(unix)]
mod exec;
mod generated;
#[cfg(feature = "api")]
mod health;
#[cfg(unix)]
mod jsonl;
#[cfg(feature = "cli")]
mod operate;
#[cfg(feature = "cli")]
mod pacing;
#[cfg(all(feature = "cli", feature = "postgres"))]
mod postgres;
#[cfg(all(feature = "cli", feature = "postgres"))]
mod postgres_operate;
#[cfg(feature = "cli")]
mod promises;
mod receiver_faults;
mod retention;
#[cfg(feature = "cli")]
mod secrets;
mod service;
mod shutdown;
mod storage;
#[cfg(feature = "cli")]
mod takeover;
mod webhook;
