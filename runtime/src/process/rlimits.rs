//! `process.rlimits`: setrlimit for each entry. A hard limit above what the process may set
//! (no CAP_SYS_RESOURCE in the host's bounding set, or above fs.nr_open for RLIMIT_NOFILE)
//! is clamped with a warning instead of failing the container.

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::ProcessError;

/// CAP_SYS_RESOURCE: lets a process raise hard limits.
const CAP_SYS_RESOURCE: u32 = 24;

/// The nix resource for an OCI rlimit type.
pub fn resource(t: PosixRlimitType) -> Resource {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => Resource::RLIMIT_CPU,
        RlimitFsize => Resource::RLIMIT_FSIZE,
        RlimitData => Resource::RLIMIT_DATA,
        RlimitStack => Resource::RLIMIT_STACK,
        RlimitCore => Resource::RLIMIT_CORE,
        RlimitRss => Resource::RLIMIT_RSS,
        RlimitNproc => Resource::RLIMIT_NPROC,
        RlimitNofile => Resource::RLIMIT_NOFILE,
        RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        RlimitAs => Resource::RLIMIT_AS,
        RlimitLocks => Resource::RLIMIT_LOCKS,
        RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitNice => Resource::RLIMIT_NICE,
        RlimitRtprio => Resource::RLIMIT_RTPRIO,
        RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// The result of [`clamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    /// Soft limit to set.
    pub soft: u64,
    /// Hard limit to set.
    pub hard: u64,
    /// Whether anything was lowered.
    pub clamped: bool,
}

/// Clamps a requested (soft, hard) pair to `ceiling` (the highest hard limit the process can
/// set), keeping soft ≤ hard.
pub fn clamp(soft: u64, hard: u64, ceiling: u64) -> Clamped {
    let h = hard.min(ceiling);
    let s = soft.min(h);
    Clamped {
        soft: s,
        hard: h,
        clamped: h != hard || s != soft,
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Applies one rlimit, clamping when the kernel refuses to raise the hard limit.
pub fn apply_one(r: &PosixRlimit) -> Result<(), ProcessError> {
    let what = format!("{:?}", r.typ());
    if r.soft() > r.hard() {
        return Err(ProcessError::Invalid {
            field: format!("process.rlimits[{what}]"),
            reason: format!("soft limit {} exceeds hard limit {}", r.soft(), r.hard()),
        });
    }
    let res = resource(r.typ());
    match setrlimit(res, r.soft(), r.hard()) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let (_, cur_hard) = getrlimit(res).map_err(|e| ProcessError::Sys {
                op: "getrlimit",
                what: what.clone(),
                source: e,
            })?;
            // With CAP_SYS_RESOURCE the only ceiling is fs.nr_open (RLIMIT_NOFILE);
            // without it, the current hard limit.
            let privileged = crate::sys::setup::capget()
                .is_ok_and(|c| c.effective & (1 << CAP_SYS_RESOURCE) != 0);
            let mut ceiling = if privileged { u64::MAX } else { cur_hard };
            if res == Resource::RLIMIT_NOFILE
                && let Some(n) = nr_open()
            {
                ceiling = ceiling.min(n);
            }
            let c = clamp(r.soft(), r.hard(), ceiling);
            tracing::warn!(
                rlimit = %what, requested_soft = r.soft(), requested_hard = r.hard(),
                soft = c.soft, hard = c.hard,
                "cannot raise the hard limit this far (no CAP_SYS_RESOURCE, or above fs.nr_open); clamped"
            );
            setrlimit(res, c.soft, c.hard).map_err(|e| ProcessError::Sys {
                op: "setrlimit",
                what,
                source: e,
            })
        }
        Err(e) => Err(ProcessError::Sys {
            op: "setrlimit",
            what,
            source: e,
        }),
    }
}

/// Refuses a type given twice (the runtime spec requires unique types).
pub fn validate(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for (i, r) in rlimits.iter().enumerate() {
        if rlimits[..i].iter().any(|o| o.typ() == r.typ()) {
            return Err(ProcessError::Invalid {
                field: format!("process.rlimits[{i}]"),
                reason: format!("{:?} is given more than once", r.typ()),
            });
        }
    }
    Ok(())
}

/// Applies every rlimit of the process.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    validate(rlimits)?;
    rlimits.iter().try_for_each(apply_one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_decisions() {
        let inf = u64::MAX;
        assert_eq!(
            clamp(10, 20, 100),
            Clamped {
                soft: 10,
                hard: 20,
                clamped: false
            }
        );
        assert_eq!(
            clamp(10, 200, 100),
            Clamped {
                soft: 10,
                hard: 100,
                clamped: true
            }
        );
        assert_eq!(
            clamp(150, 200, 100),
            Clamped {
                soft: 100,
                hard: 100,
                clamped: true
            }
        );
        assert_eq!(
            clamp(inf, inf, 8 << 20),
            Clamped {
                soft: 8 << 20,
                hard: 8 << 20,
                clamped: true
            }
        );
        assert!(!clamp(inf, inf, inf).clamped);
    }

    #[test]
    fn duplicates_are_refused() {
        let r: Vec<PosixRlimit> = serde_json::from_str(
            r#"[{"type":"RLIMIT_NOFILE","soft":1,"hard":2},{"type":"RLIMIT_CORE","soft":0,"hard":0},
                {"type":"RLIMIT_NOFILE","soft":3,"hard":4}]"#,
        )
        .unwrap();
        let e = validate(&r).unwrap_err().to_string();
        assert!(
            e.contains("rlimits[2]") && e.contains("RlimitNofile"),
            "{e}"
        );
        assert!(validate(&r[..2]).is_ok());
    }

    #[test]
    fn every_type_maps() {
        assert_eq!(
            resource(PosixRlimitType::RlimitNofile),
            Resource::RLIMIT_NOFILE
        );
        assert_eq!(
            resource(PosixRlimitType::RlimitMemlock),
            Resource::RLIMIT_MEMLOCK
        );
    }
}
