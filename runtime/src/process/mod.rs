//! The container process: user and groups, capabilities, rlimits, no_new_privs, oom_score_adj, seccomp, personality, ioPriority.
//!
//! Called by the init (and exec) process in this order: [`prepare`] (still root: oom score,
//! rlimits, personality, I/O priority, LSM labels, umask), [`set_identity_and_caps`],
//! [`set_no_new_privs`], and [`seccomp::load`].

pub mod capabilities;
pub mod lsm;
pub mod mempolicy;
pub mod oom;
pub mod personality;
pub mod rlimits;
pub mod sched;
pub mod seccomp;
pub mod seccomp_agent;
pub mod user;

use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::stat::{Mode, umask};
use oci_spec::runtime::{Process, Spec};

/// The umask a process gets when `process.user.umask` is not set (runc's default).
pub const DEFAULT_UMASK: u32 = 0o022;

/// Errors of the process stage; each names the field, syscall or path involved.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A syscall failed.
    #[error("{op} ({what}): {source}")]
    Sys {
        /// Operation.
        op: &'static str,
        /// What it was applied to.
        what: String,
        /// errno.
        source: Errno,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// A spec field is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// Field path ("process.rlimits[RlimitNofile]").
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// libseccomp refused the profile.
    #[error("seccomp {what}: {reason}")]
    Seccomp {
        /// Which rule/step.
        what: String,
        /// libseccomp's message.
        reason: String,
    },
}

/// Process attributes set while still root: oomScoreAdj, rlimits, personality, memory policy,
/// ioPriority,
/// scheduler, AppArmor/SELinux exec labels, and the umask. (execCPUAffinity is left to the
/// caller: its `initial` and `final` sets apply at different points of `exec`, see
/// [`sched::apply_cpu_affinity`].)
pub fn prepare(process: &Process, spec: &Spec) -> Result<(), ProcessError> {
    if let Some(adj) = process.oom_score_adj() {
        oom::apply(adj)?;
    }
    if let Some(r) = process.rlimits() {
        rlimits::apply(r)?;
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        personality::apply_personality(p)?;
    }
    if let Some(mp) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        mempolicy::apply(mp)?;
    }
    if let Some(io) = process.io_priority() {
        personality::apply_ioprio(io)?;
    }
    if let Some(s) = process.scheduler() {
        sched::apply(s)?;
    }
    if let Some(profile) = process.apparmor_profile() {
        lsm::apply_apparmor(profile)?;
    }
    if let Some(label) = process.selinux_label() {
        lsm::apply_selinux(label)?;
    }
    let mask = process.user().umask().unwrap_or(DEFAULT_UMASK);
    if mask > 0o777 {
        return Err(ProcessError::Invalid {
            field: "process.user.umask".into(),
            reason: format!("{mask:#o} is not a permission mask"),
        });
    }
    umask(Mode::from_bits_truncate(mask));
    Ok(())
}

/// setgroups/setgid/setuid and the five capability sets (intersected with the host's
/// bounding set; a missing capability is a warning, never an error).
pub fn set_identity_and_caps(process: &Process) -> Result<(), ProcessError> {
    let plan = capabilities::plan(
        process.capabilities().as_ref(),
        capabilities::host_bounding(),
    );
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    // For uid 0 these are harmless (exec as root gains the bounding set anyway; `runc spec`
    // asks for ambient caps without inheritable ones), so they only matter for other users.
    for a in &plan.adjustments {
        if process.user().uid() == 0 {
            tracing::debug!("{a}");
        } else {
            tracing::warn!("{a}");
        }
    }
    capabilities::apply_bounding(&plan)?;
    let keep = |on: bool| {
        nix::sys::prctl::set_keepcaps(on).map_err(|e| ProcessError::Sys {
            op: "prctl(PR_SET_KEEPCAPS)",
            what: on.to_string(),
            source: e,
        })
    };
    keep(true)?;
    user::switch(process.user())?;
    keep(false)?;
    capabilities::apply_sets(&plan)
}

/// PR_SET_NO_NEW_PRIVS.
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| ProcessError::Sys {
        op: "prctl(PR_SET_NO_NEW_PRIVS)",
        what: "1".into(),
        source: e,
    })
}
