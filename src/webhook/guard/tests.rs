//! The guard's rules, on the classification and on the connector link itself. No test here
//! opens a connection: a resolver answers with fixed addresses and the link after the guard
//! records what it was handed instead of connecting.

use std::sync::{Arc, Mutex};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{ConnectProxyConnector, NextTimeout};

use super::*;

const fn policy(allow_link_local: bool, deny_private: bool) -> Policy {
    Policy {
        allow_link_local,
        deny_private,
    }
}

const DEFAULT: Policy = policy(false, false);
const ALLOW_LINK_LOCAL: Policy = policy(true, false);
const DENY_PRIVATE: Policy = policy(false, true);
const BOTH: Policy = policy(true, true);

/// Addresses and their class (`None`: a public address).
const CASES: &[(&str, Option<Class>)] = &[
    ("169.254.169.254", Some(Class::Metadata)),
    ("100.100.100.200", Some(Class::Metadata)),
    ("fd00:ec2::254", Some(Class::Metadata)),
    ("169.254.0.1", Some(Class::LinkLocal)),
    ("169.254.255.255", Some(Class::LinkLocal)),
    ("fe80::1", Some(Class::LinkLocal)),
    ("febf:ffff::1", Some(Class::LinkLocal)),
    // Hidden in IPv6: IPv4-mapped, and behind the NAT64 prefix.
    ("::ffff:169.254.169.254", Some(Class::Metadata)),
    ("::ffff:a9fe:1", Some(Class::LinkLocal)),
    ("64:ff9b::a9fe:a9fe", Some(Class::Metadata)),
    ("127.0.0.1", Some(Class::Loopback)),
    ("127.255.0.9", Some(Class::Loopback)),
    ("::1", Some(Class::Loopback)),
    ("::ffff:127.0.0.1", Some(Class::Loopback)),
    ("10.1.2.3", Some(Class::Private)),
    ("172.16.0.1", Some(Class::Private)),
    ("172.31.255.255", Some(Class::Private)),
    ("192.168.1.1", Some(Class::Private)),
    ("fd12:3456::1", Some(Class::Private)),
    ("fc00::1", Some(Class::Private)),
    ("::ffff:10.0.0.5", Some(Class::Private)),
    ("64:ff9b::c0a8:101", Some(Class::Private)),
    ("100.64.0.1", Some(Class::Shared)),
    ("100.127.255.254", Some(Class::Shared)),
    ("0.0.0.0", Some(Class::Unspecified)),
    ("::", Some(Class::Unspecified)),
    ("93.184.215.14", None),
    ("172.32.0.1", None),
    ("100.128.0.1", None),
    ("169.253.255.255", None),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ("fec0::1", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None),
];

#[test]
fn each_policy_refuses_exactly_its_classes() {
    for &(addr, class) in CASES {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(Class::of(ip), class, "{addr}");
        let link_local = matches!(class, Some(Class::Metadata | Class::LinkLocal));
        let private = class.is_some() && !link_local;
        // By default only link-local and metadata addresses are refused.
        assert_eq!(DEFAULT.refuses(ip), class.filter(|_| link_local), "{addr}");
        assert_eq!(ALLOW_LINK_LOCAL.refuses(ip), None, "{addr}");
        // deny_private refuses the rest too; allow_link_local still permits its own.
        assert_eq!(DENY_PRIVATE.refuses(ip), class, "{addr}");
        assert_eq!(BOTH.refuses(ip), class.filter(|_| private), "{addr}");
    }
}

#[test]
fn refusals_name_the_address_and_the_key() {
    let r = Refused {
        addr: "169.254.169.254:80".parse().unwrap(),
        class: Class::Metadata,
    };
    assert_eq!(
        r.to_string(),
        "refused to connect to 169.254.169.254:80, a cloud metadata address \
         (notifier.http.allow_link_local = true permits it)"
    );
    let r = Refused {
        addr: "[::1]:8080".parse().unwrap(),
        class: Class::Loopback,
    };
    assert_eq!(
        r.to_string(),
        "refused to connect to [::1]:8080, a loopback address \
         (notifier.http.deny_private = true refuses it)"
    );
}

/// Answers every name with fixed addresses, and notes which hosts it was asked for.
#[derive(Debug)]
struct FixedResolver {
    answer: Vec<SocketAddr>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Resolver for FixedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _: &Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.asked
            .lock()
            .unwrap()
            .push(uri.host().unwrap_or_default().to_string());
        let mut addrs = self.empty();
        for a in &self.answer {
            addrs.push(*a);
        }
        Ok(addrs)
    }
}

/// Stands where TCP would: notes the addresses it was handed, and connects nowhere.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<SocketAddr>>>>);

impl<In: Transport> Connector<In> for Recorder {
    type Out = In;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<In>, ureq::Error> {
        assert!(chained.is_none(), "nothing was connected before this link");
        self.0.lock().unwrap().push(details.addrs.to_vec());
        Err(ureq::Error::ConnectionFailed)
    }
}

struct Attempt {
    error: ureq::Error,
    /// The address lists TCP was handed.
    handed: Vec<Vec<SocketAddr>>,
    /// The hosts the resolver was asked for.
    asked: Vec<String>,
}

/// A POST to `url` through ureq with the guard in the connector chain as the webhook has it
/// (after the CONNECT proxy link, before TCP), `answer` for every name, and `proxy` if set.
fn attempt(policy: Policy, url: &str, answer: &[&str], proxy: Option<&str>) -> Attempt {
    let recorder = Recorder::default();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let resolver = FixedResolver {
        answer: answer.iter().map(|a| a.parse().unwrap()).collect(),
        asked: asked.clone(),
    };
    let config = ureq::Agent::config_builder()
        .proxy(proxy.map(|p| ureq::Proxy::new(p).unwrap()))
        .build();
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(Guarded::new(policy, recorder.clone()));
    let agent = ureq::Agent::with_parts(config, connector, resolver);
    let error = agent.post(url).send("{}").expect_err("nothing connects");
    let handed = recorder.0.lock().unwrap().clone();
    let asked = asked.lock().unwrap().clone();
    Attempt {
        error,
        handed,
        asked,
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn the_link_refuses_a_metadata_answer_before_tcp() {
    let a = attempt(
        DEFAULT,
        "http://metadata.test/latest",
        &["169.254.169.254:80"],
        None,
    );
    assert_eq!(
        Refused::find(&a.error),
        Some(Refused {
            addr: "169.254.169.254:80".parse().unwrap(),
            class: Class::Metadata,
        }),
        "{}",
        a.error
    );
    assert!(a.handed.is_empty(), "TCP was handed {:?}", a.handed);
    assert_eq!(a.asked, ["metadata.test"]);
}

#[test]
fn the_link_refuses_link_local_hidden_in_ipv6() {
    for answer in [
        "[::ffff:169.254.1.1]:443",
        "[fe80::1]:443",
        "[fd00:ec2::254]:443",
    ] {
        let a = attempt(DEFAULT, "https://hook.test/", &[answer], None);
        assert!(Refused::find(&a.error).is_some(), "{answer}: {}", a.error);
        assert!(
            a.handed.is_empty(),
            "{answer}: TCP was handed {:?}",
            a.handed
        );
    }
}

#[test]
fn allow_link_local_hands_the_address_to_tcp() {
    let a = attempt(
        ALLOW_LINK_LOCAL,
        "http://metadata.test/",
        &["169.254.169.254:80"],
        None,
    );
    assert!(Refused::find(&a.error).is_none(), "{}", a.error);
    assert_eq!(a.handed, [addrs(&["169.254.169.254:80"])]);
}

#[test]
fn a_mixed_answer_is_narrowed_to_the_allowed_addresses() {
    let a = attempt(
        DEFAULT,
        "http://hook.test/",
        &[
            "169.254.169.254:80",
            "127.0.0.1:80",
            "[fe80::2]:80",
            "[::1]:80",
        ],
        None,
    );
    assert!(Refused::find(&a.error).is_none(), "{}", a.error);
    assert_eq!(a.handed, [addrs(&["127.0.0.1:80", "[::1]:80"])]);
}

#[test]
fn deny_private_refuses_loopback_at_the_link() {
    let a = attempt(
        DENY_PRIVATE,
        "http://hook.test/",
        &["127.0.0.1:80", "[::1]:80"],
        None,
    );
    let r = Refused::find(&a.error).expect("refused");
    assert_eq!(r.class, Class::Loopback);
    assert!(a.handed.is_empty(), "TCP was handed {:?}", a.handed);
}

#[test]
fn through_a_proxy_the_proxys_address_is_checked() {
    // The endpoint is never resolved here (the proxy resolves it): the proxy's name is, and
    // its address is what the guard judges.
    let a = attempt(
        DEFAULT,
        "http://hook.test/",
        &["169.254.10.10:3128"],
        Some("http://proxy.test:3128"),
    );
    assert_eq!(a.asked, ["proxy.test"]);
    let r = Refused::find(&a.error).expect("refused");
    assert_eq!(r.addr, "169.254.10.10:3128".parse().unwrap());
    assert!(a.handed.is_empty(), "TCP was handed {:?}", a.handed);

    let a = attempt(
        DEFAULT,
        "http://hook.test/",
        &["127.0.0.1:3128"],
        Some("http://proxy.test:3128"),
    );
    assert_eq!(a.handed, [addrs(&["127.0.0.1:3128"])]);
}
