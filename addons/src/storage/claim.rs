//! Whether this node's instance provisions a claim, and the plan for its volume. Mirrors the
//! external-provisioner library's `shouldProvision` checks plus local-path's limits
//! (filesystem volumes, single-node access modes, no selectors).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::naming::{self, NameError};
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, PROVISIONER,
};

/// Why a claim this provisioner is responsible for cannot be provisioned (reported as a
/// Warning event on the claim).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("volumeMode Block is not supported: local-path volumes are directories")]
    BlockMode,
    #[error("claim selectors are not supported")]
    Selector,
    #[error(
        "access mode {0} is not supported (a local-path volume lives on one node): use ReadWriteOnce or ReadWriteOncePod"
    )]
    AccessMode(String),
    #[error("spec.resources.requests.storage is missing")]
    NoSize,
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Everything needed to create the volume of a claim.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumePlan {
    pub pv_name: String,
    pub dir: std::path::PathBuf,
    pub namespace: String,
    pub claim_name: String,
    pub claim_uid: String,
    pub claim_resource_version: Option<String>,
    pub capacity: Quantity,
    pub access_modes: Vec<String>,
    pub storage_class: String,
    pub reclaim_policy: String,
    pub mount_options: Option<Vec<String>>,
}

/// The outcome of looking at a claim.
#[derive(Debug)]
pub enum ClaimDecision {
    /// Not ours (other node, other provisioner, already bound, not yet scheduled...).
    Skip(&'static str),
    /// Ours, but unsatisfiable.
    Reject(ClaimError),
    /// Ours: create this volume.
    Provision(Box<VolumePlan>),
}

fn annotation<'a>(ann: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    ann.and_then(|a| a.get(key)).map(String::as_str)
}

/// Decides for `claim` on node `node` with storage under `root`; `class` is the claim's
/// StorageClass if it exists.
pub fn decide(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    node: &str,
    root: &Path,
) -> ClaimDecision {
    let meta = &claim.metadata;
    let Some(spec) = claim.spec.as_ref() else {
        return ClaimDecision::Skip("claim has no spec");
    };
    if meta.deletion_timestamp.is_some() {
        return ClaimDecision::Skip("claim is being deleted");
    }
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return ClaimDecision::Skip("claim is already bound");
    }
    let ann = meta.annotations.as_ref();
    let provisioner =
        annotation(ann, ANN_STORAGE_PROVISIONER).or(annotation(ann, ANN_BETA_STORAGE_PROVISIONER));
    if provisioner != Some(PROVISIONER) {
        return ClaimDecision::Skip("claim is not handed to rancher.io/local-path");
    }
    if annotation(ann, ANN_SELECTED_NODE) != Some(node) {
        return ClaimDecision::Skip("claim is not scheduled to this node");
    }
    let Some(class) = class else {
        return ClaimDecision::Skip("claim's StorageClass does not exist");
    };
    if class.provisioner != PROVISIONER {
        return ClaimDecision::Skip("claim's StorageClass has another provisioner");
    }
    if spec.volume_mode.as_deref() == Some("Block") {
        return ClaimDecision::Reject(ClaimError::BlockMode);
    }
    if spec.selector.is_some() {
        return ClaimDecision::Reject(ClaimError::Selector);
    }
    let access_modes = spec.access_modes.clone().unwrap_or_default();
    if let Some(bad) = access_modes
        .iter()
        .find(|m| m.as_str() != "ReadWriteOnce" && m.as_str() != "ReadWriteOncePod")
    {
        return ClaimDecision::Reject(ClaimError::AccessMode(bad.clone()));
    }
    let Some(capacity) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
    else {
        return ClaimDecision::Reject(ClaimError::NoSize);
    };
    let plan = (|| -> Result<VolumePlan, ClaimError> {
        let uid = meta.uid.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let claim_name = meta.name.clone().unwrap_or_default();
        let pv_name = naming::pv_name(&uid)?;
        let dir = naming::volume_path(root, &pv_name, &namespace, &claim_name)?;
        Ok(VolumePlan {
            pv_name,
            dir,
            namespace,
            claim_name,
            claim_uid: uid,
            claim_resource_version: meta.resource_version.clone(),
            capacity,
            access_modes: if access_modes.is_empty() {
                vec!["ReadWriteOnce".into()]
            } else {
                access_modes
            },
            storage_class: class.metadata.name.clone().unwrap_or_default(),
            reclaim_policy: class
                .reclaim_policy
                .clone()
                .unwrap_or_else(|| "Delete".into()),
            mount_options: class.mount_options.clone(),
        })
    })();
    match plan {
        Ok(p) => ClaimDecision::Provision(Box::new(p)),
        Err(e) => ClaimDecision::Reject(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn class(provisioner: &str, reclaim: Option<&str>) -> StorageClass {
        let mut v = json!({"metadata": {"name": "standard"}, "provisioner": provisioner,
                           "volumeBindingMode": "WaitForFirstConsumer"});
        if let Some(r) = reclaim {
            v["reclaimPolicy"] = json!(r);
        }
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn claim(patch: serde_json::Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "data", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                "annotations": {ANN_SELECTED_NODE: "w1", ANN_STORAGE_PROVISIONER: PROVISIONER}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                     "resources": {"requests": {"storage": "1Gi"}}}
        });
        merge(&mut v, patch);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    if v.is_null() {
                        a.remove(&k);
                    } else {
                        merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            (a, b) => *a = b,
        }
    }

    fn decide_for(c: &PersistentVolumeClaim) -> ClaimDecision {
        decide(
            c,
            Some(&class(PROVISIONER, None)),
            "w1",
            Path::new("/var/lp"),
        )
    }

    #[test]
    fn scheduled_claim_is_provisioned() {
        let ClaimDecision::Provision(p) = decide_for(&claim(json!({}))) else {
            panic!("not provisioned")
        };
        assert_eq!(p.pv_name, "pvc-u-1");
        assert_eq!(p.dir, Path::new("/var/lp/pvc-u-1_default_data"));
        assert_eq!(p.capacity, Quantity("1Gi".into()));
        assert_eq!(p.reclaim_policy, "Delete");
        assert_eq!(p.storage_class, "standard");
        assert_eq!(p.access_modes, vec!["ReadWriteOnce"]);
    }

    #[test]
    fn beta_annotation_is_honoured() {
        let c = claim(
            json!({"metadata": {"annotations": {ANN_STORAGE_PROVISIONER: null, ANN_BETA_STORAGE_PROVISIONER: PROVISIONER}}}),
        );
        assert!(matches!(decide_for(&c), ClaimDecision::Provision(_)));
    }

    #[test]
    fn claims_of_others_are_skipped() {
        for patch in [
            json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "w2"}}}),
            json!({"metadata": {"annotations": {ANN_SELECTED_NODE: null}}}),
            json!({"metadata": {"annotations": {ANN_STORAGE_PROVISIONER: "ebs.csi.aws.com"}}}),
            json!({"spec": {"volumeName": "pv-1"}}),
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        ] {
            let c = claim(patch.clone());
            assert!(matches!(decide_for(&c), ClaimDecision::Skip(_)), "{patch}");
        }
        let c = claim(json!({}));
        assert!(matches!(
            decide(&c, None, "w1", Path::new("/r")),
            ClaimDecision::Skip(_)
        ));
        assert!(matches!(
            decide(&c, Some(&class("other.io/x", None)), "w1", Path::new("/r")),
            ClaimDecision::Skip(_)
        ));
    }

    #[test]
    fn unsatisfiable_claims_are_rejected_with_a_reason() {
        for (patch, want) in [
            (json!({"spec": {"volumeMode": "Block"}}), "Block"),
            (
                json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
                "ReadWriteMany",
            ),
            (
                json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
                "selectors",
            ),
            (
                json!({"spec": {"resources": {"requests": null}}}),
                "storage",
            ),
            (json!({"metadata": {"namespace": "../etc"}}), "namespace"),
        ] {
            match decide_for(&claim(patch.clone())) {
                ClaimDecision::Reject(e) => assert!(e.to_string().contains(want), "{patch}: {e}"),
                other => panic!("{patch}: {other:?}"),
            }
        }
    }

    #[test]
    fn class_reclaim_policy_is_used() {
        let c = claim(json!({}));
        let ClaimDecision::Provision(p) = decide(
            &c,
            Some(&class(PROVISIONER, Some("Retain"))),
            "w1",
            Path::new("/r"),
        ) else {
            panic!()
        };
        assert_eq!(p.reclaim_policy, "Retain");
    }
}
