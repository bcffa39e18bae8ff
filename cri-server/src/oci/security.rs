//! Security settings of a container spec: capability sets (CRI add/drop, `ALL`, privileged,
//! intersected with the host's bounding set), seccomp profiles (RuntimeDefault, Unconfined,
//! Localhost) and the clamping of `oom_score_adj` to what the host allows.

use std::path::Path;

use serde_json::{Value, json};

use super::OciError;

// Capability tables are kina-runtime's: one list of names by number, one of containerd's defaults.
use kina_runtime::process::capabilities::{
    CAPABILITY_NAMES as CAP_NAMES, CONTAINERD_DEFAULT_CAPABILITIES as DEFAULT_CAPS,
};

fn status_mask(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    u64::from_str_radix(line[field.len()..].trim(), 16).ok()
}

/// The capabilities in this process's bounding set, as `CAP_*` names.
pub fn bounding_set() -> Vec<String> {
    let mask = status_mask("CapBnd:").unwrap_or(u64::MAX);
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn normalize(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The effective capability list: defaults (or everything when privileged), plus `add`, minus
/// `drop` (`ALL` in either means every capability), intersected with `bounding`.
pub fn capabilities(
    privileged: bool,
    add: &[String],
    drop: &[String],
    bounding: &[String],
) -> Result<Vec<String>, OciError> {
    for n in add.iter().chain(drop) {
        let n = normalize(n);
        if n != "CAP_ALL" && !CAP_NAMES.contains(&n.as_str()) {
            return Err(OciError::InvalidSpec(format!(
                "linux.security_context.capabilities: unknown capability {n:?}"
            )));
        }
    }
    let all = || CAP_NAMES.iter().map(|c| c.to_string()).collect();
    let mut caps: Vec<String> = if privileged {
        all()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if !privileged {
        if add.iter().any(|a| normalize(a) == "CAP_ALL") {
            caps = all();
        } else {
            caps.extend(add.iter().map(|a| normalize(a)));
        }
        if drop.iter().any(|d| normalize(d) == "CAP_ALL") {
            // ALL dropped: only what is explicitly added (besides ALL) remains.
            caps = add
                .iter()
                .map(|a| normalize(a))
                .filter(|a| a != "CAP_ALL")
                .collect();
        } else {
            let dropped: Vec<String> = drop.iter().map(|d| normalize(d)).collect();
            caps.retain(|c| !dropped.contains(c));
        }
    }
    caps.retain(|c| bounding.contains(c));
    caps.sort();
    caps.dedup();
    Ok(caps)
}

/// Syscalls the RuntimeDefault profile refuses with EPERM (Docker's default profile blocks
/// these for unprivileged containers).
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
];

/// The seccomp section for a CRI profile; `None` means unconfined.
/// `type_`: 0 RuntimeDefault, 1 Unconfined, 2 Localhost.
pub fn seccomp(
    type_: i32,
    localhost_ref: &str,
    privileged: bool,
) -> Result<Option<Value>, OciError> {
    match type_ {
        _ if privileged => Ok(None),
        1 => Ok(None),
        0 => Ok(Some(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{
                "names": DENIED_SYSCALLS,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
            }],
        }))),
        2 => {
            let path = Path::new(
                localhost_ref
                    .strip_prefix("localhost/")
                    .unwrap_or(localhost_ref),
            );
            if !path.is_absolute() {
                return Err(OciError::InvalidSpec(format!(
                    "seccomp.localhost_ref {localhost_ref:?}: must be an absolute path"
                )));
            }
            let data = std::fs::read(path).map_err(|e| {
                OciError::InvalidSpec(format!("seccomp.localhost_ref {}: {e}", path.display()))
            })?;
            let v: Value = serde_json::from_slice(&data).map_err(|e| {
                OciError::InvalidSpec(format!(
                    "seccomp.localhost_ref {}: not a seccomp profile: {e}",
                    path.display()
                ))
            })?;
            Ok(Some(v))
        }
        other => Err(OciError::InvalidSpec(format!(
            "seccomp.profile_type {other}: unknown"
        ))),
    }
}

/// `wanted` clamped to what this host lets us set: without CAP_SYS_RESOURCE the score cannot go
/// below our own.
pub fn clamp_oom_score_adj(wanted: i64) -> i64 {
    let wanted = wanted.clamp(-1000, 1000);
    let has_sys_resource = status_mask("CapEff:").is_some_and(|m| m & (1 << 24) != 0)
        && status_mask("CapBnd:").is_some_and(|m| m & (1 << 24) != 0);
    if has_sys_resource {
        return wanted;
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    if wanted < own {
        tracing::warn!(
            wanted,
            clamped = own,
            "oom_score_adj below ours needs CAP_SYS_RESOURCE; clamping"
        );
        own
    } else {
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn add_drop_all_and_bounding() {
        let bnd = bounding_set();
        let full: Vec<String> = CAP_NAMES.iter().map(|c| c.to_string()).collect();
        let c = capabilities(false, &s(&["NET_ADMIN"]), &s(&["KILL"]), &full).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".into()) && !c.contains(&"CAP_KILL".into()));
        let c = capabilities(false, &s(&["CAP_NET_BIND_SERVICE"]), &s(&["ALL"]), &full).unwrap();
        assert_eq!(c, s(&["CAP_NET_BIND_SERVICE"]));
        let c = capabilities(false, &s(&["ALL"]), &[], &full).unwrap();
        assert_eq!(c.len(), CAP_NAMES.len());
        let c = capabilities(true, &[], &[], &bnd).unwrap();
        assert!(c.iter().all(|x| bnd.contains(x)));
        let no_resource: Vec<String> = full
            .iter()
            .filter(|c| *c != "CAP_SYS_RESOURCE")
            .cloned()
            .collect();
        let c = capabilities(false, &s(&["SYS_RESOURCE"]), &[], &no_resource).unwrap();
        assert!(!c.contains(&"CAP_SYS_RESOURCE".into()));
        let e = capabilities(false, &s(&["FLY"]), &[], &full).unwrap_err();
        assert!(e.to_string().contains("CAP_FLY"), "{e}");
    }

    #[test]
    fn seccomp_profiles() {
        assert!(seccomp(1, "", false).unwrap().is_none());
        assert!(seccomp(0, "", true).unwrap().is_none());
        let d = seccomp(0, "", false).unwrap().unwrap();
        assert_eq!(d["defaultAction"], "SCMP_ACT_ALLOW");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
        let l = seccomp(2, &format!("localhost/{}", p.display()), false)
            .unwrap()
            .unwrap();
        assert_eq!(l["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(seccomp(2, "relative.json", false).is_err());
        let missing = dir.path().join("missing.json");
        let e = seccomp(2, missing.to_str().unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("missing.json"));
    }

    #[test]
    fn oom_score_is_clamped_not_refused() {
        let v = clamp_oom_score_adj(-998);
        assert!((-998..=1000).contains(&v));
        assert_eq!(clamp_oom_score_adj(5000), 1000);
    }
}
