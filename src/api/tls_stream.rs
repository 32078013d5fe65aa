//! One TLS connection of the read API: the handshake under the request deadline, then a
//! [`Conn`] that reads and writes through it.
//!
//! Both read from the socket one `read` at a time, so the deadlines of [`super::http1`] hold
//! over TLS too: a client that sends its ClientHello, or a record of its request, one byte at
//! a time is given up at the deadline like one that sends a plain request head that way.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection};

use super::http1::{Conn, IDLE_TIMEOUT, REQUEST_TIMEOUT};

/// A TLS connection whose handshake is done.
pub(super) struct TlsConn<'a> {
    tls: ServerConnection,
    sock: &'a TcpStream,
}

/// Runs the TLS handshake on `sock`: the first byte may take [`IDLE_TIMEOUT`] to come (as a
/// request's on a new connection), the rest of the handshake [`REQUEST_TIMEOUT`] from there.
/// `None` when the client went away, was too slow, or the handshake failed (the client is
/// sent a TLS alert saying why, when it got far enough to read one).
pub(super) fn handshake(config: Arc<ServerConfig>, sock: &TcpStream) -> Option<TlsConn<'_>> {
    let tls = ServerConnection::new(config)
        .map_err(|e| log::error!("read API: could not start a TLS connection: {e}"))
        .ok()?;
    let mut first = [0u8; 1];
    sock.set_read_timeout(Some(IDLE_TIMEOUT)).ok()?;
    if !matches!(sock.peek(&mut first), Ok(1..)) {
        return None;
    }
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut conn = TlsConn { tls, sock };
    while conn.tls.is_handshaking() {
        conn.send_pending().ok()?;
        if !conn.tls.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log::debug!("read API: a TLS handshake did not finish in time");
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        match conn.receive() {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("read API: TLS handshake refused: {e}");
                // The alert rustls queued, if any.
                let _ = conn.send_pending();
                return None;
            }
        }
    }
    conn.send_pending().ok()?;
    Some(conn)
}

impl TlsConn<'_> {
    /// One read from the socket, and the records it completed processed.
    fn receive(&mut self) -> io::Result<usize> {
        let n = self.tls.read_tls(&mut self.sock)?;
        if n > 0 {
            self.tls
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(n)
    }

    /// Writes what rustls has to send (handshake messages, records, alerts).
    fn send_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.sock)?;
        }
        Ok(())
    }
}

impl Read for TlsConn<'_> {
    /// Decrypted bytes; when one read from the socket completed no record, `Interrupted`, so
    /// that the caller looks at its deadline before reading again.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        if self.receive()? == 0 {
            return Ok(0);
        }
        // A key update or alert to answer, say.
        self.send_pending()?;
        match self.tls.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::ErrorKind::Interrupted.into())
            }
            done => done,
        }
    }
}

impl Write for TlsConn<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        self.send_pending()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.send_pending()
    }
}

impl Conn for TlsConn<'_> {
    fn set_read_timeout(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(timeout))
    }

    fn finish(&mut self) {
        self.tls.send_close_notify();
        let _ = self.send_pending();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests;
