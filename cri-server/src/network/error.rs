//! `CniError`: every way pod networking can fail, with the network, plugin, file or
//! container it concerns, plus the CNI error object (`{code,msg,details}`) plugins print.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::netns::NetnsError;
use super::result::ResultError;

/// The error object a CNI plugin prints on stdout when it exits non-zero
/// (CNI spec "Error" section). Well-known codes are 1–11, 100+ are plugin-specific.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PluginError {
    /// Error code: 1 incompatible version, 2 unsupported field, 3 container unknown,
    /// 4 invalid env, 5 I/O, 6 decoding, 7 invalid config, 11 try again later, ...
    #[serde(default)]
    pub code: u32,
    /// Short human-readable message.
    #[serde(default)]
    pub msg: String,
    /// Longer detail, often the underlying OS error.
    #[serde(default)]
    pub details: String,
}

impl PluginError {
    /// Parses a plugin's stdout as a CNI error object. `None` when stdout holds no such
    /// object (e.g. the plugin crashed before printing one).
    pub fn parse(stdout: &[u8]) -> Option<Self> {
        let err: Self = serde_json::from_slice(stdout).ok()?;
        (err.code != 0 || !err.msg.is_empty()).then_some(err)
    }

    /// The meaning of the well-known error codes from the CNI spec.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            1 => "incompatible CNI version",
            2 => "unsupported field in network configuration",
            3 => "container unknown or does not exist",
            4 => "invalid necessary environment variables",
            5 => "I/O failure",
            6 => "failed to decode content",
            7 => "invalid network config",
            11 => "try again later",
            50 => "plugin not available",
            51 => "plugin not available, limited connectivity",
            _ => "plugin-specific error",
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        write!(f, " (code {}: {})", self.code, self.code_name())
    }
}

/// Errors of the CNI layer.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The conf dir holds no usable network configuration.
    #[error("no CNI network config found in {dir}{}", format_skipped(.skipped))]
    NoConfig {
        dir: PathBuf,
        /// Files that were skipped because they are invalid, with the reason.
        skipped: Vec<String>,
    },
    /// A network configuration file is malformed.
    #[error("CNI config {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    /// Reading or writing a file or directory of the CNI layer failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plugin named by the network is in none of the bin dirs.
    #[error("network {network}: CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound {
        network: String,
        plugin: String,
        dirs: String,
    },
    /// A plugin ran and reported failure.
    #[error("network {network}: plugin {plugin} failed on {command}: {error}")]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        error: PluginError,
    },
    /// A plugin exited non-zero without a CNI error object.
    #[error("network {network}: plugin {plugin} failed on {command} ({status}): {stderr}")]
    PluginCrashed {
        network: String,
        plugin: String,
        command: &'static str,
        status: String,
        stderr: String,
    },
    /// The plugin binary could not be started or talked to.
    #[error("network {network}: plugin {plugin}: cannot execute {path}: {source}")]
    Exec {
        network: String,
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not finish in time (it was killed).
    #[error("network {network}: plugin {plugin} did not finish {command} within {timeout:?}")]
    Timeout {
        network: String,
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    /// A plugin printed a result that is not a valid CNI result.
    #[error("network {network}: plugin {plugin} returned an invalid {command} result: {source}")]
    InvalidResult {
        network: String,
        plugin: String,
        command: &'static str,
        #[source]
        source: ResultError,
    },
    /// A cached result file cannot be used.
    #[error("CNI result cache {path} is corrupt: {reason}")]
    CacheCorrupt { path: PathBuf, reason: String },
    /// CHECK was asked for a container that has no cached ADD result.
    #[error("network {network}: no cached result for container {container_id} (was it set up?)")]
    NoCachedResult {
        network: String,
        container_id: String,
    },
    /// The operation is not defined for the network's CNI version.
    #[error("network {network}: {command} is not supported by cniVersion {version}")]
    Unsupported {
        network: String,
        command: &'static str,
        version: String,
    },
    /// The caller's request is malformed (bad container id, ...).
    #[error("invalid pod network request: {0}")]
    InvalidRequest(String),
    /// The CNI network is not ready (no config yet, plugin missing).
    #[error("network not ready: {0}")]
    NotReady(String),
    /// Creating or removing a pod network namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

fn format_skipped(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    }
}

impl CniError {
    /// Something the caller asked for does not exist (no config, no plugin, no cache entry,
    /// or a plugin saying the container is unknown). Maps to gRPC `NOT_FOUND`.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NoConfig { .. } | Self::PluginNotFound { .. } | Self::NoCachedResult { .. } => {
                true
            }
            Self::Plugin { error, .. } => error.code == 3,
            _ => false,
        }
    }

    /// The caller's input or the operator's configuration is invalid.
    /// Maps to gRPC `INVALID_ARGUMENT` / `FAILED_PRECONDITION`.
    pub fn is_invalid(&self) -> bool {
        match self {
            Self::InvalidConfig { .. } | Self::InvalidRequest(_) | Self::Unsupported { .. } => true,
            Self::Plugin { error, .. } => matches!(error.code, 1 | 2 | 4 | 6 | 7),
            _ => false,
        }
    }

    /// Retrying later may succeed (network not ready yet, plugin asked to try again, timeout).
    /// Maps to gRPC `UNAVAILABLE`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotReady(_) | Self::NoConfig { .. } | Self::Timeout { .. } => true,
            Self::Plugin { error, .. } => matches!(error.code, 11 | 50 | 51),
            _ => false,
        }
    }

    /// The plugin that failed, when a plugin is to blame.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::PluginNotFound { plugin, .. }
            | Self::Plugin { plugin, .. }
            | Self::PluginCrashed { plugin, .. }
            | Self::Exec { plugin, .. }
            | Self::Timeout { plugin, .. }
            | Self::InvalidResult { plugin, .. } => Some(plugin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plugin_error_object() {
        let out =
            br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no subnet"}"#;
        let err = PluginError::parse(out).expect("error object");
        assert_eq!(err.code, 7);
        assert_eq!(
            err.to_string(),
            "invalid config: no subnet (code 7: invalid network config)"
        );
        let cni = CniError::Plugin {
            network: "kina".into(),
            plugin: "bridge".into(),
            command: "ADD",
            error: err,
        };
        assert!(cni.is_invalid());
        assert_eq!(cni.plugin(), Some("bridge"));
        assert!(cni.to_string().contains("plugin bridge failed on ADD"));
    }

    #[test]
    fn non_error_output_is_not_an_error_object() {
        assert_eq!(PluginError::parse(b"panic: runtime error"), None);
        assert_eq!(PluginError::parse(br#"{"cniVersion":"1.0.0"}"#), None);
    }

    #[test]
    fn container_unknown_is_not_found() {
        let err = CniError::Plugin {
            network: "n".into(),
            plugin: "p".into(),
            command: "CHECK",
            error: PluginError {
                code: 3,
                msg: "gone".into(),
                details: String::new(),
            },
        };
        assert!(err.is_not_found());
        assert!(!err.is_retryable());
    }
}
