//! Device access rules: the OCI `linux.resources.devices` list validated into [`DeviceRule`]s,
//! reduced (like the kernel's v1 devices controller would) to a default action plus exceptions,
//! rendered as v1 `devices.allow`/`devices.deny` strings or as a v2 eBPF program ([`ebpf`]).

pub mod ebpf;

use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::CgroupError;

/// Device type of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// Every device (`a`).
    All,
    /// Character devices (`c`, also OCI's `u`).
    Char,
    /// Block devices (`b`).
    Block,
}

/// Access bits: read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    /// Read.
    pub const READ: u8 = 1;
    /// Write.
    pub const WRITE: u8 = 2;
    /// Create the device node.
    pub const MKNOD: u8 = 4;
    /// Everything.
    pub const ALL: Access = Access(7);

    /// Parses "rwm" subsets; empty means all (as runc treats a missing access).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(Self::ALL);
        }
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'r' => Self::READ,
                'w' => Self::WRITE,
                'm' => Self::MKNOD,
                other => return Err(format!("unknown device access {other:?} in {s:?}")),
            };
        }
        Ok(Self(bits))
    }

    /// The raw bits (READ | WRITE | MKNOD).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether no access remains.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One validated device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// Device type.
    pub typ: DeviceType,
    /// Major number; `None` = any.
    pub major: Option<u32>,
    /// Minor number; `None` = any.
    pub minor: Option<u32>,
    /// Access bits.
    pub access: Access,
}

fn dev_num(v: Option<i64>, what: &str, idx: usize) -> Result<Option<u32>, CgroupError> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None), // -1 is OCI's historical wildcard
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            CgroupError::invalid(
                format!("devices[{idx}].{what}"),
                format!("{n} is out of range"),
            )
        }),
    }
}

impl DeviceRule {
    /// Validates the OCI rule at position `idx`.
    pub fn from_oci(r: &LinuxDeviceCgroup, idx: usize) -> Result<Self, CgroupError> {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceType::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
            LinuxDeviceType::B => DeviceType::Block,
            LinuxDeviceType::P => {
                return Err(CgroupError::invalid(
                    format!("devices[{idx}].type"),
                    "fifo (p) is not a device cgroup type",
                ));
            }
        };
        let access = Access::parse(r.access().as_deref().unwrap_or(""))
            .map_err(|e| CgroupError::invalid(format!("devices[{idx}].access"), e))?;
        Ok(Self {
            allow: r.allow(),
            typ,
            major: dev_num(r.major(), "major", idx)?,
            minor: dev_num(r.minor(), "minor", idx)?,
            access,
        })
    }

    /// The v1 `devices.allow`/`devices.deny` string, e.g. `c 1:3 rwm` or `a *:* rwm`.
    pub fn v1_string(&self) -> String {
        let t = match self.typ {
            DeviceType::All => 'a',
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    fn same_device(&self, other: &DeviceRule) -> bool {
        self.typ == other.typ && self.major == other.major && self.minor == other.minor
    }
}

/// Parses one `type major:minor access` line of a v1 devices file.
fn parse_v1_rule(line: &str, allow: bool) -> Result<DeviceRule, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [t, nums, acc] = f.as_slice() else {
        return Err(format!("malformed device rule {line:?}"));
    };
    let typ = match *t {
        "a" => DeviceType::All,
        "c" => DeviceType::Char,
        "b" => DeviceType::Block,
        _ => return Err(format!("unknown device type in {line:?}")),
    };
    let (maj, min) = nums
        .split_once(':')
        .ok_or_else(|| format!("malformed device numbers in {line:?}"))?;
    let num = |s: &str| -> Result<Option<u32>, String> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse()
                .map(Some)
                .map_err(|_| format!("bad device number in {line:?}"))
        }
    };
    Ok(DeviceRule {
        allow,
        typ,
        major: num(maj)?,
        minor: num(min)?,
        access: Access::parse(acc)?,
    })
}

/// Validates a whole OCI rule list.
pub fn rules_from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| DeviceRule::from_oci(r, i))
        .collect()
}

/// The effective device policy: a default action and exceptions to it, as the kernel's v1
/// devices controller keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    /// Whether devices not matched by an exception are allowed.
    pub default_allow: bool,
    /// Rules whose action is the opposite of the default, in order of first appearance.
    pub exceptions: Vec<DeviceRule>,
}

impl DevicePolicy {
    /// Applies `rules` in order on top of deny-all, with the kernel's v1 semantics: an `a` rule
    /// resets the default and drops all exceptions; a rule with the default's action removes
    /// its access bits from a matching exception; the opposite action adds (or widens) one.
    pub fn from_rules(rules: &[DeviceRule]) -> Self {
        let mut p = DevicePolicy {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for rule in rules {
            if rule.typ == DeviceType::All {
                p.default_allow = rule.allow;
                p.exceptions.clear();
                continue;
            }
            if rule.allow == p.default_allow {
                for ex in p.exceptions.iter_mut().filter(|e| e.same_device(rule)) {
                    ex.access = Access(ex.access.0 & !rule.access.0);
                }
                p.exceptions.retain(|e| !e.access.is_empty());
            } else if let Some(ex) = p.exceptions.iter_mut().find(|e| e.same_device(rule)) {
                ex.access = Access(ex.access.0 | rule.access.0);
            } else {
                p.exceptions.push(*rule);
            }
        }
        p
    }

    /// The policy a v1 `devices.list` shows, if it is exact: in allow-all mode the kernel lists
    /// only `a *:* rwm` and hides the deny exceptions, so that gives `None`.
    pub fn from_v1_list(text: &str) -> Result<Option<Self>, String> {
        let mut exceptions = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let rule = parse_v1_rule(line, true)?;
            if rule.typ == DeviceType::All {
                return Ok(None);
            }
            exceptions.push(rule);
        }
        Ok(Some(Self {
            default_allow: false,
            exceptions,
        }))
    }

    /// The v1 writes that turn `current` (from [`DevicePolicy::from_v1_list`]) into this policy.
    /// Between two deny-by-default policies only the differences are written, so a running
    /// container never loses access to a device it keeps (no deny-all window, as in runc);
    /// otherwise the policy is re-established from scratch.
    pub fn v1_transition(&self, current: Option<&DevicePolicy>) -> Vec<(&'static str, String)> {
        let Some(cur) = current.filter(|c| !c.default_allow && !self.default_allow) else {
            return self.v1_writes();
        };
        let access_in = |list: &[DeviceRule], r: &DeviceRule| {
            list.iter()
                .filter(|e| e.same_device(r))
                .fold(0, |acc, e| acc | e.access.0)
        };
        let mut out = Vec::new();
        for t in &self.exceptions {
            let add = t.access.0 & !access_in(&cur.exceptions, t);
            if add != 0 {
                let r = DeviceRule {
                    access: Access(add),
                    ..*t
                };
                out.push(("devices.allow", r.v1_string()));
            }
        }
        for c in &cur.exceptions {
            let remove = c.access.0 & !access_in(&self.exceptions, c);
            if remove != 0 {
                let r = DeviceRule {
                    allow: false,
                    access: Access(remove),
                    ..*c
                };
                out.push(("devices.deny", r.v1_string()));
            }
        }
        out
    }

    /// The writes that establish this policy on v1: (file, value) pairs in order.
    pub fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (default_file, ex_file) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        let mut out = vec![(default_file, "a".to_string())];
        out.extend(self.exceptions.iter().map(|e| (ex_file, e.v1_string())));
        out
    }
}

/// The devices every container may use unless its spec says otherwise (runc's default list):
/// mknod of any device, /dev/null, zero, full, random, urandom, tty, ptmx and /dev/pts/*.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"), // /dev/null
        rule(C, Some(1), Some(8), "rwm"), // /dev/random
        rule(C, Some(1), Some(7), "rwm"), // /dev/full
        rule(C, Some(5), Some(0), "rwm"), // /dev/tty
        rule(C, Some(1), Some(5), "rwm"), // /dev/zero
        rule(C, Some(1), Some(9), "rwm"), // /dev/urandom
        rule(C, Some(136), None, "rwm"),  // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"), // /dev/ptmx
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn r(
        allow: bool,
        typ: DeviceType,
        maj: Option<u32>,
        min: Option<u32>,
        acc: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major: maj,
            minor: min,
            access: Access::parse(acc).unwrap(),
        }
    }

    #[test]
    fn v1_strings() {
        assert_eq!(
            r(true, DeviceType::Char, Some(1), Some(3), "rwm").v1_string(),
            "c 1:3 rwm"
        );
        assert_eq!(
            r(false, DeviceType::All, None, None, "rwm").v1_string(),
            "a *:* rwm"
        );
        assert_eq!(
            r(true, DeviceType::Block, Some(8), None, "r").v1_string(),
            "b 8:* r"
        );
        assert_eq!(
            r(true, DeviceType::Char, None, None, "mw").v1_string(),
            "c *:* wm"
        );
    }

    #[test]
    fn from_oci_validates() {
        let mut oci = LinuxDeviceCgroup::default();
        oci.set_allow(true);
        oci.set_typ(Some(LinuxDeviceType::C));
        oci.set_major(Some(1));
        oci.set_minor(Some(-1));
        oci.set_access(Some("rw".into()));
        let rule = DeviceRule::from_oci(&oci, 0).unwrap();
        assert_eq!(rule.v1_string(), "c 1:* rw");
        oci.set_access(Some("rwx".into()));
        let e = DeviceRule::from_oci(&oci, 3).unwrap_err().to_string();
        assert!(e.contains("devices[3].access"), "{e}");
        oci.set_access(None);
        oci.set_major(Some(1 << 40));
        assert!(DeviceRule::from_oci(&oci, 0).is_err());
        // no type, no access: a *:* rwm
        let all = DeviceRule::from_oci(&LinuxDeviceCgroup::default(), 0).unwrap();
        assert_eq!(all.v1_string(), "a *:* rwm");
        assert!(!all.allow);
    }

    #[test]
    fn policy_follows_kernel_semantics() {
        use DeviceType::*;
        let rules = [
            r(false, All, None, None, "rwm"),
            r(true, Char, Some(1), Some(3), "rw"),
            r(true, Char, Some(1), Some(3), "m"),
            r(true, Char, Some(1), Some(5), "rwm"),
            r(false, Char, Some(1), Some(5), "w"),
            r(false, Char, Some(1), Some(9), "rwm"),
        ];
        let p = DevicePolicy::from_rules(&rules);
        assert!(!p.default_allow);
        assert_eq!(
            p.exceptions,
            vec![
                r(true, Char, Some(1), Some(3), "rwm"),
                r(true, Char, Some(1), Some(5), "rm"),
            ]
        );
        assert_eq!(
            p.v1_writes(),
            vec![
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c 1:3 rwm".to_string()),
                ("devices.allow", "c 1:5 rm".to_string()),
            ]
        );
        // An allow-all later in the list wipes earlier exceptions.
        let p = DevicePolicy::from_rules(&[rules[1], r(true, All, None, None, "rwm"), rules[5]]);
        assert!(p.default_allow);
        assert_eq!(p.exceptions, vec![rules[5]]);
        assert_eq!(p.v1_writes()[0], ("devices.allow", "a".to_string()));
        assert_eq!(p.v1_writes()[1], ("devices.deny", "c 1:9 rwm".to_string()));
        // No rules at all: deny everything.
        assert_eq!(
            DevicePolicy::from_rules(&[]).v1_writes(),
            vec![("devices.deny", "a".to_string())]
        );
    }

    #[test]
    fn transition_between_allow_lists_writes_only_differences() {
        use DeviceType::*;
        let cur = DevicePolicy::from_v1_list("c 1:3 rwm\nc 1:5 rwm\nc 136:* rw\n")
            .unwrap()
            .unwrap();
        assert_eq!(cur.exceptions[2], r(true, Char, Some(136), None, "rw"));
        let target = DevicePolicy::from_rules(&[
            r(true, Char, Some(1), Some(3), "rwm"),
            r(true, Char, Some(136), None, "rwm"),
            r(true, Block, Some(8), Some(0), "r"),
        ]);
        assert_eq!(
            target.v1_transition(Some(&cur)),
            vec![
                ("devices.allow", "c 136:* m".to_string()),
                ("devices.allow", "b 8:0 r".to_string()),
                ("devices.deny", "c 1:5 rwm".to_string()),
            ]
        );
        // Nothing to do when equal.
        assert!(cur.v1_transition(Some(&cur)).is_empty());
        // Allow-all hides its exceptions: start over.
        assert_eq!(DevicePolicy::from_v1_list("a *:* rwm\n").unwrap(), None);
        assert_eq!(target.v1_transition(None), target.v1_writes());
        assert!(DevicePolicy::from_v1_list("x 1:2 rwm").is_err());
        assert!(DevicePolicy::from_v1_list("c 1 rwm").is_err());
    }

    #[test]
    fn default_list_is_valid() {
        let rules = rules_from_oci(&default_allowed_devices()).unwrap();
        assert!(rules.iter().all(|r| r.allow));
        assert!(rules.iter().any(|r| r.v1_string() == "c 136:* rwm"));
    }
}
