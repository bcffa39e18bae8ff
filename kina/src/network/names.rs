//! Names derived from cluster and node names: bridge, veth ends and nft table.
//!
//! Interface names are limited to 15 bytes, so they carry a stable hash of the cluster (and node)
//! name instead of the name itself; the same inputs always give the same names, which lets delete
//! find every interface again after a restart even if state was lost.

use sha2::{Digest, Sha256};

use super::error::NetworkError;

/// Longest accepted cluster or node name.
const MAX_NAME: usize = 63;

/// Checks that a cluster or node name is safe for state files and nft identifiers:
/// `[a-z0-9]` first, then `[a-z0-9._-]`, at most 63 bytes.
pub(crate) fn validate(what: &'static str, name: &str) -> Result<(), NetworkError> {
    let reject = |reason| NetworkError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(reject("must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(reject("must be at most 63 characters"));
    }
    let mut chars = name.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(reject("must start with a lowercase letter or digit"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
    {
        return Err(reject(
            "may contain only lowercase letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(())
}

fn hash_hex(parts: &[&str], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..len]
        .to_string()
}

/// Bridge of a cluster: `kina-` + 10 hex digits (15 bytes).
pub(crate) fn bridge(cluster: &str) -> String {
    format!("kina-{}", hash_hex(&["bridge", cluster], 10))
}

/// Host end of a node's veth pair: `kv` + 12 hex digits.
pub(crate) fn host_veth(cluster: &str, node: &str) -> String {
    format!("kv{}", hash_hex(&["veth", cluster, node], 12))
}

/// Temporary name of the node end before it is moved into the node and renamed to `eth0`.
pub(crate) fn peer_veth(cluster: &str, node: &str) -> String {
    format!("kp{}", hash_hex(&["veth", cluster, node], 12))
}

/// The nft table holding every rule of a cluster (family `inet`).
pub(crate) fn nft_table(cluster: &str) -> String {
    format!("kina-{cluster}")
}

/// A stable locally administered unicast MAC for the bridge, so nodes' neighbour caches stay
/// valid when ports come and go.
pub(crate) fn bridge_mac(cluster: &str) -> Vec<u8> {
    let hex = hash_hex(&["mac", cluster], 12);
    let mut mac: Vec<u8> = (0..6)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_ifnamsiz_and_are_stable() {
        let b = bridge("a-very-long-cluster-name-that-goes-on");
        assert_eq!(b.len(), 15);
        assert_eq!(b, bridge("a-very-long-cluster-name-that-goes-on"));
        assert_ne!(bridge("one"), bridge("two"));
        assert!(host_veth("c", "n").len() <= 15);
        assert_ne!(host_veth("c", "n1"), host_veth("c", "n2"));
        assert_ne!(host_veth("c1", "n"), host_veth("c2", "n"));
        assert_ne!(host_veth("c", "n"), peer_veth("c", "n"));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate("cluster", "kind").is_ok());
        assert!(validate("cluster", "kind-2.x_y").is_ok());
        for bad in ["", "-x", "Kind", "a b", "a/b", "a\"b", &"x".repeat(64)] {
            let err = validate("cluster", bad).unwrap_err().to_string();
            assert!(err.contains("cluster name"), "{err}");
        }
    }

    #[test]
    fn bridge_mac_is_local_unicast() {
        let mac = bridge_mac("kind");
        assert_eq!(mac.len(), 6);
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }
}
