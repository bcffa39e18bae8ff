//! The manifests kina applies to a new cluster (the files of the workspace's `manifests/`
//! directory, built in), with the cluster's values substituted for their `@MARKER@`s.

use crate::config::Cluster;

/// A manifest ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Which one, for messages.
    pub name: &'static str,
    /// The YAML stream.
    pub yaml: String,
}

const KINDNET: &str = include_str!("../../../manifests/kindnet.yaml");
const STORAGE: &str = include_str!("../../../manifests/storage.yaml");

/// The default CNI (kina-net, a kindnet-like daemon) for `cluster`, whose nodes reach the
/// API server at `control_plane_endpoint` (`host:port`).
pub fn cni_manifest(cluster: &Cluster, control_plane_endpoint: &str) -> Manifest {
    Manifest {
        name: "kindnet",
        yaml: KINDNET
            .replace("@POD_SUBNET@", &cluster.networking.pod_subnet)
            .replace("@CONTROL_PLANE_ENDPOINT@", control_plane_endpoint),
    }
}

/// The default StorageClass and its host-path provisioner.
pub fn storage_manifest(_cluster: &Cluster) -> Manifest {
    Manifest {
        name: "storage",
        yaml: STORAGE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_all_replaced() {
        let mut cluster = crate::config::default_config(Some("m")).unwrap().cluster;
        cluster.networking.pod_subnet = "10.244.0.0/16,fd00:10:244::/56".into();
        let cni = cni_manifest(&cluster, "172.18.0.2:6443");
        let body: String = cni
            .yaml
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!body.contains('@'), "{body}");
        assert!(body.contains("10.244.0.0/16,fd00:10:244::/56"), "{body}");
        assert!(body.contains("172.18.0.2:6443"), "{body}");
        assert!(storage_manifest(&cluster).yaml.contains("StorageClass"));
    }
}
