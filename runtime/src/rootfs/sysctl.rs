//! `linux.sysctl`: validation (name syntax and the namespace each sysctl belongs to, like
//! runc's validator) and writing the values to /proc/sys inside the container.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::RootfsError;

/// IPC-namespaced sysctls that are not under a common prefix.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The /proc/sys path of a sysctl name ("net.ipv4.ip_forward" or "net/ipv4/ip_forward").
pub fn proc_path(key: &str) -> Result<PathBuf, RootfsError> {
    let bad = |reason: &str| RootfsError::Sysctl {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty name"));
    }
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let rel = rel.trim_start_matches('/');
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("malformed name"));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

fn has_ns(spec: &Spec, typ: LinuxNamespaceType) -> (bool, bool) {
    // (present, has an explicit path = joins an existing namespace)
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == typ))
        .map(|n| (true, n.path().is_some()))
        .unwrap_or((false, false))
}

/// Checks every sysctl belongs to a namespace the container owns, so it can never change
/// the host (e.g. `net.*` needs a network namespace, `kernel.hostname` a UTS namespace).
pub fn validate(spec: &Spec) -> Result<(), RootfsError> {
    let empty = HashMap::new();
    let sysctls = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .unwrap_or(&empty);
    for key in sysctls.keys() {
        proc_path(key)?;
        let norm = key.replace('/', ".");
        let need = if IPC_SYSCTLS.contains(&norm.as_str()) || norm.starts_with("fs.mqueue.") {
            Some((LinuxNamespaceType::Ipc, "an IPC"))
        } else if norm.starts_with("net.") {
            Some((LinuxNamespaceType::Network, "a network"))
        } else if norm == "kernel.hostname" || norm == "kernel.domainname" {
            Some((LinuxNamespaceType::Uts, "a UTS"))
        } else {
            None
        };
        match need {
            Some((ns, what)) => {
                if !has_ns(spec, ns).0 {
                    return Err(RootfsError::Sysctl {
                        key: key.clone(),
                        reason: format!(
                            "requires {what} namespace, but the container shares the host's"
                        ),
                    });
                }
            }
            None => {
                return Err(RootfsError::Sysctl {
                    key: key.clone(),
                    reason: "not namespaced: setting it would change the host".into(),
                });
            }
        }
    }
    Ok(())
}

/// Validates, then writes every sysctl of the spec (called inside the container, after the
/// root switch).
pub fn apply(spec: &Spec) -> Result<(), RootfsError> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    // Checked again here (not only at create): a sysctl is never written to the host's kernel.
    validate(spec)?;
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let path = proc_path(key)?;
        std::fs::write(&path, sysctls[key].as_bytes()).map_err(|e| RootfsError::Sysctl {
            key: key.clone(),
            reason: format!("write {}: {e}", path.display()),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, SpecBuilder};

    fn spec(keys: &[&str], ns: &[LinuxNamespaceType]) -> Spec {
        let sysctl = keys
            .iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect::<HashMap<_, _>>();
        let namespaces = ns
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
            .collect::<Vec<_>>();
        SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .sysctl(sysctl)
                    .namespaces(namespaces)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn names_map_to_proc_sys() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.1/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
        assert!(proc_path("net..x").is_err());
        assert!(proc_path("net/../../etc").is_err());
        assert!(proc_path("").is_err());
    }

    #[test]
    fn namespaces_are_required() {
        use LinuxNamespaceType::*;
        assert!(validate(&spec(&["net.ipv4.ip_forward"], &[Network])).is_ok());
        let e = validate(&spec(&["net.ipv4.ip_forward"], &[Ipc])).unwrap_err();
        assert!(e.to_string().contains("net.ipv4.ip_forward"), "{e}");
        assert!(validate(&spec(&["kernel.shmmax", "fs.mqueue.msg_max"], &[Ipc])).is_ok());
        assert!(validate(&spec(&["kernel.shmmax"], &[Network])).is_err());
        assert!(validate(&spec(&["kernel.domainname"], &[Uts])).is_ok());
        assert!(validate(&spec(&["vm.overcommit_memory"], &[Network, Ipc, Uts])).is_err());
    }
}
