//! Generated input (proptest): the page-token decoder, the TOML configuration parser and the
//! read API's routes take anything without panicking and answer with a documented outcome.
//! (`add`'s line parser has its own in the binary's unit tests; the HTTP head parser in
//! `src/api/server.rs`.) Case counts: proptest's default (256 each), or `PROPTEST_CASES`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clair_notifier::api::{Api, PageKey, Request};
use clair_notifier::notification::PageCursor;
use clair_notifier::{ApiConfig, Config, Datastore, SqliteStore, Timestamp};
use proptest::prelude::*;

use crate::common::{sample, temp_db};

fn key() -> PageKey {
    PageKey::from_base64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=").unwrap()
}

fn cursor() -> impl Strategy<Value = PageCursor> {
    (-1i64..=i64::MAX, -1i64..=i64::MAX).prop_map(|(old, new)| PageCursor { old, new })
}

proptest! {
    #[test]
    fn any_string_opens_to_a_cursor_or_nothing(name in ".{0,40}", token in ".{0,200}") {
        let _ = key().open(&name, &token);
    }

    #[test]
    fn any_url_safe_string_opens_to_nothing(token in "[A-Za-z0-9_-]{0,100}") {
        prop_assert_eq!(key().open("n", &token), None);
    }

    #[test]
    fn valid_tokens_round_trip(name in ".{0,60}", c in cursor()) {
        let k = key();
        let t = k.seal(&name, c);
        prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(k.open(&name, &t), Some(c));
    }

    #[test]
    fn every_mutation_of_a_token_is_refused(
        name in "[a-z0-9-]{1,36}",
        c in cursor(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        how in 0u8..4,
        extra in "[A-Za-z0-9_-]{1,4}",
    ) {
        let k = key();
        let t = k.seal(&name, c);
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let i = at.index(raw.len());
        let mutated = match how {
            0 => { raw[i] ^= 1 << bit; URL_SAFE_NO_PAD.encode(&raw) }
            1 => { raw.remove(i); URL_SAFE_NO_PAD.encode(&raw) }
            2 => format!("{t}{extra}"),
            _ => t[..at.index(t.len())].to_string(),
        };
        prop_assume!(mutated != t);
        prop_assert_eq!(k.open(&name, &mutated), None, "{} accepted", mutated);
        // And the token of one notification never opens another's page.
        prop_assert_eq!(k.open(&format!("{name}x"), &t), None);
    }
}

// ---------------------------------------------------------------------------------------

/// One line of TOML for a random known or unknown key, with a value of a random type.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[0-9]{1,6}(ms|s|m|h|d|x|)".prop_map(|s| format!("\"{s}\"")),
        "(http|https|ftp)://[a-z0-9.:@/]{0,20}".prop_map(|s| format!("\"{s}\"")),
        "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
        Just("{ X-A = \"b\" }".to_string()),
        Just("[1, \"x\"]".to_string()),
        Just("1.5".to_string()),
    ]
}

fn toml_document() -> impl Strategy<Value = String> {
    let table = prop::sample::select(vec![
        "",
        "[database]",
        "[notifier]",
        "[notifier.http]",
        "[api]",
        "[notifier.mine]",
        "[other]",
    ]);
    let key = prop::sample::select(vec![
        "path",
        "attempts",
        "renotify_interval",
        "max_backoff",
        "workers",
        "poll_interval",
        "lease",
        "endpoint",
        "timeout",
        "servername",
        "cafile",
        "certfile",
        "keyfile",
        "proxy",
        "headers",
        "signing_secret",
        "addr",
        "pagination_key",
        "token",
        "unknown",
    ]);
    prop::collection::vec((table, key, toml_value()), 0..6).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(t, k, v)| format!("{t}\n{k} = {v}\n"))
            .collect()
    })
}

proptest! {
    #[test]
    fn any_text_is_a_configuration_or_one_line_error(text in "(?s).{0,300}") {
        if let Err(e) = Config::from_toml(&text) {
            let m = e.to_string();
            prop_assert!(!m.is_empty() && !m.contains('\n'), "{:?}", m);
        }
    }

    #[test]
    fn generated_configurations_parse_and_validate_or_name_the_problem(text in toml_document()) {
        match Config::from_toml(&text) {
            Ok(c) => {
                // Validation answers too, without panicking.
                if let Err(e) = c.notifier.validate() {
                    prop_assert!(e.to_string().contains("notifier."), "{}", e);
                }
                if let Err(e) = clair_notifier::api::validate_config(&c.api) {
                    prop_assert!(e.to_string().contains("api."), "{}", e);
                }
                if let Err(e) = clair_notifier::Webhook::from_config(&c.notifier.http) {
                    prop_assert!(e.to_string().contains("notifier.http."), "{}", e);
                }
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.contains('\n'), "{:?}", m);
                prop_assert!(m.starts_with("line ") || m.contains('`') || m.contains('.'), "{:?}", m);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

struct Routes {
    _dir: tempfile::TempDir,
    api: Api,
    name: String,
}

fn routes(token: &str) -> Routes {
    let (dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let name = store
        .insert(&[sample("CVE-G", 7)], Timestamp::now())
        .unwrap()[0]
        .clone();
    let config = ApiConfig {
        token: token.into(),
        ..ApiConfig::default()
    };
    Routes {
        _dir: dir,
        api: Api::new(&config, store).unwrap(),
        name,
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "DELETE", "POST", "PUT", "HEAD", "OPTIONS", "get"
        ])
        .prop_map(str::to_string),
        "[A-Z]{1,10}",
    ]
}

/// Paths near the real routes, with hostile pieces.
fn url() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("NAME".to_string()),
        "[a-z0-9-]{0,40}",
        "(%[0-9A-Fa-f]{2}|%|[^/?#%]){0,30}",
        Just("..".to_string()),
        Just("%2e%2e%2f".to_string()),
        Just("' OR 1=1 --".to_string()),
    ];
    let prefix = prop::sample::select(vec![
        "/v1/notifications/",
        "/v1/notifications",
        "/health",
        "/metrics",
        "/",
        "",
        "//v1/notifications/",
    ]);
    let limit = prop_oneof![
        Just(String::new()),
        (-5i64..2000).prop_map(|n| format!("limit={n}")),
        "limit=[^&]{0,12}".prop_map(|s| s),
        Just("limit=99999999999999999999".to_string()),
    ];
    let page = prop_oneof![Just(String::new()), "page=[A-Za-z0-9_%=-]{0,80}",];
    (prefix, segment, limit, page, "[^#]{0,20}").prop_map(|(p, s, l, pg, junk)| {
        let query: Vec<String> = [l, pg, junk]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect();
        if query.is_empty() {
            format!("{p}{s}")
        } else {
            format!("{p}{s}?{}", query.join("&"))
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn routes_answer_anything_with_a_documented_status(
        m in method(),
        u in url(),
        auth in prop::option::of(".{0,40}"),
    ) {
        // One store for the case: a fresh one per case would be slow; routes are pure.
        thread_local! { static R: Routes = routes("the-token"); }
        R.with(|r| {
            // Some cases aim at the real notification.
            let u = u.replace("NAME", &r.name);
            for authorization in [auth.clone(), Some("Bearer the-token".to_string())] {
                let req = Request { method: m.clone(), url: u.clone(), authorization };
                let resp = r.api.handle(&req);
                prop_assert!(
                    [200, 400, 401, 404, 405].contains(&resp.status),
                    "{} {} -> {} {:?}", m, u, resp.status, String::from_utf8_lossy(&resp.body)
                );
                if resp.status != 200 {
                    let msg = resp.error_message();
                    prop_assert!(msg.is_some_and(|s| !s.is_empty() && !s.contains('\n')));
                }
                if resp.status == 405 {
                    prop_assert!(resp.headers.iter().any(|(k, _)| *k == "Allow"));
                }
            }
            Ok(())
        })?;
    }
}
