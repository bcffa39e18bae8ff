//! Linux capabilities: names ↔ numbers, the plan (the five OCI sets intersected with what the
//! host's bounding set allows, with a warning per dropped capability) and applying it.

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::ProcessError;
use crate::sys::setup::{self, CapSets};

/// Capability names indexed by number (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
pub const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities `runc spec` gives a container.
pub const RUNC_SPEC_CAPABILITIES: &[&str] =
    &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default capability set of containerd/CRI (and Docker) containers.
pub const CONTAINERD_DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Number of a capability name ("CAP_SYS_ADMIN", "sys_admin", "SYS_ADMIN").
pub fn number(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u32)
}

/// Name of capability `n` ("CAP_42" for numbers newer than this table).
pub fn name(n: u32) -> String {
    CAPABILITY_NAMES
        .get(n as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("CAP_{n}"))
}

/// Bitmask of an OCI capability set.
pub fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter()
        .flatten()
        .filter_map(|c| number(&c.to_string()))
        .fold(0u64, |m, n| m | (1 << n))
}

/// What to set, after intersecting the requested sets with what is possible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapPlan {
    /// New bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
    /// Capabilities the host lacks ("capabilities.effective: dropping CAP_Y (not in the
    /// host's bounding set)"): always worth a warning.
    pub warnings: Vec<String>,
    /// Capabilities dropped to keep the kernel's invariants (e.g. ambient without
    /// inheritable): the spec asks for something that cannot take effect.
    pub adjustments: Vec<String>,
}

fn names(mut m: u64) -> Vec<String> {
    let mut out = Vec::new();
    while m != 0 {
        let n = m.trailing_zeros();
        out.push(name(n));
        m &= m - 1;
    }
    out
}

/// Intersects the requested sets with `host_bounding` (the caps this process may keep) and
/// keeps the kernel's invariants: effective ⊆ permitted, inheritable ⊆ bounding,
/// ambient ⊆ permitted ∩ inheritable. `None` means every set is empty (like runc).
pub fn plan(caps: Option<&LinuxCapabilities>, host_bounding: u64) -> CapPlan {
    let get = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| {
        caps.map(|c| mask(f(c).as_ref())).unwrap_or(0)
    };
    let mut p = CapPlan {
        bounding: get(LinuxCapabilities::bounding),
        effective: get(LinuxCapabilities::effective),
        permitted: get(LinuxCapabilities::permitted),
        inheritable: get(LinuxCapabilities::inheritable),
        ambient: get(LinuxCapabilities::ambient),
        warnings: Vec::new(),
        adjustments: Vec::new(),
    };
    let msg = |set: &str, dropped: u64, why: &str| {
        format!(
            "capabilities.{set}: dropping {} ({why})",
            names(dropped).join(", ")
        )
    };
    let mut lacking: Vec<(u32, Vec<&str>)> = Vec::new();
    for (set, v) in [
        ("bounding", &mut p.bounding),
        ("effective", &mut p.effective),
        ("permitted", &mut p.permitted),
        ("inheritable", &mut p.inheritable),
        ("ambient", &mut p.ambient),
    ] {
        let mut dropped = *v & !host_bounding;
        *v &= host_bounding;
        while dropped != 0 {
            let cap = dropped.trailing_zeros();
            match lacking.iter_mut().find(|(c, _)| *c == cap) {
                Some((_, sets)) => sets.push(set),
                None => lacking.push((cap, vec![set])),
            }
            dropped &= dropped - 1;
        }
    }
    lacking.sort();
    for (cap, sets) in lacking {
        p.warnings.push(format!(
            "{} is not in the host's bounding set: dropped from capabilities.{{{}}}",
            name(cap),
            sets.join(",")
        ));
    }
    let d = p.effective & !p.permitted;
    if d != 0 {
        p.adjustments
            .push(msg("effective", d, "not in the permitted set"));
        p.effective &= p.permitted;
    }
    let d = p.inheritable & !p.bounding;
    if d != 0 {
        p.adjustments
            .push(msg("inheritable", d, "not in the bounding set"));
        p.inheritable &= p.bounding;
    }
    let d = p.ambient & !(p.permitted & p.inheritable);
    if d != 0 {
        p.adjustments
            .push(msg("ambient", d, "not both permitted and inheritable"));
        p.ambient &= p.permitted & p.inheritable;
    }
    p
}

/// The calling thread's bounding set as a bitmask (probes every capability the kernel knows).
pub fn host_bounding() -> u64 {
    let mut m = 0u64;
    for cap in 0..64u32 {
        match setup::cap_bound_read(cap) {
            Ok(true) => m |= 1 << cap,
            Ok(false) => {}
            Err(_) => break,
        }
    }
    m
}

fn sys(op: &'static str, what: String) -> impl Fn(nix::errno::Errno) -> ProcessError {
    move |e| ProcessError::Sys {
        op,
        what: what.clone(),
        source: e,
    }
}

/// Drops every capability outside `plan.bounding` from the bounding set (needs CAP_SETPCAP,
/// so it runs before the user switch).
pub fn apply_bounding(plan: &CapPlan) -> Result<(), ProcessError> {
    let current = host_bounding();
    let mut drop = current & !plan.bounding;
    while drop != 0 {
        let cap = drop.trailing_zeros();
        setup::cap_bound_drop(cap).map_err(sys("drop from bounding set", name(cap)))?;
        drop &= drop - 1;
    }
    Ok(())
}

/// Sets effective/permitted/inheritable, then the ambient set.
pub fn apply_sets(plan: &CapPlan) -> Result<(), ProcessError> {
    setup::capset(CapSets {
        effective: plan.effective,
        permitted: plan.permitted,
        inheritable: plan.inheritable,
    })
    .map_err(sys("capset", format!("{plan:?}")))?;
    setup::ambient_clear_all().map_err(sys("clear ambient set", String::new()))?;
    let mut amb = plan.ambient;
    while amb != 0 {
        let cap = amb.trailing_zeros();
        setup::ambient_raise(cap).map_err(sys("raise ambient", name(cap)))?;
        amb &= amb - 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("sys_admin"), Some(21));
        assert_eq!(number("SYS_RESOURCE"), Some(24));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_BOGUS"), None);
        assert_eq!(name(21), "CAP_SYS_ADMIN");
        assert_eq!(name(50), "CAP_50");
        for n in RUNC_SPEC_CAPABILITIES
            .iter()
            .chain(CONTAINERD_DEFAULT_CAPABILITIES)
        {
            assert!(number(n).is_some(), "{n}");
        }
        // Every oci-spec capability maps to a number.
        for c in [
            Capability::SysAdmin,
            Capability::NetBindService,
            Capability::AuditRead,
            Capability::Bpf,
        ] {
            assert!(number(&c.to_string()).is_some(), "{c}");
        }
    }

    #[test]
    fn plan_intersects_with_host_bounding() {
        let set: Capabilities = [
            Capability::SysAdmin,
            Capability::SysResource,
            Capability::Chown,
        ]
        .into_iter()
        .collect();
        let caps = LinuxCapabilitiesBuilder::default()
            .bounding(set.clone())
            .effective(set.clone())
            .permitted(set.clone())
            .inheritable(set.clone())
            .ambient(set)
            .build()
            .unwrap();
        // The host here lacks CAP_SYS_RESOURCE (bit 24).
        let host = 0x01ff_ffff_ffff_u64 & !(1 << 24);
        let p = plan(Some(&caps), host);
        let want = (1u64 << 21) | 1;
        assert_eq!(
            (
                p.bounding,
                p.effective,
                p.permitted,
                p.inheritable,
                p.ambient
            ),
            (want, want, want, want, want)
        );
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(
            p.warnings[0].contains("CAP_SYS_RESOURCE"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn plan_keeps_kernel_invariants() {
        let caps = LinuxCapabilitiesBuilder::default()
            .bounding([Capability::Chown].into_iter().collect::<Capabilities>())
            .effective([Capability::Kill].into_iter().collect::<Capabilities>())
            .permitted([Capability::Chown].into_iter().collect::<Capabilities>())
            .inheritable(
                [Capability::Chown, Capability::Kill]
                    .into_iter()
                    .collect::<Capabilities>(),
            )
            .ambient(
                [Capability::Chown, Capability::Kill]
                    .into_iter()
                    .collect::<Capabilities>(),
            )
            .build()
            .unwrap();
        let p = plan(Some(&caps), u64::MAX >> 23);
        assert_eq!(p.effective, 0, "kill is not permitted");
        assert_eq!(p.inheritable, 1, "kill is not in bounding");
        assert_eq!(p.ambient, 1);
        assert_eq!(p.adjustments.len(), 3, "{:?}", p.adjustments);
        assert!(p.warnings.is_empty());
        assert_eq!(plan(None, u64::MAX), CapPlan::default());
    }

    #[test]
    fn host_bounding_matches_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
        let bnd = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(host_bounding(), bnd);
    }
}
