//! What this host's cgroup hierarchy can enforce, detected once: resources the kubelet asks for
//! but no controller can apply (hugetlb on a v1 host without a hugetlb hierarchy, as on a hybrid
//! host whose only hugetlb is on the controller-less cgroup2 mount) are left out of the spec
//! instead of failing every container, as containerd does.

use std::sync::OnceLock;

use kina_cgroups::mountinfo::{Hierarchy, Layout};

/// Whether hugepage limits can be applied: a v1 `hugetlb` hierarchy on v1/hybrid hosts (the
/// runtimes drive controllers through v1 there), `hugetlb` in `cgroup.controllers` on v2.
pub fn hugetlb_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let available = match kina_cgroups::mountinfo::hierarchies() {
            Ok(hs) => hugetlb_in(&hs),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cgroup hierarchies; assuming hugetlb");
                true
            }
        };
        if !available {
            tracing::info!("no hugetlb cgroup controller: hugepage limits are not applied");
        }
        available
    })
}

/// [`hugetlb_available`] for given hierarchies.
pub fn hugetlb_in(hs: &[Hierarchy]) -> bool {
    let version = match kina_cgroups::mountinfo::layout_of(hs) {
        Some(Layout::V2) => 2,
        Some(Layout::V1 | Layout::Hybrid) => 1,
        None => return false,
    };
    hs.iter().any(|h| h.version == version && h.has("hugetlb"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn h(version: u8, controllers: &[&str]) -> Hierarchy {
        Hierarchy {
            mount_point: PathBuf::from("/sys/fs/cgroup"),
            root: PathBuf::from("/"),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            version,
        }
    }

    #[test]
    fn hybrid_hugetlb_on_cgroup2_only_is_not_usable() {
        let hs = [
            h(1, &["memory"]),
            h(1, &["name=systemd"]),
            h(2, &["hugetlb"]),
        ];
        assert!(!hugetlb_in(&hs));
        let hs = [h(1, &["memory"]), h(1, &["hugetlb"]), h(2, &[])];
        assert!(hugetlb_in(&hs));
    }

    #[test]
    fn v2_needs_the_controller() {
        assert!(hugetlb_in(&[h(2, &["cpu", "memory", "hugetlb"])]));
        assert!(!hugetlb_in(&[h(2, &["cpu", "memory"])]));
    }
}
