//! The PersistentVolume of a [`VolumePlan`], and when a PV of ours is to be reclaimed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::claim::VolumePlan;
use super::naming;
use super::{ANN_PROVISIONED_BY, HOSTNAME_LABEL, PROVISIONER};

/// The PV for `plan`, pinned to nodes whose `kubernetes.io/hostname` label is `hostname`.
pub fn build(plan: &VolumePlan, hostname: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(plan.pv_name.clone()),
            annotations: Some(BTreeMap::from([(
                ANN_PROVISIONED_BY.to_owned(),
                PROVISIONER.to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_owned(),
                plan.capacity.clone(),
            )])),
            access_modes: Some(plan.access_modes.clone()),
            persistent_volume_reclaim_policy: Some(plan.reclaim_policy.clone()),
            storage_class_name: Some(plan.storage_class.clone()),
            mount_options: plan.mount_options.clone(),
            volume_mode: Some("Filesystem".to_owned()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: Some(plan.namespace.clone()),
                name: Some(plan.claim_name.clone()),
                uid: Some(plan.claim_uid.clone()),
                resource_version: plan.claim_resource_version.clone(),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: plan.dir.display().to_string(),
                type_: Some("DirectoryOrCreate".to_owned()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.to_owned(),
                            operator: "In".to_owned(),
                            values: Some(vec![hostname.to_owned()]),
                        }]),
                        ..Default::default()
                    }],
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// What to do with a PV.
#[derive(Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// Not ours to reclaim (yet).
    Skip(&'static str),
    /// Remove `dir`, then delete the PV.
    Delete { dir: PathBuf },
    /// Ours and released, but its path is not one this provisioner makes: leave it alone.
    Refuse(String),
}

/// Decides for `pv` on the node labelled `hostname`, storage under `root`.
pub fn reclaim(pv: &PersistentVolume, hostname: &str, root: &Path) -> Reclaim {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let ours = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_PROVISIONED_BY))
        .is_some_and(|p| p == PROVISIONER);
    if !ours {
        return Reclaim::Skip("not provisioned by rancher.io/local-path");
    }
    let Some(spec) = pv.spec.as_ref() else {
        return Reclaim::Skip("no spec");
    };
    if !on_node(spec, hostname) {
        return Reclaim::Skip("volume of another node");
    }
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
        return Reclaim::Skip("not released");
    }
    if spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete") {
        return Reclaim::Skip("reclaim policy is not Delete");
    }
    let Some(path) = spec.host_path.as_ref().map(|h| PathBuf::from(&h.path)) else {
        return Reclaim::Refuse(format!("PV {name} has no hostPath"));
    };
    if !naming::is_volume_of(root, name, &path) {
        return Reclaim::Refuse(format!(
            "PV {name}: hostPath {} is not a volume directory of PV {name} under {}",
            path.display(),
            root.display()
        ));
    }
    Reclaim::Delete { dir: path }
}

/// Whether the PV's node affinity selects `hostname` through the hostname label.
fn on_node(spec: &PersistentVolumeSpec, hostname: &str) -> bool {
    spec.node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .into_iter()
        .flat_map(|r| &r.node_selector_terms)
        .flat_map(|t| t.match_expressions.iter().flatten())
        .any(|e| {
            e.key == HOSTNAME_LABEL
                && e.operator == "In"
                && e.values.iter().flatten().any(|v| v == hostname)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::claim::{ClaimDecision, decide, tests as claim_tests};
    use serde_json::json;

    fn plan() -> VolumePlan {
        let c = claim_tests::claim(json!({}));
        let sc = claim_tests::class(PROVISIONER, None);
        match decide(&c, Some(&sc), "w1", Path::new("/var/lp")) {
            ClaimDecision::Provision(p) => *p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pv_carries_everything_the_binder_checks() {
        let pv = build(&plan(), "w1");
        let v = serde_json::to_value(&pv).unwrap();
        assert_eq!(v["metadata"]["name"], "pvc-u-1");
        assert_eq!(
            v["metadata"]["annotations"][ANN_PROVISIONED_BY],
            PROVISIONER
        );
        let spec = &v["spec"];
        assert_eq!(spec["capacity"]["storage"], "1Gi");
        assert_eq!(spec["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(spec["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(spec["storageClassName"], "standard");
        assert_eq!(spec["volumeMode"], "Filesystem");
        assert_eq!(
            spec["claimRef"],
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "default",
                   "name": "data", "uid": "u-1", "resourceVersion": "7"})
        );
        assert_eq!(
            spec["hostPath"],
            json!({"path": "/var/lp/pvc-u-1_default_data", "type": "DirectoryOrCreate"})
        );
        assert_eq!(
            spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
            json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]})
        );
    }

    fn released(mut pv: PersistentVolume) -> PersistentVolume {
        pv.status = serde_json::from_value(json!({"phase": "Released"})).unwrap();
        pv
    }

    #[test]
    fn released_pv_of_this_node_is_reclaimed() {
        let root = Path::new("/var/lp");
        let pv = build(&plan(), "w1");
        assert_eq!(reclaim(&pv, "w1", root), Reclaim::Skip("not released"));
        let pv = released(pv);
        assert_eq!(
            reclaim(&pv, "w1", root),
            Reclaim::Delete {
                dir: "/var/lp/pvc-u-1_default_data".into()
            }
        );
        assert_eq!(
            reclaim(&pv, "w2", root),
            Reclaim::Skip("volume of another node")
        );
        let mut retained = pv.clone();
        retained
            .spec
            .as_mut()
            .unwrap()
            .persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(matches!(reclaim(&retained, "w1", root), Reclaim::Skip(_)));
        let mut foreign = pv.clone();
        foreign.metadata.annotations = None;
        assert!(matches!(reclaim(&foreign, "w1", root), Reclaim::Skip(_)));
    }

    #[test]
    fn tampered_path_is_refused() {
        let root = Path::new("/var/lp");
        let mut pv = released(build(&plan(), "w1"));
        pv.spec.as_mut().unwrap().host_path.as_mut().unwrap().path = "/etc".into();
        match reclaim(&pv, "w1", root) {
            Reclaim::Refuse(msg) => assert!(msg.contains("/etc"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
