//! Tests of the HTTP/1.1 framing.

use std::net::TcpListener;

use super::*;

/// The head and its length, for a complete head that parses.
fn head(raw: &[u8]) -> (Head, usize) {
    parse_head(raw).ok().flatten().unwrap()
}

#[test]
fn heads_end_at_the_first_blank_line() {
    assert_eq!(head(b"GET / HTTP/1.1\r\n\r\nrest").1, 18);
    assert_eq!(head(b"GET / HTTP/1.1\n\nrest").1, 16);
    assert!(matches!(
        parse_head(b"GET / HTTP/1.1\r\nA: b\r\n"),
        Ok(None)
    ));
}

#[test]
fn heads_parse_or_are_refused_with_a_status() {
    let (h, _) = head(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/x?y=1"));
    assert!(h.wants_close());
    let (h, _) = head(b"GET http://h:1/p HTTP/1.0\r\n\r\n");
    assert_eq!(h.target, "/p");
    assert!(h.wants_close());
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    let big = format!(
        "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
        "v".repeat(MAX_HEADER_BYTES)
    );
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "u".repeat(MAX_URL_BYTES));
    for (raw, status) in [
        (&b"GET /\r\n\r\n"[..], 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\n\r\n", 505),
        (b"GET / FTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET x HTTP/1.1\r\n\r\n", 400),
        (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n", 400),
        (many.as_bytes(), 431),
        (big.as_bytes(), 431),
        (long.as_bytes(), 414),
    ] {
        assert_eq!(
            parse_head(raw).err().map(|r| r.status),
            Some(status),
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(60)])
        );
    }
}

#[test]
fn heads_too_large_to_finish_are_414_or_431_by_their_request_line() {
    let url = format!("GET /{}", "u".repeat(MAX_HEAD_BYTES));
    assert_eq!(too_large(url.as_bytes()).status, 414);
    let target = format!("GET /{} HTTP/1.1\r\nX: v", "u".repeat(MAX_URL_BYTES));
    assert_eq!(too_large(target.as_bytes()).status, 414);
    let header = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(MAX_HEAD_BYTES));
    assert_eq!(too_large(header.as_bytes()).status, 431);
}

#[test]
fn chunked_bodies_are_drained_up_to_the_next_request_or_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let full = format!("8000\r\n{}\r\n8001\r\n", "b".repeat(0x8000));
    let ok = |rest: &[u8]| Ok(rest.to_vec());
    // What is left in the buffer after the body, or the status it is refused with.
    type Outcome = std::result::Result<Vec<u8>, u16>;
    let cases: Vec<(&[u8], Outcome)> = vec![
        (b"3\r\nabc\r\n0\r\n\r\nNEXT", ok(b"NEXT")),
        (
            b"3;a=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: v\r\n\r\nN",
            ok(b"N"),
        ),
        (b"zz\r\n", Err(400)),
        (b"\r\n", Err(400)),
        (b"3\nabc\r\n0\r\n\r\n", Err(400)),
        (b"3\r\nabcX\r\n0\r\n\r\n", Err(400)),
        (b"0\r\nno colon\r\n\r\n", Err(400)),
        (b"10001\r\n", Err(413)),
        (full.as_bytes(), Err(413)),
        (b"3\r\nab", Err(408)),
        (b"0\r\nX-T: v\r\n", Err(408)),
    ];
    for (body, want) in cases {
        let mut client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(body).unwrap();
        // The end of the stream stands for the deadline (both end the reading).
        drop(client);
        let mut buf = Vec::new();
        let got = drain_chunked(&mut &server, &mut buf).map(|()| buf);
        assert_eq!(
            got.map_err(|r| r.status),
            want,
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
    }
}

proptest::proptest! {
    #[test]
    fn any_head_parses_or_gets_a_refusal_status(
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)
    ) {
        if let Err(r) = parse_head(&raw) {
            proptest::prop_assert!([400, 414, 431, 505].contains(&r.status), "{}", r.status);
        }
        let _ = too_large(&raw);
    }

    #[test]
    fn generated_heads_parse_to_their_parts(
        method in "[A-Z]{1,8}",
        path in "/[!-~]{0,60}",
        headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..10),
    ) {
        let mut raw = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let (h, len) = head(raw.as_bytes());
        proptest::prop_assert_eq!(len, raw.len());
        proptest::prop_assert_eq!(h.method, method);
        let want = if path.starts_with("//") || !path.contains("://") { path.clone() } else { h.target.clone() };
        proptest::prop_assert_eq!(h.target, want);
        proptest::prop_assert_eq!(h.headers.len(), headers.len());
    }
}
