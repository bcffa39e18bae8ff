//! AppArmor profiles and SELinux labels: applied to the next execve when the host has the
//! LSM (checked via /sys/kernel/security/apparmor and /sys/fs/selinux), otherwise ignored
//! with a warning, so the same spec runs on every host.

use std::path::Path;

use super::ProcessError;

/// True when AppArmor is enabled on the host. Inside the container (after pivot_root) /sys
/// may be absent, so the process's own AppArmor attribute is checked too: it is readable only
/// when AppArmor is the active LSM.
pub fn apparmor_enabled() -> bool {
    let sys = Path::new("/sys/kernel/security/apparmor").is_dir()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim_start().starts_with('Y'));
    sys || std::fs::read_to_string("/proc/thread-self/attr/apparmor/current")
        .is_ok_and(|s| !s.trim().is_empty())
}

/// True when SELinux is enabled on the host (selinuxfs, or a SELinux context
/// `user:role:type:level` as the process's current label).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
        || std::fs::read_to_string("/proc/thread-self/attr/current")
            .is_ok_and(|s| s.trim_end_matches('\0').split(':').count() >= 3)
}

fn write_attr(paths: &[&str], value: &str) -> Result<(), ProcessError> {
    let mut last = None;
    for p in paths {
        match std::fs::write(p, value) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some((p, e)),
        }
    }
    let (p, e) = last.expect("at least one path");
    Err(ProcessError::Io {
        op: "write",
        path: p.into(),
        source: e,
    })
}

/// Applies `process.apparmorProfile` to the next exec.
pub fn apply_apparmor(profile: &str) -> Result<(), ProcessError> {
    if profile.is_empty() {
        return Ok(());
    }
    if !apparmor_enabled() {
        tracing::warn!(
            profile,
            "process.apparmorProfile ignored: AppArmor is not enabled on this host"
        );
        return Ok(());
    }
    write_attr(
        &[
            "/proc/thread-self/attr/apparmor/exec",
            "/proc/thread-self/attr/exec",
        ],
        &format!("exec {profile}"),
    )
}

/// Applies `process.selinuxLabel` to the next exec.
pub fn apply_selinux(label: &str) -> Result<(), ProcessError> {
    if label.is_empty() {
        return Ok(());
    }
    if !selinux_enabled() {
        tracing::warn!(
            label,
            "process.selinuxLabel ignored: SELinux is not enabled on this host"
        );
        return Ok(());
    }
    write_attr(&["/proc/thread-self/attr/exec"], label)
}
