//! Seccomp: the full OCI profile (defaultAction, defaultErrnoRet, architectures, flags,
//! syscalls with names, args and errnoRet) compiled to BPF with libseccomp, and loaded with
//! seccomp(2) directly so every SECCOMP_FILTER_FLAG_* works regardless of the libseccomp
//! version (Debian 12 ships 2.5, which knows no WAIT_KILLABLE_RECV).
//!
//! Unknown syscall names are skipped with a debug log (a profile written for a newer kernel
//! must still run), like runc. [`compile`] is used by `create` to reject a bad profile
//! before anything is forked.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::ProcessError;
use crate::sys::setup;

/// A compiled profile, ready for seccomp(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// BPF program (array of `struct sock_filter`).
    pub bpf: Vec<u8>,
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: libc::c_ulong,
    /// The profile uses SCMP_ACT_NOTIFY: loading returns a listener fd.
    pub notify: bool,
    /// Syscall names the local libseccomp does not know (skipped).
    pub skipped: Vec<String>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ProcessError {
    ProcessError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn scmp(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> ProcessError {
    let what = what.into();
    move |e| ProcessError::Seccomp {
        what,
        reason: e.to_string(),
    }
}

/// Maps an OCI action (+ errnoRet) to libseccomp's.
pub fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<ScmpAction, ProcessError> {
    let errno = || -> Result<i32, ProcessError> {
        let v = errno_ret.unwrap_or(libc::EPERM as u32);
        if v > u32::from(u16::MAX) {
            return Err(invalid(
                field,
                format!("errnoRet {v} does not fit in 16 bits"),
            ));
        }
        Ok(v as i32)
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno()?),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno()? as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

/// Maps an OCI arg condition to libseccomp's (for SCMP_CMP_MASKED_EQ, `value` is the mask
/// and `valueTwo` the value compared against, as in runc/libseccomp-golang).
pub fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare, ProcessError> {
    if arg.index() > 5 {
        return Err(invalid(
            field,
            format!("argument index {} is above 5", arg.index()),
        ));
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

fn arch_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// SECCOMP_FILTER_FLAG_* bits of the profile.
pub fn flag_bits(flags: &[LinuxSeccompFilterFlag]) -> libc::c_ulong {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        }
    })
}

/// Builds the libseccomp filter for a profile.
pub fn build(
    profile: &LinuxSeccomp,
) -> Result<(ScmpFilterContext, Vec<String>, bool), ProcessError> {
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut notify = default == ScmpAction::Notify;
    if notify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(scmp("create filter"))?;
    for (i, arch) in profile.architectures().iter().flatten().enumerate() {
        let name = arch_name(arch);
        let a = ScmpArch::from_str(&name).map_err(|_| {
            invalid(
                format!("linux.seccomp.architectures[{i}]"),
                format!("unknown architecture {name:?}"),
            )
        })?;
        ctx.add_arch(a)
            .map_err(scmp(format!("add architecture {name}")))?;
    }
    let mut skipped = Vec::new();
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &field)?;
        if act == default {
            tracing::debug!(rule = i, "seccomp rule has the default action; skipped");
            continue;
        }
        notify |= act == ScmpAction::Notify;
        let args = rule.args().clone().unwrap_or_default();
        let conds = args
            .iter()
            .enumerate()
            .map(|(j, a)| condition(a, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        // libseccomp cannot AND two conditions on the same argument: like runc, such rules
        // become one rule per condition.
        let mut seen = [false; 6];
        let repeated = args
            .iter()
            .any(|a| std::mem::replace(&mut seen[a.index().min(5)], true));
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "unknown syscall in seccomp profile; skipped");
                skipped.push(name.clone());
                continue;
            };
            let what = format!("{field} {name}");
            if conds.is_empty() {
                ctx.add_rule(act, sc).map_err(scmp(what))?;
            } else if repeated {
                for c in &conds {
                    ctx.add_rule_conditional(act, sc, &[*c])
                        .map_err(scmp(what.clone()))?;
                }
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
                    .map_err(scmp(what))?;
            }
        }
    }
    Ok((ctx, skipped, notify))
}

/// Compiles a profile to BPF (validating it completely).
pub fn compile(profile: &LinuxSeccomp) -> Result<Compiled, ProcessError> {
    let (ctx, skipped, notify) = build(profile)?;
    let fd = setup::memfd(c"kina-seccomp").map_err(|e| ProcessError::Sys {
        op: "memfd_create",
        what: "seccomp bpf".into(),
        source: e,
    })?;
    ctx.export_bpf(&fd).map_err(scmp("export bpf"))?;
    let mut file = std::fs::File::from(fd);
    let mut bpf = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(|e| ProcessError::Io {
            op: "read",
            path: "seccomp bpf memfd".into(),
            source: e,
        })?;
    let mut flags = flag_bits(profile.flags().as_deref().unwrap_or_default());
    if notify {
        flags |= setup::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    } else if flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        tracing::debug!(
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY rules; dropped"
        );
        flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    Ok(Compiled {
        bpf,
        flags,
        notify,
        skipped,
    })
}

/// Compiles and installs the profile for the calling thread (and its future children).
/// Profiles with SCMP_ACT_NOTIFY must use [`load_with_listener`], since the listener fd has
/// to reach the seccomp agent at `listenerPath` through the runtime.
pub fn load(profile: &LinuxSeccomp) -> Result<(), ProcessError> {
    let c = compile(profile)?;
    if c.notify {
        return Err(invalid(
            "linux.seccomp",
            "SCMP_ACT_NOTIFY rules need a seccomp agent: the runtime must pass the listener fd to listenerPath (use seccomp::load_with_listener)",
        ));
    }
    install(&c).map(drop)
}

/// Like [`load`], returning the notification fd when the profile uses SCMP_ACT_NOTIFY.
pub fn load_with_listener(profile: &LinuxSeccomp) -> Result<Option<OwnedFd>, ProcessError> {
    let c = compile(profile)?;
    if c.notify && profile.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    install(&c)
}

/// Installs a compiled filter.
pub fn install(c: &Compiled) -> Result<Option<OwnedFd>, ProcessError> {
    setup::seccomp_set_filter(c.flags, &c.bpf).map_err(|e| ProcessError::Sys {
        op: "seccomp(SECCOMP_SET_MODE_FILTER)",
        what: format!("flags {:#x}", c.flags),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compiles_full_profile() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls":[
              {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
              {"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
              {"names":["getpid"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_GT"},{"index":0,"value":9,"op":"SCMP_CMP_LT"}]},
              {"names":["no_such_syscall_xyz"],"action":"SCMP_ACT_KILL"},
              {"names":["getuid"],"action":"SCMP_ACT_ALLOW"}
            ]}"#,
        );
        let c = compile(&p).unwrap();
        assert!(!c.bpf.is_empty() && c.bpf.len().is_multiple_of(8));
        assert_eq!(
            c.flags,
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        assert_eq!(c.skipped, vec!["no_such_syscall_xyz".to_string()]);
        assert!(!c.notify);
    }

    #[test]
    fn errno_and_ops_map() {
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, None, "x").unwrap(),
            ScmpAction::Errno(libc::EPERM)
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, Some(38), "x").unwrap(),
            ScmpAction::Errno(38)
        );
        assert!(action(LinuxSeccompAction::ScmpActErrno, Some(70000), "x").is_err());
        let masked: LinuxSeccompArg = serde_json::from_str(
            r#"{"index":1,"value":255,"valueTwo":3,"op":"SCMP_CMP_MASKED_EQ"}"#,
        )
        .unwrap();
        assert_eq!(
            condition(&masked, "a").unwrap(),
            ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(255), 3)
        );
        let bad: LinuxSeccompArg =
            serde_json::from_str(r#"{"index":6,"value":1,"op":"SCMP_CMP_EQ"}"#).unwrap();
        assert!(
            condition(&bad, "syscalls[0].args[0]")
                .unwrap_err()
                .to_string()
                .contains("syscalls[0].args[0]")
        );
    }

    #[test]
    fn notify_profile_sets_listener_flag() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let c = compile(&p).unwrap();
        assert!(c.notify);
        assert_eq!(
            c.flags,
            setup::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        assert!(
            load(&p)
                .unwrap_err()
                .to_string()
                .contains("SCMP_ACT_NOTIFY")
        );
    }

    #[test]
    fn bad_profiles_are_rejected() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_NATIVE"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":100000}]}"#,
        );
        let e = compile(&p).unwrap_err().to_string();
        assert!(e.contains("syscalls[0]"), "{e}");
    }
}
