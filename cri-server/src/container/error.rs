//! Errors of the runtime service (sandboxes and containers), each naming the object and step.

use crate::container::store::StoreError;
use crate::network::{CniError, NetnsError};
use crate::oci::OciError;

/// What a sandbox or container operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// An unknown sandbox, container or image.
    #[error("{0}")]
    NotFound(String),
    /// A name already in use.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object is in the wrong state for the request.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("image: {0}")]
    Image(#[from] crate::image::Error),
    #[error("network: {0}")]
    Cni(#[from] CniError),
    #[error("network namespace: {0}")]
    Netns(#[from] NetnsError),
    /// A file or mount step failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => RuntimeError::NotFound(e.to_string()),
            StoreError::NameTaken { .. } => RuntimeError::AlreadyExists(e.to_string()),
            e => RuntimeError::Store(e),
        }
    }
}

/// `map_err` helper for file steps.
pub fn io(
    what: impl Into<String>,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let (what, path) = (what.into(), path.to_owned());
    move |source| RuntimeError::Io { what, path, source }
}
