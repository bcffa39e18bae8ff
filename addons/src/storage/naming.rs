//! Names of provisioned volumes: the PV is `pvc-<claim uid>` (as the external-provisioner
//! library names it) and its directory `pvc-<uid>_<namespace>_<name>` (as
//! local-path-provisioner does) right under the storage root. Every component is validated,
//! so a hostile or corrupt object can never make a path that escapes the root.

use std::path::{Path, PathBuf};

/// A name that cannot be used in a volume path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value:?} cannot name a volume: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Checks a Kubernetes object name or UID for use in a path: DNS-subdomain characters only
/// (lower-case alphanumerics, `-`, `.`), 1..=253 bytes, not `.`/`..`, no `_` (the separator).
pub fn check_component(what: &'static str, value: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        what,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("empty"));
    }
    if value.len() > 253 {
        return Err(err("longer than 253 bytes"));
    }
    if value == "." || value == ".." {
        return Err(err("a relative path component"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(err("only a-z, 0-9, '-' and '.' are allowed"));
    }
    Ok(())
}

/// `pvc-<uid>`.
pub fn pv_name(claim_uid: &str) -> Result<String, NameError> {
    check_component("claim UID", claim_uid)?;
    Ok(format!("pvc-{claim_uid}"))
}

/// `pvc-<uid>_<namespace>_<name>`.
pub fn dir_name(pv_name: &str, namespace: &str, claim: &str) -> Result<String, NameError> {
    check_component("PV name", pv_name)?;
    check_component("namespace", namespace)?;
    check_component("claim name", claim)?;
    Ok(format!("{pv_name}_{namespace}_{claim}"))
}

/// `root/<dir_name>`.
pub fn volume_path(
    root: &Path,
    pv_name: &str,
    namespace: &str,
    claim: &str,
) -> Result<PathBuf, NameError> {
    Ok(root.join(dir_name(pv_name, namespace, claim)?))
}

/// Whether `path` (from a PV's hostPath) is a volume directory directly under `root` named
/// for `pv_name` — the only kind of path this provisioner ever deletes.
pub fn is_volume_of(root: &Path, pv_name: &str, path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let mut parts = name.splitn(3, '_');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(pv), Some(ns), Some(claim))
            if pv == pv_name
                && check_component("namespace", ns).is_ok()
                && check_component("claim name", claim).is_ok()
    );
    ok && path.parent() == Some(root) && check_component("PV name", pv_name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_local_path_provisioner() {
        let pv = pv_name("0b5e4a1c-7d2f-4c3e-9a8b-1234567890ab").unwrap();
        assert_eq!(pv, "pvc-0b5e4a1c-7d2f-4c3e-9a8b-1234567890ab");
        assert_eq!(
            volume_path(
                Path::new("/var/local-path-provisioner"),
                &pv,
                "default",
                "data"
            )
            .unwrap(),
            Path::new(
                "/var/local-path-provisioner/pvc-0b5e4a1c-7d2f-4c3e-9a8b-1234567890ab_default_data"
            )
        );
    }

    #[test]
    fn traversal_and_odd_names_are_refused() {
        for (ns, name) in [
            ("..", "x"),
            ("default", ".."),
            ("a/b", "x"),
            ("default", "../../etc"),
            ("default", ""),
            ("Default", "x"),
            ("default", "a_b"),
            ("default", "x\0"),
        ] {
            let e = dir_name("pvc-1", ns, name).unwrap_err();
            assert!(e.to_string().contains("cannot name a volume"), "{e}");
        }
        assert!(pv_name("../x").is_err());
        assert!(dir_name("pvc-1", "default", &"a".repeat(254)).is_err());
    }

    #[test]
    fn only_own_volume_dirs_are_deletable() {
        let root = Path::new("/var/local-path-provisioner");
        assert!(is_volume_of(
            root,
            "pvc-1",
            &root.join("pvc-1_default_data")
        ));
        assert!(!is_volume_of(
            root,
            "pvc-2",
            &root.join("pvc-1_default_data")
        ));
        assert!(!is_volume_of(
            root,
            "pvc-1",
            Path::new("/etc/pvc-1_default_data")
        ));
        assert!(!is_volume_of(
            root,
            "pvc-1",
            &root.join("x/pvc-1_default_data")
        ));
        assert!(!is_volume_of(root, "pvc-1", root));
        assert!(!is_volume_of(root, "pvc-1", &root.join("pvc-1_default")));
        assert!(!is_volume_of(
            root,
            "pvc-1",
            Path::new("/var/local-path-provisioner/../pvc-1_a_b")
        ));
    }
}
