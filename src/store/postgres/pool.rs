//! A small pool of connections, each with its prepared statements. A connection that failed is
//! dropped, never reused: the next call connects afresh (a restarted server, a cut network).

use std::collections::HashMap;
use std::sync::Mutex;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::connect::{Target, short};
use crate::error::{Error, ErrorKind, Result};

/// Connections kept open for reuse (more are opened when more threads call at once).
const KEPT: usize = 8;

/// Parameters of a statement.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// `sql` prepared on this connection (once).
    pub fn statement(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// Runs `sql` (prepared once per connection): one round trip.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query(&s, params)
    }
}

/// The connections of one store.
pub struct Pool {
    pub target: Target,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(target: Target) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A new connection, not from the pool.
    ///
    /// # Errors
    ///
    /// The server cannot be reached or refuses the login.
    pub fn connect(&self) -> Result<Conn> {
        Ok(Conn {
            client: self.target.connect()?,
            statements: HashMap::new(),
        })
    }

    /// Runs `f` on a pooled connection; `doing` starts the error's sentence
    /// (`could not claim notifications in`), which then names the server.
    ///
    /// # Errors
    ///
    /// No connection could be made, or `f` failed (the connection is then dropped).
    pub fn with<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&mut Conn) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match conn {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect()?,
        };
        match f(&mut conn) {
            Ok(out) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < KEPT {
                    idle.push(conn);
                }
                Ok(out)
            }
            Err(e) => Err(self.error(doing, e)),
        }
    }

    /// Runs `f` on a pooled connection, as [`with`](Pool::with) does, for work that makes its
    /// own errors (`doing` names what failed to connect).
    ///
    /// # Errors
    ///
    /// No connection could be made, or `f` failed.
    pub fn with_result<T>(&self, doing: &str, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut failed = None;
        let out = self.with(doing, |conn| match f(conn) {
            Ok(v) => Ok(Some(v)),
            // A transaction `f` left open was rolled back when dropped.
            Err(e) => {
                failed = Some(e);
                Ok(None)
            }
        })?;
        match (out, failed) {
            (Some(v), _) => Ok(v),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("f returned neither a value nor an error"),
        }
    }

    /// A driver error as this crate's, naming the server.
    pub fn error(&self, doing: &str, e: postgres::Error) -> Error {
        Error::with_source(
            ErrorKind::Store,
            format!("{doing} PostgreSQL at {}: {}", self.target.name, short(&e)),
            e,
        )
    }
}
