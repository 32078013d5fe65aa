//! `receive`: a webhook receiver for trying the notifier out on one machine. It prints what it
//! gets and answers 200.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::CliError;
use crate::serve::signal_stopper;

/// The most of a request body printed; a webhook's is about 60 bytes.
const MAX_BODY: u64 = 64 * 1024;

pub fn receive(addr: &str) -> Result<(), CliError> {
    let stopper = signal_stopper()?;
    let wanted: SocketAddr = addr.parse().map_err(|_| {
        CliError::usage(format!(
            "--addr must be an address and port like 127.0.0.1:8080, got \"{addr}\""
        ))
    })?;
    let server = tiny_http::Server::http(wanted)
        .map_err(|e| CliError::runtime(format!("could not listen on {addr}: {e}")))?;
    let bound = server.server_addr().to_ip().unwrap_or(wanted);
    log::info!("receiving webhooks on http://{bound}/ (Ctrl-C stops)");
    while !stopper.is_stopped() {
        let Some(mut request) = server.recv_timeout(Duration::from_millis(200))? else {
            continue;
        };
        let mut body = Vec::new();
        request.as_reader().take(MAX_BODY).read_to_end(&mut body)?;
        log::info!("{} {}", request.method(), request.url());
        let mut out = std::io::stdout().lock();
        out.write_all(String::from_utf8_lossy(&body).trim_end().as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        let _ = request.respond(tiny_http::Response::empty(200));
    }
    Ok(())
}
