//! Sample notifications for the demo: realistic vulnerabilities (CVE names, namespaces,
//! packages, severities, CVSS metadata, fixes) and layer lists of realistic lengths, from a
//! small deterministic generator (the same seed gives the same data).

use clair_notifier::{FixedIn, NewNotification, Vulnerability, VulnerabilityWithLayers};

pub use fastrand::Rng;

const NAMESPACES: &[(&str, &str)] = &[
    ("debian:11", "https://security-tracker.debian.org/tracker/"),
    ("debian:12", "https://security-tracker.debian.org/tracker/"),
    ("ubuntu:22.04", "https://ubuntu.com/security/"),
    ("ubuntu:24.04", "https://ubuntu.com/security/"),
    ("alpine:v3.19", "https://security.alpinelinux.org/vuln/"),
    ("centos:7", "https://access.redhat.com/security/cve/"),
    ("rhel:9", "https://access.redhat.com/security/cve/"),
];

const PACKAGES: &[(&str, &str)] = &[
    (
        "openssl",
        "a crafted certificate can cause a buffer over-read",
    ),
    (
        "glibc",
        "a heap overflow in the dynamic loader allows privilege escalation",
    ),
    (
        "curl",
        "a cookie injection lets a server overwrite cookies of another domain",
    ),
    (
        "zlib",
        "inflate can write past the end of its window with a crafted stream",
    ),
    (
        "libxml2",
        "a use-after-free when parsing a document with XInclude",
    ),
    (
        "openssh",
        "a race condition in the signal handler allows remote code execution",
    ),
    ("sqlite3", "an integer overflow in the FTS5 extension"),
    (
        "expat",
        "a crafted XML document exhausts memory (billion laughs)",
    ),
    (
        "libpng",
        "a NULL pointer dereference when reading a malformed chunk",
    ),
    (
        "bash",
        "specially crafted environment variables allow command injection",
    ),
    (
        "systemd",
        "a local user can crash the journal with an oversized message",
    ),
    ("tar", "path traversal when extracting a crafted archive"),
    ("xz-utils", "the liblzma build was backdoored upstream"),
    (
        "python3",
        "tarfile extraction follows symlinks outside the target directory",
    ),
    (
        "nginx",
        "an off-by-one in the resolver allows a one-byte memory overwrite",
    ),
];

const SEVERITIES: &[(&str, f64)] = &[
    ("Negligible", 1.9),
    ("Low", 3.7),
    ("Medium", 5.3),
    ("Medium", 6.5),
    ("High", 7.5),
    ("High", 8.1),
    ("Critical", 9.8),
];

fn vulnerability(rng: &mut Rng, cve: &str, severity: usize) -> Vulnerability {
    let (ns, link) = NAMESPACES[rng.usize(..NAMESPACES.len())];
    let (pkg, what) = PACKAGES[rng.usize(..PACKAGES.len())];
    let (sev, score) = SEVERITIES[severity];
    let fixed = format!(
        "{}.{}.{}-{}",
        rng.u64(1..=9),
        rng.u64(0..=30),
        rng.u64(0..=20),
        rng.u64(1..=5)
    );
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "NVD".into(),
        serde_json::json!({"CVSSv3": {"Score": score, "Vectors": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}),
    );
    Vulnerability {
        name: cve.to_string(),
        namespace_name: ns.to_string(),
        description: format!("In {pkg}, {what}."),
        link: format!("{link}{cve}"),
        severity: sev.to_string(),
        metadata,
        fixed_by: fixed.clone(),
        fixed_in: vec![FixedIn {
            name: pkg.to_string(),
            namespace_name: ns.to_string(),
            version: fixed,
        }],
    }
}

/// `n` layer names (`sha256:` and 64 hex digits).
fn layers(rng: &mut Rng, n: u64) -> Vec<String> {
    (0..n)
        .map(|_| {
            format!(
                "sha256:{:016x}{:016x}{:016x}{:016x}",
                rng.u64(..),
                rng.u64(..),
                rng.u64(..),
                rng.u64(..)
            )
        })
        .collect()
}

/// How many layers a vulnerability touches: mostly a few, sometimes hundreds (a base image
/// everything is built on), so that receivers page through long lists.
fn layer_count(rng: &mut Rng) -> u64 {
    match rng.u64(0..=99) {
        0..=59 => rng.u64(1..=20),
        60..=89 => rng.u64(21..=120),
        _ => rng.u64(121..=450),
    }
}

/// The `i`th sample notification: 70% a new vulnerability (New only), 20% a changed one (Old
/// and New, severity raised, different layer counts), 10% a withdrawn one (Old only).
pub fn notification(rng: &mut Rng, i: usize) -> NewNotification {
    let cve = format!("CVE-{}-{}", rng.u64(2019..=2025), 1000 + i * 7 + 3);
    let severity = rng.u64(0..=SEVERITIES.len() as u64 - 1) as usize;
    let side = |rng: &mut Rng, sev: usize| {
        let v = vulnerability(rng, &cve, sev);
        let n = layer_count(rng);
        VulnerabilityWithLayers {
            vulnerability: v,
            layers: layers(rng, n),
        }
    };
    match rng.u64(0..=9) {
        0..=6 => NewNotification {
            old: None,
            new: Some(side(rng, severity)),
        },
        7..=8 => {
            let old = side(rng, severity.saturating_sub(1));
            let mut new = side(rng, severity);
            new.vulnerability.description = format!("{} (updated)", old.vulnerability.description);
            NewNotification {
                old: Some(old),
                new: Some(new),
            }
        }
        _ => NewNotification {
            old: Some(side(rng, severity)),
            new: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_and_varied() {
        let mut rng = Rng::with_seed(42);
        let all: Vec<_> = (0..300).map(|i| notification(&mut rng, i)).collect();
        for n in &all {
            n.check().unwrap();
        }
        assert!(all.iter().any(|n| n.old.is_some() && n.new.is_some()));
        assert!(all.iter().any(|n| n.old.is_some() && n.new.is_none()));
        assert!(
            all.iter()
                .filter_map(|n| n.new.as_ref())
                .any(|v| v.layers.len() > 120)
        );
    }
}
