//! [`KubeadmError`]: why a kubeadm configuration could not be generated or patched, naming
//! the field of [`super::ConfigData`] or the patch (cluster- or node-level, by index) at fault.

use std::fmt;

/// Where a `kubeadmConfigPatches` / `kubeadmConfigPatchesJSON6902` entry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchSource {
    /// The cluster-level list (applies to every node).
    Cluster,
    /// The list of the named node (applies to that node only).
    Node(String),
}

impl fmt::Display for PatchSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchSource::Cluster => f.write_str("cluster"),
            PatchSource::Node(n) => write!(f, "node {n}"),
        }
    }
}

/// The kind of a patch list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `kubeadmConfigPatches` (RFC 7386 merge patches written as YAML).
    Merge,
    /// `kubeadmConfigPatchesJSON6902` (RFC 6902 operations).
    Json6902,
}

impl fmt::Display for PatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchKind::Merge => "kubeadmConfigPatches",
            PatchKind::Json6902 => "kubeadmConfigPatchesJSON6902",
        })
    }
}

/// Errors of the kubeadm configuration generator.
#[derive(Debug, thiserror::Error)]
pub enum KubeadmError {
    /// A field of [`super::ConfigData`] is missing or malformed.
    #[error("kubeadm config: {field}: {reason}")]
    InvalidData {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A patch could not be parsed or applied.
    #[error("{source_list} {kind}[{index}]: {reason}")]
    Patch {
        /// Cluster- or node-level list.
        source_list: PatchSource,
        /// Merge or RFC 6902 list.
        kind: PatchKind,
        /// Index of the patch in its list.
        index: usize,
        /// Why it failed.
        reason: String,
    },
    /// The configuration to patch is not a stream of YAML mappings.
    #[error("kubeadm config document {index} is not valid: {reason}")]
    Document {
        /// Index of the document in the stream.
        index: usize,
        /// Why it is not valid.
        reason: String,
    },
    /// YAML serialisation failed (a bug rather than bad input).
    #[error("cannot write kubeadm config as YAML: {0}")]
    Serialize(#[from] serde_norway::Error),
    /// The system's random source could not be read.
    #[error("cannot read /dev/urandom for a bootstrap secret: {0}")]
    Random(#[source] std::io::Error),
}

impl KubeadmError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        KubeadmError::InvalidData {
            field,
            reason: reason.into(),
        }
    }
}
