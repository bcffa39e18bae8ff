//! `linux.memoryPolicy`: the NUMA memory policy of the container process (set_mempolicy(2):
//! mode, node list such as "0-1,3", and the MPOL_F_* mode flags).

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use super::ProcessError;
use crate::sys::setup;

fn invalid(field: &str, reason: String) -> ProcessError {
    ProcessError::Invalid {
        field: format!("linux.memoryPolicy.{field}"),
        reason,
    }
}

/// Highest node number accepted (MAX_NUMNODES on the largest configurations).
const MAX_NODE: usize = 1023;

/// Parses a node list ("0-1,3") into a bitmask of 64-bit words.
pub fn node_mask(list: &str) -> Result<Vec<u64>, ProcessError> {
    let mut words = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| invalid("nodes", format!("{list:?}: bad node {v:?}")))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b || b > MAX_NODE {
            return Err(invalid("nodes", format!("{list:?}: bad range {part:?}")));
        }
        for n in a..=b {
            if words.len() <= n / 64 {
                words.resize(n / 64 + 1, 0);
            }
            words[n / 64] |= 1 << (n % 64);
        }
    }
    Ok(words)
}

/// (mode | flags, node mask) for set_mempolicy.
pub fn policy(p: &LinuxMemoryPolicy) -> Result<(i32, Vec<u64>), ProcessError> {
    use MemoryPolicyModeType::*;
    let mode = match p.mode() {
        MpolDefault => 0,
        MpolPreferred => 1,
        MpolBind => 2,
        MpolInterleave => 3,
        MpolLocal => 4,
        MpolPreferredMany => 5,
        MpolWeightedInterleave => 6,
    };
    let nodes = node_mask(p.nodes().as_deref().unwrap_or(""))?;
    let needs_nodes = matches!(
        p.mode(),
        MpolBind | MpolInterleave | MpolPreferredMany | MpolWeightedInterleave
    );
    if needs_nodes && nodes.iter().all(|w| *w == 0) {
        return Err(invalid(
            "nodes",
            format!("{:?} needs at least one node", p.mode()),
        ));
    }
    if matches!(p.mode(), MpolDefault | MpolLocal) && nodes.iter().any(|w| *w != 0) {
        return Err(invalid(
            "nodes",
            format!("must be empty for {:?}", p.mode()),
        ));
    }
    let flags = p.flags().iter().flatten().fold(0i32, |acc, f| {
        acc | match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        }
    });
    Ok((mode | flags, nodes))
}

/// Applies the policy to the calling process (inherited by the container's program).
pub fn apply(p: &LinuxMemoryPolicy) -> Result<(), ProcessError> {
    let (mode, nodes) = policy(p)?;
    setup::set_mempolicy(mode, &nodes).map_err(|e| ProcessError::Sys {
        op: "set_mempolicy",
        what: format!("{:?} nodes {:?}", p.mode(), p.nodes()),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol(json: &str) -> LinuxMemoryPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn node_lists() {
        assert_eq!(node_mask("0-1,3").unwrap(), [0b1011]);
        assert_eq!(node_mask("64").unwrap(), [0, 1]);
        assert_eq!(node_mask("").unwrap(), Vec::<u64>::new());
        assert!(node_mask("2-1").is_err());
        assert!(node_mask("x").is_err());
        assert!(node_mask("5000").is_err());
    }

    #[test]
    fn modes_and_flags() {
        let (m, n) = policy(&pol(
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#,
        ))
        .unwrap();
        assert_eq!((m, n), (2 | 1 << 15, vec![1]));
        assert!(policy(&pol(r#"{"mode":"MPOL_INTERLEAVE"}"#)).is_err());
        assert!(policy(&pol(r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#)).is_err());
        assert_eq!(policy(&pol(r#"{"mode":"MPOL_DEFAULT"}"#)).unwrap().0, 0);
    }
}
