//! kubeadm configuration of kina nodes (kind's `pkg/cluster/internal/kubeadm` and the
//! `kubeadmConfigPatches` handling of its config action), for `kubeadm.k8s.io/v1beta4`.
//!
//! - [`ConfigData`]: what varies per node; [`render`] turns it into the YAML stream given to
//!   `kubeadm init|join --config` ([`render`] module docs list the documents).
//! - [`apply_patches`]: kind's cluster- and node-level patches ([`patch`], [`compat`]).
//! - [`etcd`]: the kubeadm patch files that let kubeadm 1.36 run etcd 3.5.
//! - [`generate`] does all of it for one node of a [`crate::config::Cluster`] and returns
//!   the config plus the files the caller writes into the node before running kubeadm.
//!
//! Running kubeadm with it: write [`NodeConfig::files`] first (kubeadm fails when the
//! configured patches directory does not exist), then `kubeadm init --config CONFIG_PATH`
//! (add `--upload-certs` when [`ConfigData::certificate_key`] is set for later control-plane
//! joins) or `kubeadm join --config CONFIG_PATH`. Do not add `--ignore-preflight-errors=all`:
//! kubeadm refuses `all` next to the `SystemVerification` the config already ignores.

pub mod compat;
pub mod data;
pub mod error;
pub mod etcd;
pub mod patch;
pub mod render;

use serde_json::Value;

use crate::config::{Cluster, Node};

pub use data::{
    API_BIND_PORT, CgroupDriver, ConfigData, DEFAULT_CRI_SOCKET, DEFAULT_DNS_DOMAIN,
    KIND_CGROUP_ROOT, random_certificate_key, random_token,
};
pub use error::{KubeadmError, PatchKind, PatchSource};
pub use etcd::PATCHES_DIR;
pub use patch::apply_patches;
pub use render::{IGNORED_PREFLIGHT_ERRORS, render};

/// Where kina writes the kubeadm configuration inside a node (kind: `/kind/kubeadm.conf`).
pub const CONFIG_PATH: &str = "/kina/kubeadm.conf";

/// A file to write into the node before kubeadm runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// Absolute path inside the node.
    pub path: String,
    /// File content.
    pub content: String,
}

/// The kubeadm configuration of one node, patched, and what must exist in the node for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The YAML stream for `kubeadm init|join --config` (write it to [`CONFIG_PATH`]).
    pub config: String,
    /// Files to write into the node first: the etcd patches in [`PATCHES_DIR`].
    pub files: Vec<NodeFile>,
    /// A patches directory the user's kubeadm patches named (kind's guide mounts one). kubeadm
    /// reads a single directory, so the config names [`PATCHES_DIR`] instead and the caller
    /// must copy this directory's files into [`PATCHES_DIR`] (inside the node) before kubeadm.
    pub copy_patches_from: Option<String>,
}

/// Renders the node's configuration and applies the cluster's, then the node's patches
/// (kind's `getKubeadmConfig`).
pub fn generate(
    data: &ConfigData,
    cluster: &Cluster,
    node: &Node,
) -> Result<NodeConfig, KubeadmError> {
    let mut docs = render::documents(data)?;
    patch::apply_to_documents(
        &mut docs,
        &PatchSource::Cluster,
        &cluster.kubeadm_config_patches,
        &cluster.kubeadm_config_patches_json6902,
    )?;
    patch::apply_to_documents(
        &mut docs,
        &PatchSource::Node(data.node_name.clone()),
        &node.kubeadm_config_patches,
        &node.kubeadm_config_patches_json6902,
    )?;

    let etcd_files = match &data.etcd_image_tag {
        Some(tag) if data.control_plane() => etcd::patches(tag)?,
        _ => Vec::new(),
    };
    let mut copy_patches_from = None;
    if !etcd_files.is_empty() {
        for doc in docs.iter_mut().filter(|d| is_init_or_join(d)) {
            let dir = doc
                .pointer("/patches/directory")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(dir) = dir.filter(|d| d.trim_end_matches('/') != PATCHES_DIR) {
                copy_patches_from = Some(dir);
            }
            doc["patches"] = serde_json::json!({"directory": PATCHES_DIR});
        }
    }
    Ok(NodeConfig {
        config: render::to_yaml(&docs)?,
        files: etcd_files
            .into_iter()
            .map(|(name, content)| NodeFile {
                path: format!("{PATCHES_DIR}/{name}"),
                content,
            })
            .collect(),
        copy_patches_from,
    })
}

fn is_init_or_join(doc: &Value) -> bool {
    matches!(
        doc.get("kind").and_then(Value::as_str),
        Some("InitConfiguration" | "JoinConfiguration")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeRole, PatchJson6902};
    use std::net::IpAddr;

    fn data() -> ConfigData {
        ConfigData {
            cluster_name: "kina".into(),
            kubernetes_version: "v1.36.2".into(),
            control_plane_endpoint: "10.89.0.2:6443".into(),
            api_bind_port: API_BIND_PORT,
            api_server_address: "127.0.0.1".into(),
            token: "abcdef.0123456789abcdef".into(),
            node_name: "kina-control-plane".into(),
            node_ips: vec!["10.89.0.2".parse::<IpAddr>().unwrap()],
            pod_subnet: "10.244.0.0/16".into(),
            service_subnet: "10.96.0.0/16".into(),
            cri_socket: DEFAULT_CRI_SOCKET.into(),
            etcd_image_tag: Some("3.5.16-0".into()),
            ..Default::default()
        }
    }

    #[test]
    fn generate_applies_cluster_then_node_patches_and_lists_etcd_files() {
        let cluster = Cluster {
            kubeadm_config_patches: vec!["kind: ClusterConfiguration\nclusterName: one\n".into()],
            ..Default::default()
        };
        let node = Node {
            kubeadm_config_patches: vec!["kind: ClusterConfiguration\nclusterName: two\n".into()],
            kubeadm_config_patches_json6902: vec![PatchJson6902 {
                kind: "InitConfiguration".into(),
                patch: "- op: add\n  path: /nodeRegistration/taints\n  value: []\n".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = generate(&data(), &cluster, &node).unwrap();
        let docs = patch::parse_stream(&out.config).unwrap();
        assert_eq!(docs[0]["clusterName"], "two");
        assert_eq!(docs[1]["nodeRegistration"]["taints"], serde_json::json!([]));
        assert_eq!(docs[1]["patches"]["directory"], PATCHES_DIR);
        assert_eq!(out.files.len(), 1);
        assert!(out.files[0].path.starts_with("/kina/kubeadm-patches/etcd"));
        assert_eq!(out.copy_patches_from, None);
    }

    #[test]
    fn a_user_patches_directory_is_merged_into_kinas() {
        let cluster = Cluster {
            kubeadm_config_patches: vec![
                "kind: InitConfiguration\npatches:\n  directory: /patches\n".into(),
            ],
            ..Default::default()
        };
        let out = generate(&data(), &cluster, &Node::default()).unwrap();
        assert_eq!(out.copy_patches_from.as_deref(), Some("/patches"));
        assert!(out.config.contains("directory: /kina/kubeadm-patches"));

        // without etcd patches the user's directory stays as written
        let mut d = data();
        d.etcd_image_tag = Some("3.6.8-0".into());
        let out = generate(&d, &cluster, &Node::default()).unwrap();
        assert_eq!(out.copy_patches_from, None);
        assert!(out.files.is_empty());
        assert!(out.config.contains("directory: /patches"));
    }

    #[test]
    fn workers_get_no_etcd_files() {
        let mut d = data();
        d.join = true;
        d.role = NodeRole::Worker;
        d.node_name = "kina-worker".into();
        let out = generate(&d, &Cluster::default(), &Node::default()).unwrap();
        assert!(out.files.is_empty());
        assert!(!out.config.contains("patches"));
    }

    #[test]
    fn node_patch_errors_name_the_node() {
        let node = Node {
            kubeadm_config_patches: vec!["kind: [".into()],
            ..Default::default()
        };
        let e = generate(&data(), &Cluster::default(), &node).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("node kina-control-plane kubeadmConfigPatches[0]"),
            "{msg}"
        );
    }
}
