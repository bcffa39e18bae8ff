//! Errors of the native provider, each naming the node, file or program involved.

use std::path::PathBuf;

use crate::network::NetworkError;
use crate::provider::ProviderError;
use crate::state::StateError;

/// What can go wrong running node containers.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// No kina-runtime binary was found.
    #[error(
        "kina-runtime was not found: install it beside kina or on PATH, or name it with KINA_RUNTIME"
    )]
    RuntimeNotFound,
    /// A program could not be started.
    #[error("cannot run {}: {error}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The runtime refused an operation on a node.
    #[error("node {node}: {what} failed: {output}")]
    Runtime {
        /// Node (container id).
        node: String,
        /// Operation.
        what: String,
        /// What the runtime said.
        output: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {}: {error}", path.display())]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The node image store failed.
    #[error("node image {image}: {error}")]
    Image {
        /// Image reference as given.
        image: String,
        /// The store's error.
        error: cri_server::image::Error,
    },
    /// The image is neither in the store nor a path to an image.
    #[error(
        "node image {image:?} is not in kina's image store ({}); build it with `kina build node-image --image {image}` or pass --image with the path of an OCI layout directory or archive",
        store.display()
    )]
    ImageNotFound {
        /// Image reference.
        image: String,
        /// The store directory.
        store: PathBuf,
    },
    /// The generated node spec is not a valid OCI spec.
    #[error("node {node}: invalid runtime spec: {message}")]
    Spec {
        /// Node.
        node: String,
        /// Why.
        message: String,
    },
    /// A node already exists.
    #[error("node {node} already exists (in {})", dir.display())]
    Exists {
        /// Node.
        node: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// A node did not become ready.
    #[error("node {node}: {message}")]
    NotReady {
        /// Node.
        node: String,
        /// What was seen.
        message: String,
    },
    /// Cluster networking failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// Cluster records failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A lock was poisoned by a panicking thread.
    #[error("internal lock poisoned")]
    Poisoned,
}

impl NativeError {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: &std::path::Path, error: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            error,
        }
    }
}

impl From<NativeError> for ProviderError {
    fn from(e: NativeError) -> Self {
        match e {
            NativeError::State(s) => ProviderError::State(s),
            NativeError::Io { op, path, error } => ProviderError::File {
                path,
                error: std::io::Error::new(error.kind(), format!("{op}: {error}")),
            },
            NativeError::Runtime { ref node, .. }
            | NativeError::Spec { ref node, .. }
            | NativeError::Exists { ref node, .. }
            | NativeError::NotReady { ref node, .. } => ProviderError::Node {
                node: node.clone(),
                message: e.to_string(),
            },
            other => ProviderError::Native(Box::new(other)),
        }
    }
}
