//! Kernel settings the cluster network needs: IP forwarding on the host (recorded so it can be
//! restored when the last cluster goes) and `route_localnet` on the bridge.
//!
//! `/proc/sys/net` shows the network namespace of the calling thread, so these calls act on the
//! namespace the worker thread entered.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::IpFamily;
use super::error::NetworkError;

/// A host sysctl kina changed, with the value it had before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    /// Key below /proc/sys, e.g. `net/ipv4/ip_forward`.
    pub key: String,
    /// Value before kina changed it.
    pub previous: String,
    /// Value kina wrote.
    pub value: String,
}

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// Reads a sysctl, trimmed.
pub(crate) fn read(key: &str) -> Result<String, NetworkError> {
    fs::read_to_string(path(key))
        .map(|v| v.trim().to_string())
        .map_err(|source| NetworkError::Sysctl {
            key: key.into(),
            source,
        })
}

/// Writes a sysctl.
pub(crate) fn write(key: &str, value: &str) -> Result<(), NetworkError> {
    fs::write(path(key), value).map_err(|source| NetworkError::Sysctl {
        key: key.into(),
        source,
    })
}

/// Forwarding keys a family needs.
fn forwarding_keys(family: IpFamily) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if family.has_v4() {
        keys.push("net/ipv4/ip_forward");
    }
    if family.has_v6() {
        keys.push("net/ipv6/conf/all/forwarding");
    }
    keys
}

/// Interfaces (and `default`) whose `accept_ra` is 1, which stops working once IPv6 forwarding
/// is on.
fn ra_accepting_interfaces() -> Result<Vec<String>, NetworkError> {
    let dir = path("net/ipv6/conf");
    let entries = fs::read_dir(&dir).map_err(|source| NetworkError::Sysctl {
        key: "net/ipv6/conf".into(),
        source,
    })?;
    let mut keys = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = format!("net/ipv6/conf/{name}/accept_ra");
        if name != "all" && read(&key).is_ok_and(|v| v == "1") {
            keys.push(key);
        }
    }
    keys.sort();
    Ok(keys)
}

/// Turns on forwarding for `family`; returns the changes actually made (already-on keys are not
/// reported). IPv6 forwarding makes the kernel ignore router advertisements on interfaces with
/// `accept_ra=1`, which would silently drop the host's SLAAC routes; those interfaces are moved
/// to `accept_ra=2` (accept even when forwarding) first.
pub(crate) fn enable_forwarding(family: IpFamily) -> Result<Vec<SysctlChange>, NetworkError> {
    let mut changes = Vec::new();
    if family.has_v6() && read("net/ipv6/conf/all/forwarding")? != "1" {
        for key in ra_accepting_interfaces()? {
            write(&key, "2")?;
            changes.push(SysctlChange {
                key,
                previous: "1".into(),
                value: "2".into(),
            });
        }
    }
    for key in forwarding_keys(family) {
        let previous = read(key)?;
        if previous != "1" {
            write(key, "1")?;
            tracing::info!(key, previous = %previous, "enabled forwarding for cluster networks");
            changes.push(SysctlChange {
                key: key.into(),
                previous,
                value: "1".into(),
            });
        }
    }
    Ok(changes)
}

/// Puts back values kina changed, unless someone changed them since (or the interface is gone),
/// in reverse order.
pub(crate) fn restore(changes: &[SysctlChange]) -> Result<(), NetworkError> {
    for change in changes.iter().rev() {
        if !path(&change.key).exists() {
            continue;
        }
        if read(&change.key)? == change.value {
            write(&change.key, &change.previous)?;
            tracing::info!(key = %change.key, value = %change.previous, "restored sysctl");
        }
    }
    Ok(())
}

/// Lets the host DNAT connections to 127.0.0.1 out of `bridge` (see the nat module).
pub(crate) fn enable_route_localnet(bridge: &str) -> Result<(), NetworkError> {
    write(&format!("net/ipv4/conf/{bridge}/route_localnet"), "1")
}
