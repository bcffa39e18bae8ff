//! Running etcd 3.5 under kubeadm 1.36.
//!
//! kubeadm 1.36 writes the etcd static pod for etcd 3.6: its command carries
//! `--feature-gates=InitialCorruptCheck=true` and `--watch-progress-notify-interval=5s`, flags
//! etcd 3.5 does not know and dies on ("unknown flag"). Node images built from a distribution's
//! etcd (Debian trixie ships 3.5.16) need both removed and replaced by their 3.5 spellings,
//! `--experimental-initial-corrupt-check=true` and
//! `--experimental-watch-progress-notify-interval=5s`.
//!
//! How, robustly: kubeadm builds the command from a map of default flags overridden by
//! `etcd.local.extraArgs` (same name replaces the default, new names are appended), then sorts
//! it, so neither positions nor (across kubeadm releases) values are stable.
//! - [`extra_args`] puts the two 3.6 flags into `extraArgs` with values kina chooses, which
//!   pins the exact strings kubeadm writes, and adds the 3.5 spellings.
//! - [`patches`] is a kubeadm patch for target `etcd` (strategic merge on the Pod) whose
//!   `$deleteFromPrimitiveList/command` directive deletes those exact strings wherever they
//!   are in the list. A strategic patch replacing `command` would have to reproduce the whole
//!   node-specific command (name, URLs, initial cluster of joins); an RFC 6902 patch would
//!   remove by index, which changes with every extra flag.
//!
//! The patch files go into [`PATCHES_DIR`] in the node, which the Init/Join configuration of
//! control-plane nodes names in `patches.directory`. Verified against kubeadm 1.36.2's
//! `init phase etcd local --dry-run` by `kina/tests/kubeadm_config.rs`.

use serde_json::{Value, json};

use super::KubeadmError;
use super::data::parse_version;

/// The directory (inside the node) kubeadm reads patches from; the caller writes
/// [`patches`] there before running kubeadm.
pub const PATCHES_DIR: &str = "/kina/kubeadm-patches";

/// The 3.6-only flags kubeadm 1.36 passes, with the values kina pins through `extraArgs`.
const ETCD36_FLAGS: [(&str, &str); 2] = [
    ("feature-gates", "InitialCorruptCheck=true"),
    ("watch-progress-notify-interval", "5s"),
];

/// Their etcd 3.5 equivalents.
const ETCD35_FLAGS: [(&str, &str); 2] = [
    ("experimental-initial-corrupt-check", "true"),
    ("experimental-watch-progress-notify-interval", "5s"),
];

/// The name of kina's patch file: target `etcd`, suffix `-kina-etcd35`, strategic merge.
pub const PATCH_FILE: &str = "etcd-kina-etcd35+strategic.yaml";

/// True when an etcd image tag (e.g. `3.5.16-0`) is older than 3.6 and needs the patches.
pub fn needs_compat(etcd_image_tag: &str) -> Result<bool, KubeadmError> {
    let (major, minor, _) = parse_version("etcd_image_tag", etcd_image_tag)?;
    Ok((major, minor) < (3, 6))
}

/// `etcd.local.extraArgs` (v1beta4 name/value list) for an etcd version; empty from 3.6 on.
pub fn extra_args(etcd_image_tag: &str) -> Result<Vec<Value>, KubeadmError> {
    if !needs_compat(etcd_image_tag)? {
        return Ok(Vec::new());
    }
    Ok(ETCD36_FLAGS
        .iter()
        .chain(ETCD35_FLAGS.iter())
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect())
}

/// The kubeadm patch files (file name, content) that make kubeadm's etcd pod run etcd
/// `etcd_image_tag`; empty from 3.6 on. Write them into [`PATCHES_DIR`] of control-plane
/// nodes; they only work together with [`extra_args`], which [`super::render`] adds.
pub fn patches(etcd_image_tag: &str) -> Result<Vec<(String, String)>, KubeadmError> {
    if !needs_compat(etcd_image_tag)? {
        return Ok(Vec::new());
    }
    let delete: Vec<String> = ETCD36_FLAGS
        .iter()
        .map(|(name, value)| format!("--{name}={value}"))
        .collect();
    let patch = json!({
        "spec": {"containers": [{
            "name": "etcd",
            "$deleteFromPrimitiveList/command": delete,
        }]}
    });
    let content = format!(
        "# kina: etcd {etcd_image_tag} does not know kubeadm's etcd 3.6 flags; they are pinned\n\
         # through etcd.local.extraArgs and deleted here by value.\n{}",
        serde_norway::to_string(&patch)?
    );
    Ok(vec![(PATCH_FILE.to_string(), content)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_etcd_older_than_3_6_is_patched() {
        assert!(needs_compat("3.5.16-0").unwrap());
        assert!(needs_compat("3.4.13").unwrap());
        assert!(!needs_compat("3.6.8-0").unwrap());
        assert!(!needs_compat("3.10.0").unwrap());
        assert!(!needs_compat("4.0.0").unwrap());
        assert!(patches("3.6.8-0").unwrap().is_empty());
        assert!(extra_args("3.6.8-0").unwrap().is_empty());
        assert!(needs_compat("latest").is_err());
    }

    #[test]
    fn patch_deletes_exactly_the_pinned_flags() {
        let files = patches("3.5.16-0").unwrap();
        assert_eq!(files.len(), 1);
        let (name, content) = &files[0];
        assert_eq!(name, PATCH_FILE);
        let v: Value = serde_norway::from_str(content).unwrap();
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["name"], "etcd");
        assert_eq!(
            c["$deleteFromPrimitiveList/command"],
            json!([
                "--feature-gates=InitialCorruptCheck=true",
                "--watch-progress-notify-interval=5s"
            ])
        );
        // every deleted string is exactly what the pinned extraArgs make kubeadm write
        let args = extra_args("3.5.16-0").unwrap();
        for deleted in c["$deleteFromPrimitiveList/command"].as_array().unwrap() {
            let flag = deleted.as_str().unwrap();
            assert!(
                args.iter().any(|a| format!(
                    "--{}={}",
                    a["name"].as_str().unwrap(),
                    a["value"].as_str().unwrap()
                ) == flag),
                "{flag} is not pinned"
            );
        }
        let names: Vec<&str> = args.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"experimental-initial-corrupt-check"));
        assert!(names.contains(&"experimental-watch-progress-notify-interval"));
    }
}
