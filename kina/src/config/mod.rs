//! kind v1alpha4 cluster configuration: types, defaults, validation.
//!
//! [`load`] reads a config file (or stdin for `-`), checks `kind`/`apiVersion`, decodes
//! strictly (unknown fields are errors), applies `--name`, resolves relative mount
//! paths, applies kind's defaults, validates, and translates containerd patches. Every
//! error names the file, the field path and the line.

pub mod containerd;
pub mod defaults;
pub mod locate;
pub mod types;
pub mod validate;

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

pub use defaults::{DEFAULT_CLUSTER_NAME, DEFAULT_NODE_IMAGE};
pub use locate::FieldPath;
pub use types::*;

/// A config problem tied to a field and, when the field is in the file, its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedError {
    /// Field path, e.g. `nodes[1].extraPortMappings[0].hostPort`.
    pub field: String,
    /// 1-based line in the config file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or stdin) could not be read.
    #[error("reading cluster config {source_name}: {error}")]
    Read {
        /// File name, or `<stdin>`.
        source_name: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The YAML is malformed, a value has the wrong type, or a field is unknown.
    #[error("cluster config {source_name}: line {line}, column {column}: {message}")]
    Decode {
        /// File name, or `<stdin>`.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The decoder's message, starting with the field path when there is one.
        message: String,
    },
    /// The document is not a `kind.x-k8s.io/v1alpha4` `Cluster`.
    #[error("cluster config {source_name}: {0}", .error)]
    Type {
        /// File name, or `<stdin>`.
        source_name: String,
        /// What is wrong, with the line.
        error: LocatedError,
    },
    /// The config decodes but breaks kind's rules.
    #[error("invalid cluster config {source_name}:{}", list(.errors))]
    Invalid {
        /// File name, or `<stdin>`.
        source_name: String,
        /// Every problem found.
        errors: Vec<LocatedError>,
    },
}

fn list(errors: &[LocatedError]) -> String {
    errors.iter().map(|e| format!("\n  - {e}")).collect()
}

/// A loaded, defaulted and validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The cluster, with kind's defaults applied.
    pub cluster: Cluster,
    /// What the containerd patches mean for cri-server, with warnings for the rest.
    pub containerd: containerd::Translation,
}

/// Name of a config source for messages: the path, or `<stdin>` for `-`.
fn source_label(path: &str) -> String {
    if path == "-" {
        "<stdin>".to_string()
    } else {
        format!("{path:?}")
    }
}

/// Read and load a config file; `-` reads stdin. `name` (from `--name`) wins over the
/// file's `name`.
pub fn load(path: &str, name: Option<&str>) -> Result<Loaded, ConfigError> {
    let source_name = source_label(path);
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|error| ConfigError::Read {
                source_name: source_name.clone(),
                error,
            })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            source_name: source_name.clone(),
            error,
        })?
    };
    let cwd = std::env::current_dir().map_err(|error| ConfigError::Read {
        source_name: source_name.clone(),
        error,
    })?;
    load_str(&text, &source_name, name, &cwd)
}

/// The config used when no file is given.
pub fn default_config(name: Option<&str>) -> Result<Loaded, ConfigError> {
    let mut cluster = Cluster {
        kind: KIND.into(),
        api_version: API_VERSION.into(),
        ..Cluster::default()
    };
    finish(&mut cluster, "", "--name", name, Path::new("/"))?;
    Ok(Loaded {
        cluster,
        containerd: containerd::Translation::default(),
    })
}

/// Load a config from text. Relative `extraMounts[].hostPath`s are resolved against `cwd`.
pub fn load_str(
    text: &str,
    source_name: &str,
    name: Option<&str>,
    cwd: &Path,
) -> Result<Loaded, ConfigError> {
    let mut cluster = parse(text, source_name)?;
    finish(&mut cluster, text, source_name, name, cwd)?;
    let containerd = containerd::translate(
        &cluster.containerd_config_patches,
        &cluster.containerd_config_patches_json6902,
    )
    .map_err(|errs| ConfigError::Invalid {
        source_name: source_name.to_string(),
        errors: errs.into_iter().map(|e| locate(text, e)).collect(),
    })?;
    Ok(Loaded {
        cluster,
        containerd,
    })
}

fn finish(
    cluster: &mut Cluster,
    text: &str,
    source_name: &str,
    name: Option<&str>,
    cwd: &Path,
) -> Result<(), ConfigError> {
    if let Some(n) = name {
        cluster.name = n.to_string();
    }
    for node in &mut cluster.nodes {
        for m in &mut node.extra_mounts {
            if !m.host_path.is_empty() && !m.host_path.starts_with('/') {
                let joined: std::path::PathBuf = cwd
                    .join(&m.host_path)
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                m.host_path = joined.to_string_lossy().into_owned();
            }
        }
    }
    defaults::set_defaults(cluster);
    let errs = validate::validate(cluster);
    if errs.is_empty() {
        return Ok(());
    }
    let errors = errs
        .into_iter()
        .map(|e| {
            let name_from_flag = name.is_some() && e.path == FieldPath::root().key("name");
            let mut l = locate(text, e);
            if name_from_flag {
                l.field = "--name".into();
                l.line = None;
            }
            l
        })
        .collect();
    Err(ConfigError::Invalid {
        source_name: source_name.to_string(),
        errors,
    })
}

fn locate(text: &str, e: validate::FieldError) -> LocatedError {
    LocatedError {
        line: locate::line_of(text, &e.path),
        field: e.path.to_string(),
        message: e.message,
    }
}

/// The type header, read leniently before the strict decode.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
}

/// Decode a config strictly, without defaults or validation.
pub fn parse(text: &str, source_name: &str) -> Result<Cluster, ConfigError> {
    let decode_err = |e: serde_norway::Error| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut message = e.to_string();
        if let Some(pos) = message.rfind(" at line ") {
            message.truncate(pos);
        }
        ConfigError::Decode {
            source_name: source_name.to_string(),
            line,
            column,
            message,
        }
    };
    let type_err = |field: &str, message: String| ConfigError::Type {
        source_name: source_name.to_string(),
        error: LocatedError {
            field: field.to_string(),
            line: locate::line_of(text, &FieldPath::root().key(field)),
            message,
        },
    };
    let is_empty = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if is_empty {
        return Err(type_err(
            "apiVersion",
            format!(
                "the config is empty; it must start with `kind: {KIND}` and `apiVersion: {API_VERSION}`"
            ),
        ));
    }
    let meta: TypeMeta = serde_norway::from_str(text).map_err(decode_err)?;
    match meta.api_version.as_deref() {
        Some(API_VERSION) => {}
        None => {
            return Err(type_err(
                "apiVersion",
                format!("apiVersion is missing; kina reads `apiVersion: {API_VERSION}`"),
            ));
        }
        Some(other) => {
            return Err(type_err(
                "apiVersion",
                format!("unsupported apiVersion {other:?}; kina reads `apiVersion: {API_VERSION}`"),
            ));
        }
    }
    match meta.kind.as_deref() {
        Some(KIND) => {}
        None => {
            return Err(type_err(
                "kind",
                format!("kind is missing; a cluster config has `kind: {KIND}`"),
            ));
        }
        Some(other) => {
            return Err(type_err(
                "kind",
                format!("unsupported kind {other:?}; a cluster config has `kind: {KIND}`"),
            ));
        }
    }
    serde_norway::from_str(text).map_err(decode_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n";

    #[test]
    fn dns_search_unset_empty_and_listed_stay_distinct() {
        let root = Path::new("/");
        let unset = load_str(HEAD, "t", None, root).unwrap();
        assert_eq!(unset.cluster.networking.dns_search, None);
        let empty = format!("{HEAD}networking:\n  dnsSearch: []\n");
        let empty = load_str(&empty, "t", None, root).unwrap();
        assert_eq!(empty.cluster.networking.dns_search, Some(vec![]));
        let listed = format!("{HEAD}networking:\n  dnsSearch:\n  - corp.example\n");
        let listed = load_str(&listed, "t", None, root).unwrap();
        assert_eq!(
            listed.cluster.networking.dns_search,
            Some(vec!["corp.example".to_string()])
        );
        let bad = format!("{HEAD}networking:\n  dnsSearch:\n  - corp.example\n  - \"\"\n");
        let Err(ConfigError::Invalid { errors, .. }) = load_str(&bad, "t", None, root) else {
            panic!("empty search domain accepted")
        };
        assert_eq!(errors[0].field, "networking.dnsSearch[1]");
        assert_eq!(errors[0].line, Some(6));
    }

    #[test]
    fn default_config_is_valid_and_named() {
        let l = default_config(Some("dev")).unwrap();
        assert_eq!(l.cluster.name, "dev");
        assert_eq!(l.cluster.nodes.len(), 1);
        assert!(matches!(
            default_config(Some("Dev")),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn json_configs_load_too() {
        let json = r#"{"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [{"role": "control-plane"}, {"role": "worker"}]}"#;
        let l = load_str(json, "t", None, Path::new("/")).unwrap();
        assert_eq!(l.cluster.nodes[1].role, NodeRole::Worker);
    }
}
