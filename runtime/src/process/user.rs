//! Switching identity: supplementary groups (skipped when a user namespace denies
//! setgroups), gid, then uid — keeping capabilities across the uid change (PR_SET_KEEPCAPS)
//! so the capability sets can be applied afterwards.

use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
use oci_spec::runtime::User;

use super::ProcessError;

/// True when /proc/self/setgroups says "deny" (a user namespace mapped without setgroups).
pub fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// The supplementary groups to set: additionalGids, deduplicated, in order.
pub fn groups(user: &User) -> Vec<Gid> {
    let mut out: Vec<Gid> = Vec::new();
    for g in user.additional_gids().iter().flatten() {
        let g = Gid::from_raw(*g);
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// setgroups + setgid + setuid.
pub fn switch(user: &User) -> Result<(), ProcessError> {
    let gids = groups(user);
    if setgroups_denied() {
        if !gids.is_empty() {
            tracing::warn!(
                ?gids,
                "additionalGids ignored: setgroups is denied in this user namespace"
            );
        }
    } else {
        setgroups(&gids).map_err(|e| ProcessError::Sys {
            op: "setgroups",
            what: format!("{gids:?}"),
            source: e,
        })?;
    }
    setgid(Gid::from_raw(user.gid())).map_err(|e| ProcessError::Sys {
        op: "setgid",
        what: user.gid().to_string(),
        source: e,
    })?;
    setuid(Uid::from_raw(user.uid())).map_err(|e| ProcessError::Sys {
        op: "setuid",
        what: user.uid().to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::UserBuilder;

    #[test]
    fn groups_are_deduplicated() {
        let u = UserBuilder::default()
            .additional_gids(vec![10u32, 20, 10])
            .build()
            .unwrap();
        assert_eq!(groups(&u), vec![Gid::from_raw(10), Gid::from_raw(20)]);
    }
}
