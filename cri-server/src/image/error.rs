//! The image subsystem's error type: every variant names what failed (image, digest, path, URL).

use std::path::PathBuf;

/// Errors of the image subsystem (store, unpack, pull, import/export).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image (or blob) is not known locally or to the registry.
    #[error("not found: {0}")]
    NotFound(String),
    /// A request or input (reference, archive, config) is malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A registry could not be reached.
    #[error("registry unavailable: {url}: {reason}")]
    Unavailable { url: String, reason: String },
    /// The registry refused our credentials.
    #[error("registry {url}: unauthorized: {reason}")]
    Unauthenticated { url: String, reason: String },
    /// A registry answered with an error.
    #[error("registry {url}: {reason}")]
    Registry { url: String, reason: String },
    /// Content did not hash to the digest it was announced with.
    #[error("{context}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        context: String,
        expected: String,
        actual: String,
    },
    /// Content had a different size than announced.
    #[error("{context}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        context: String,
        expected: u64,
        actual: u64,
    },
    /// A layer entry tried to escape its snapshot or is otherwise unsafe.
    #[error("layer {layer}: unsafe entry {entry:?}: {reason}")]
    UnsafeLayer {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A layer archive is malformed.
    #[error("layer {layer}: {reason}")]
    BadLayer { layer: String, reason: String },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON document (manifest, config, metadata) could not be parsed.
    #[error("{what}: {reason}")]
    Json { what: String, reason: String },
    /// A `hosts.toml` or docker `config.json` is malformed.
    #[error("registry config {path}: {reason}")]
    RegistryConfig { path: PathBuf, reason: String },
    /// An image archive (OCI layout or docker save tar) is malformed.
    #[error("archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },
    /// A mount or unmount failed.
    #[error("{op} {target}: {source}")]
    Mount {
        op: &'static str,
        target: PathBuf,
        source: nix::Error,
    },
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias for the image subsystem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// An [`Error::Json`] for the document `what`.
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |e| Error::Json {
            what,
            reason: e.to_string(),
        }
    }
}
