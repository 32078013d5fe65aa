//! Tests of the connection lifecycle: binding, the accept loop, and stopping.

use std::io::{Read, Write};

use super::*;
use crate::store::SqliteStore;

fn start() -> (tempfile::TempDir, RunningServer) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("n.db")).unwrap());
    let config = ApiConfig {
        addr: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    };
    let server = Server::start(&config, store, None).unwrap();
    (dir, server)
}

#[test]
fn stop_closes_kept_alive_connections_and_the_listener() {
    let (_dir, server) = start();
    let addr = server.addr();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    server.stop();
    // The kept-alive connection sees the end of its stream (the rest of the answer first).
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(
        rest.ends_with(b"\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );
}

#[test]
fn an_address_that_cannot_be_bound_is_an_error_with_its_cause() {
    let (_dir, first) = start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("n.db")).unwrap());
    let config = ApiConfig {
        addr: first.addr().to_string(),
        ..ApiConfig::default()
    };
    let e = Server::start(&config, store, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "could not listen on {} for the read API (api.addr)",
            first.addr()
        )
    );
    let cause = std::error::Error::source(&e).expect("the OS error as the source");
    assert!(cause.downcast_ref::<std::io::Error>().is_some(), "{cause}");
    let e = parse_addr("api.addr", "no port").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(std::error::Error::source(&e).is_some());
}
