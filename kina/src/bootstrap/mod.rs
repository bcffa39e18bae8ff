//! Turning node containers into a Kubernetes cluster: kind's actions pipeline.
//!
//! Each action is one status line: write the kubeadm configs → `kubeadm init` on the first
//! control plane → install the CNI → install the StorageClass → join the other control
//! planes → join the workers → wait for the control planes to be Ready. Everything runs
//! through the [`Node`] seam (exec in a node), so the pipeline works with any provider.

mod actions;
mod error;
mod exec;
mod manifests;
mod settings;

use std::time::Duration;

pub use error::BootstrapError;
pub use manifests::{Manifest, cni_manifest, storage_manifest};
pub use settings::{NodeFacts, Settings};

use crate::config::Cluster;
use crate::provider::Node;
use crate::status::Status;

/// What a finished bootstrap hands back to the caller.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// The admin kubeconfig as the first control plane wrote it (in-network server).
    pub admin_kubeconfig: String,
}

/// Inputs of the pipeline.
pub struct Plan<'a> {
    /// The cluster config (with defaults).
    pub cluster: &'a Cluster,
    /// The Kubernetes nodes (no load balancer), in config order.
    pub nodes: Vec<&'a dyn Node>,
    /// The endpoint every node uses for the API server (`ip:6443`, or the LB's).
    pub control_plane_endpoint: String,
    /// The API server address on the host, for the certificate SANs.
    pub host_api_address: String,
    /// How long to wait for the control planes to be Ready (zero: do not wait).
    pub wait: Duration,
}

/// Runs the pipeline, one status line per action.
pub fn run(plan: &Plan<'_>, status: &Status) -> Result<Bootstrapped, BootstrapError> {
    actions::run(plan, status)
}
