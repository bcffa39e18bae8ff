//! Errors of the bootstrap pipeline: which node, which command, and its output.

use crate::kubeadm::KubeadmError;
use crate::provider::ProviderError;

/// What can fail while bootstrapping Kubernetes in the nodes.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A command in a node exited non-zero.
    #[error("node {node}: `{command}` failed (exit status {status}):\n{output}")]
    Command {
        /// Node.
        node: String,
        /// The command line.
        command: String,
        /// Exit status.
        status: i32,
        /// Its stdout and stderr (the tail, when long).
        output: String,
    },
    /// The node could not run the command at all.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The kubeadm configuration could not be generated.
    #[error("kubeadm configuration of node {node}: {error}")]
    Kubeadm {
        /// Node.
        node: String,
        /// Why.
        error: KubeadmError,
    },
    /// Something the pipeline needs is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// Waiting ran out.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: std::time::Duration,
    },
}
