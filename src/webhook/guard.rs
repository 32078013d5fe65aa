//! The address guard: which addresses the webhook may open a connection to.
//!
//! Link-local and cloud metadata addresses are refused unless `allow_link_local` is set (an
//! endpoint that resolves to `169.254.169.254` would otherwise POST to the machine's instance
//! metadata service); `deny_private` also refuses loopback, private, shared (CGNAT) and
//! unspecified addresses. An IPv4 address written inside IPv6 (`::ffff:a.b.c.d`, or the NAT64
//! prefix `64:ff9b::/96`) is judged as the IPv4 address it reaches.
//!
//! The check is a link of the connector chain, just before TCP: it sees the addresses of every
//! new connection, as resolved for that connection, so a DNS answer that changes after the
//! configuration was checked cannot slip past. Through a proxy the connection opened is the
//! proxy's, so the proxy's address is the one checked (the proxy resolves the endpoint).
//! An answer with some refused addresses is narrowed to the others; an answer with nothing left
//! is a failed attempt that says why.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ureq::unversioned::transport::{ConnectionDetails, Connector, Transport};

/// What the guard lets through, from `[notifier.http]`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// `allow_link_local`: permit link-local and cloud metadata addresses.
    pub(crate) allow_link_local: bool,
    /// `deny_private`: also refuse loopback, private, shared and unspecified addresses.
    pub(crate) deny_private: bool,
}

/// The sort of address a refused one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Metadata,
    LinkLocal,
    Loopback,
    Private,
    Shared,
    Unspecified,
}

impl Class {
    fn of(ip: IpAddr) -> Option<Class> {
        match ip {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => class_v4(v4),
                None => class_v6(v6),
            },
        }
    }

    /// Whether the `allow_link_local` rule (rather than `deny_private`) governs it.
    fn link_local_rule(self) -> bool {
        matches!(self, Class::Metadata | Class::LinkLocal)
    }

    /// The setting that decides, as a reader would change it.
    pub(crate) fn rule(self) -> &'static str {
        if self.link_local_rule() {
            "notifier.http.allow_link_local = true permits it"
        } else {
            "notifier.http.deny_private = true refuses it"
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Class::Metadata => "a cloud metadata address",
            Class::LinkLocal => "a link-local address",
            Class::Loopback => "a loopback address",
            Class::Private => "a private address",
            Class::Shared => "a shared (carrier-grade NAT) address",
            Class::Unspecified => "an unspecified address (it reaches this host)",
        }
    }
}

/// Known cloud metadata services outside the link-local range: Alibaba Cloud's (IPv4) and
/// Amazon EC2's (IPv6).
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn class_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Some(Class::Metadata)
    } else if ip.is_link_local() {
        Some(Class::LinkLocal)
    } else if ip.is_loopback() {
        Some(Class::Loopback)
    } else if ip.is_private() {
        Some(Class::Private)
    } else if a == 100 && (64..128).contains(&b) {
        Some(Class::Shared)
    } else if a == 0 {
        Some(Class::Unspecified)
    } else {
        None
    }
}

fn class_v6(ip: Ipv6Addr) -> Option<Class> {
    let first = ip.segments()[0];
    if ip == METADATA_V6 {
        Some(Class::Metadata)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Class::LinkLocal)
    } else if ip.is_loopback() {
        Some(Class::Loopback)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Class::Private)
    } else if ip.is_unspecified() {
        Some(Class::Unspecified)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 one reaches: IPv4-mapped, or behind the NAT64 well-known prefix.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

impl Policy {
    /// The policy `[notifier.http]` sets.
    pub(crate) fn of(http: &crate::config::HttpConfig) -> Policy {
        Policy {
            allow_link_local: http.allow_link_local,
            deny_private: http.deny_private,
        }
    }

    /// What the guard would say of `host` (a URL's host) when it is an address literal:
    /// known at configure time, so a setting that can never connect is a configuration error.
    pub(crate) fn refuses_literal(self, host: &str) -> Option<Class> {
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        self.refuses(ip)
    }

    /// Why the guard refuses `ip`, or `None` when it may be connected to.
    pub(crate) fn refuses(self, ip: IpAddr) -> Option<Class> {
        let class = Class::of(ip)?;
        let refused = if class.link_local_rule() {
            !self.allow_link_local
        } else {
            self.deny_private
        };
        refused.then_some(class)
    }
}

/// A connection the guard refused: the address and why. It travels inside the `io::Error`
/// ureq reports, so the failed attempt can say it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) addr: SocketAddr,
    pub(crate) class: Class,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused to connect to {}, {} ({})",
            self.addr,
            self.class.describe(),
            self.class.rule()
        )
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal inside a ureq error, if that is what it is.
    pub(crate) fn find(e: &ureq::Error) -> Option<Refused> {
        match e {
            ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<Refused>().copied(),
            _ => None,
        }
    }
}

/// A connector link that hands the connector after it (TCP) only the addresses the policy
/// allows.
pub(crate) struct Guarded<C> {
    policy: Policy,
    inner: C,
}

impl<C> Guarded<C> {
    pub(crate) fn new(policy: Policy, inner: C) -> Guarded<C> {
        Guarded { policy, inner }
    }
}

impl<C: fmt::Debug> fmt::Debug for Guarded<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("policy", &self.policy)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<In: Transport, C: Connector<In>> Connector<In> for Guarded<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            // A tunnel through the proxy: the proxy's own connection was checked when it
            // was opened (it runs through this chain too).
            return self.inner.connect(details, chained);
        }
        let mut allowed = details.resolver.empty();
        let mut refused = None;
        for addr in details.addrs.iter() {
            match self.policy.refuses(addr.ip()) {
                None => allowed.push(*addr),
                Some(class) => {
                    refused.get_or_insert(Refused { addr: *addr, class });
                }
            }
        }
        match refused {
            None => self.inner.connect(details, None),
            Some(r) if allowed.is_empty() => Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                r,
            ))),
            Some(_) => {
                let narrowed = ConnectionDetails {
                    addrs: allowed,
                    current_time: details.current_time.clone(),
                    run_connector: details.run_connector.clone(),
                    register_shutdown: details.register_shutdown.clone(),
                    ..*details
                };
                self.inner.connect(&narrowed, None)
            }
        }
    }
}

#[cfg(test)]
mod tests;
