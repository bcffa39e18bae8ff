//! `process.scheduler` (sched_setattr: policy, nice, priority, flags, deadline parameters) and
//! `process.execCPUAffinity` (CPU lists like "0-3,7" → sched_setaffinity).

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler};

use super::ProcessError;
use crate::sys::setup::{self, SchedAttr};

fn invalid(field: &str, reason: String) -> ProcessError {
    ProcessError::Invalid {
        field: format!("process.scheduler.{field}"),
        reason,
    }
}

/// Validates the scheduler section and converts it to a `struct sched_attr`.
pub fn attr(s: &Scheduler) -> Result<SchedAttr, ProcessError> {
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => {
            return Err(invalid(
                "policy",
                "SCHED_ISO is not implemented by Linux".into(),
            ));
        }
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid("nice", format!("{nice} is outside -20..=19")));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(s.policy(), SchedFifo | SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        return Err(invalid(
            "priority",
            format!("{priority} is outside 1..=99 for {:?}", s.policy()),
        ));
    }
    if !realtime && priority != 0 {
        return Err(invalid(
            "priority",
            format!("must be 0 for {:?}", s.policy()),
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if *s.policy() == SchedDeadline {
        if runtime == 0 {
            return Err(invalid("runtime", "SCHED_DEADLINE needs a runtime".into()));
        }
        let d = if deadline == 0 { period } else { deadline };
        if d != 0 && d < runtime || period != 0 && period < d {
            return Err(invalid(
                "deadline",
                format!("need runtime ({runtime}) <= deadline ({deadline}) <= period ({period})"),
            ));
        }
    }
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    Ok(SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
    })
}

/// Applies the scheduler section to the calling process.
pub fn apply(s: &Scheduler) -> Result<(), ProcessError> {
    let a = attr(s)?;
    setup::sched_setattr_self(&a).map_err(|e| ProcessError::Sys {
        op: "sched_setattr",
        what: format!("{:?}", s.policy()),
        source: e,
    })
}

/// Parses a Linux CPU list ("0-3,7", "1") into CPU numbers.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, ProcessError> {
    let bad = |why: String| ProcessError::Invalid {
        field: "process.execCPUAffinity".into(),
        reason: format!("{list:?}: {why}"),
    };
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad CPU {a:?}")))?;
        let b: usize = b
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad CPU {b:?}")))?;
        if a > b {
            return Err(bad(format!("range {a}-{b} is reversed")));
        }
        if b >= CpuSet::count() {
            return Err(bad(format!(
                "CPU {b} is beyond the supported {}",
                CpuSet::count()
            )));
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err(bad("empty CPU list".into()));
    }
    Ok(out)
}

/// Pins the calling process to the CPUs of `list`.
pub fn apply_cpu_affinity(list: &str) -> Result<(), ProcessError> {
    let mut set = CpuSet::new();
    for cpu in parse_cpu_list(list)? {
        set.set(cpu).map_err(|e| ProcessError::Sys {
            op: "CPU_SET",
            what: cpu.to_string(),
            source: e,
        })?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| ProcessError::Sys {
        op: "sched_setaffinity",
        what: list.to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: &str) -> Scheduler {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,7").unwrap(), [0, 1, 2, 3, 7]);
        assert_eq!(parse_cpu_list(" 1 ").unwrap(), [1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn scheduler_validation() {
        let a = attr(&sched(
            r#"{"policy":"SCHED_BATCH","nice":5,"flags":["SCHED_RESET_ON_FORK"]}"#,
        ))
        .unwrap();
        assert_eq!((a.policy, a.nice, a.flags), (3, 5, 1));
        let a = attr(&sched(r#"{"policy":"SCHED_FIFO","priority":10}"#)).unwrap();
        assert_eq!((a.policy, a.priority), (1, 10));
        assert!(attr(&sched(r#"{"policy":"SCHED_FIFO"}"#)).is_err());
        assert!(attr(&sched(r#"{"policy":"SCHED_OTHER","priority":3}"#)).is_err());
        assert!(
            attr(&sched(r#"{"policy":"SCHED_OTHER","nice":40}"#))
                .unwrap_err()
                .to_string()
                .contains("nice")
        );
        assert!(attr(&sched(r#"{"policy":"SCHED_ISO"}"#)).is_err());
        assert!(
            attr(&sched(
                r#"{"policy":"SCHED_DEADLINE","runtime":10,"deadline":5}"#
            ))
            .is_err()
        );
        assert!(
            attr(&sched(
                r#"{"policy":"SCHED_DEADLINE","runtime":10,"deadline":20,"period":30}"#
            ))
            .is_ok()
        );
    }
}
