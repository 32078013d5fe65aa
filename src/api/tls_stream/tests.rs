//! Tests of the TLS connection: any bytes a client sends end the handshake without a panic,
//! on the calling thread (where a panic fails the test).

use std::net::TcpListener;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::*;

/// A server configuration for a certificate made here, and a client configuration that
/// trusts it.
fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Runs the server's side of a connection over loopback after the client sent `bytes` and
/// closed its sending side: whether the handshake finished.
fn handshake_on(config: &Arc<ServerConfig>, bytes: &[u8]) -> bool {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    // More than a socket buffer may hold would block this thread: the client writes from
    // its own.
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = client.write_all(&bytes);
        let _ = client.shutdown(Shutdown::Write);
        client
    });
    let done = handshake(Arc::clone(config), &server).is_some();
    drop(server);
    let _ = writer.join();
    done
}

fn client_hello(client: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn a_real_client_completes_the_handshake_and_reads_through_it() {
    let (server_config, client_config) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        tls.write_all(b"ping").unwrap();
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).unwrap();
        answer
    });
    let (sock, _) = listener.accept().unwrap();
    let mut conn = handshake(server_config, &sock).expect("the handshake finishes");
    let mut got = Vec::new();
    while got.len() < 4 {
        let mut buf = [0u8; 16];
        match conn.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, b"ping");
    conn.write_all(b"pong").unwrap();
    conn.finish();
    // The client sees the answer and a clean end (close_notify).
    assert_eq!(client.join().unwrap(), b"pong");
}

#[test]
fn cut_and_changed_client_hellos_end_the_handshake() {
    let (server, client) = configs();
    let hello = client_hello(&client);
    for cut in [0, 1, 5, 6, hello.len() / 2, hello.len() - 1] {
        assert!(!handshake_on(&server, &hello[..cut]), "cut at {cut}");
    }
    let mut oversized = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    oversized.extend(std::iter::repeat_n(0u8, 0xffff));
    assert!(!handshake_on(&server, &oversized));
    assert!(!handshake_on(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
}

proptest::proptest! {
    #[test]
    fn any_bytes_end_the_handshake_without_a_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        as_record in proptest::prelude::any::<bool>(),
    ) {
        let (server, _) = configs();
        let mut bytes = bytes;
        if as_record && bytes.len() >= 5 {
            bytes[..3].copy_from_slice(&[0x16, 0x03, 0x01]);
        }
        proptest::prop_assert!(!handshake_on(&server, &bytes));
    }

    #[test]
    fn client_hellos_with_changed_bytes_end_the_handshake_without_a_panic(
        changes in proptest::collection::vec((proptest::prelude::any::<usize>(), 1u8..), 1..6),
    ) {
        let (server, client) = configs();
        let mut hello = client_hello(&client);
        for (i, x) in changes {
            let i = i % hello.len();
            hello[i] ^= x;
        }
        // The client closes after its hello: no handshake can finish.
        proptest::prop_assert!(!handshake_on(&server, &hello));
    }
}
