//! `linux.personality` (execution domain LINUX / LINUX32) and `process.ioPriority`
//! (ioprio_set class + level).

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain,
};

use super::ProcessError;
use crate::sys::setup;

/// PER_LINUX32 from <linux/personality.h>.
pub const PER_LINUX32: libc::c_ulong = 0x0008;

/// The persona value for a spec personality.
pub fn persona(p: &LinuxPersonality) -> libc::c_ulong {
    match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    }
}

/// Sets the execution domain.
pub fn apply_personality(p: &LinuxPersonality) -> Result<(), ProcessError> {
    for f in p.flags().iter().flatten() {
        tracing::warn!(flag = %f, "linux.personality flags are not supported; ignoring");
    }
    setup::set_personality(persona(p))
        .map(drop)
        .map_err(|e| ProcessError::Sys {
            op: "personality",
            what: format!("{:?}", p.domain()),
            source: e,
        })
}

/// ioprio value: class << 13 | level (IOPRIO_PRIO_VALUE).
pub fn ioprio_value(p: &LinuxIOPriority) -> Result<libc::c_int, ProcessError> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(ProcessError::Invalid {
            field: "process.ioPriority.priority".into(),
            reason: format!("{} is outside 0..=7", p.priority()),
        });
    }
    Ok((class << 13) | p.priority() as libc::c_int)
}

/// Sets the I/O priority of the process.
pub fn apply_ioprio(p: &LinuxIOPriority) -> Result<(), ProcessError> {
    let v = ioprio_value(p)?;
    setup::ioprio_set_self(v).map_err(|e| ProcessError::Sys {
        op: "ioprio_set",
        what: format!("{:?} level {}", p.class(), p.priority()),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIOPriorityBuilder, LinuxPersonalityBuilder};

    #[test]
    fn values() {
        let p = LinuxIOPriorityBuilder::default()
            .class(IOPriorityClass::IoprioClassIdle)
            .priority(7)
            .build()
            .unwrap();
        assert_eq!(ioprio_value(&p).unwrap(), (3 << 13) | 7);
        let bad = LinuxIOPriorityBuilder::default()
            .priority(9)
            .build()
            .unwrap();
        assert!(
            ioprio_value(&bad)
                .unwrap_err()
                .to_string()
                .contains("ioPriority")
        );
        let l32 = LinuxPersonalityBuilder::default()
            .domain(LinuxPersonalityDomain::PerLinux32)
            .build()
            .unwrap();
        assert_eq!(persona(&l32), PER_LINUX32);
    }
}
