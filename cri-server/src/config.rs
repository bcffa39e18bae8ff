//! cri-server configuration: the TOML file (/etc/cri-server/config.toml) and its defaults.
//! Unknown keys are errors that name the key; command-line flags override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default location of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/cri-server/config.toml";

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid (message names the key and position).
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// How cgroups are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent state (images, snapshots).
    pub root_dir: PathBuf,
    /// Runtime state (sockets, per-boot data).
    pub state_dir: PathBuf,
    /// CRI socket path.
    pub listen: PathBuf,
    /// Registry hosts and credentials.
    pub registry: RegistrySection,
    /// Pod sandbox ("pause") image; never garbage-collected and reported pinned.
    pub sandbox_image: String,
    /// CNI configuration.
    pub cni: CniSection,
    /// cgroupfs or systemd.
    pub cgroup_driver: CgroupDriver,
    /// Streaming server (exec/attach/port-forward) address.
    pub stream_address: String,
    /// Streaming server port (0: pick a free one).
    pub stream_port: u16,
    /// `tracing` filter, e.g. `info` or `cri_server=debug`.
    pub log_level: String,
    /// Runtime handler name → OCI runtime binary.
    pub runtime_handlers: BTreeMap<String, PathBuf>,
    /// Handler used when a pod names none.
    pub default_runtime_handler: String,
    /// cri-monitor binary (default: next to the cri-server executable).
    pub monitor_path: Option<PathBuf>,
}

/// `[registry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySection {
    /// Directory of `<registry>/hosts.toml` files.
    pub config_path: PathBuf,
    /// docker `config.json` with registry credentials.
    pub auth_config: Option<PathBuf>,
}

/// `[cni]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CniSection {
    /// Network configuration files.
    pub conf_dir: PathBuf,
    /// Plugin binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// containerd-style `conf_template`: rendered with the pod CIDR on UpdateRuntimeConfig.
    pub conf_template: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root_dir: "/var/lib/cri-server".into(),
            state_dir: "/run/cri-server".into(),
            listen: "/run/cri-server/cri-server.sock".into(),
            registry: RegistrySection::default(),
            sandbox_image: "registry.k8s.io/pause:3.10".into(),
            cni: CniSection::default(),
            cgroup_driver: CgroupDriver::Cgroupfs,
            stream_address: "127.0.0.1".into(),
            stream_port: 0,
            log_level: "info".into(),
            runtime_handlers: BTreeMap::from([(
                "runc".to_owned(),
                PathBuf::from("/usr/sbin/runc"),
            )]),
            // The native runtime (kina-runtime next to the cri-server binary, or
            // `[runtime_handlers] kina = PATH`).
            default_runtime_handler: "kina".into(),
            monitor_path: None,
        }
    }
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self {
            config_path: "/etc/cri-server/certs.d".into(),
            auth_config: None,
        }
    }
}

impl Default for CniSection {
    fn default() -> Self {
        Self {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            conf_template: None,
        }
    }
}

impl Config {
    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Loads `path`; a missing file is only fine when `optional` (the default path).
    pub fn load(path: &Path, optional: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ConfigError::Read {
                path: path.to_owned(),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse(
            "root_dir = \"/x\"\n[registry]\nconfig_path = \"/h\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.root_dir, PathBuf::from("/x"));
        assert_eq!(c.registry.config_path, PathBuf::from("/h"));
        assert_eq!(c.sandbox_image, "registry.k8s.io/pause:3.10");
        assert_eq!(c.state_dir, PathBuf::from("/run/cri-server"));
    }

    #[test]
    fn unknown_or_bad_keys_are_named() {
        let e =
            Config::parse("[registry]\nconfigpath = \"/h\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("configpath"), "{e}");
        let e = Config::parse("cgroup_driver = \"cgroupv3\"\n", Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("cgroupv3") || e.to_string().contains("cgroup_driver"),
            "{e}"
        );
    }
}
