//! Why building a node image failed: every variant names the path, URL, command or field.

use std::path::PathBuf;

/// Errors of `kina build node-image`.
#[derive(Debug, thiserror::Error)]
pub enum NodeImageError {
    /// A file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The embedded recipe (node-image/recipe.toml or a unit) is malformed.
    #[error("node-image recipe {file}: {message}")]
    Recipe {
        /// The recipe file.
        file: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An input the user named is unusable.
    #[error("{what}: {message}")]
    Input {
        /// The flag or input, e.g. "--kube-bin-dir /x".
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A command the build runs (debootstrap, kubeadm) failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its error output.
        stderr: String,
    },
    /// A download failed.
    #[error("download {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong (HTTP status, connection error).
        message: String,
    },
    /// A downloaded file does not match its published checksum.
    #[error("checksum mismatch for {url}: expected sha256 {expected}, got {actual}")]
    Checksum {
        /// The URL of the file.
        url: String,
        /// The published digest.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },
    /// The OCI image could not be assembled.
    #[error("oci image: {0}")]
    Oci(String),
}

impl NodeImageError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NodeImageError::Io {
            action,
            path,
            source,
        }
    }

    /// An unusable input.
    pub fn input(what: impl Into<String>, message: impl Into<String>) -> Self {
        NodeImageError::Input {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// Result of node-image operations.
pub type Result<T, E = NodeImageError> = std::result::Result<T, E>;
