//! Network configuration lists, loaded the way libcni does: the conf dir's `.conflist`,
//! `.conf` and `.json` files in lexical order, single-plugin files wrapped into a list, and
//! per-plugin configs built with `name`, `cniVersion`, `prevResult` and `runtimeConfig`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::CniError;
use super::result::SUPPORTED_VERSIONS;

/// File extensions libcni reads from a conf dir.
pub const CONF_EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

/// One plugin of a network list.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// The `type`: the binary's name in the bin dirs.
    pub plugin_type: String,
    /// Capabilities the plugin declared with `"capabilities": {"portMappings": true}`.
    pub capabilities: BTreeSet<String>,
    /// The plugin's config object as written.
    pub raw: Map<String, Value>,
}

/// A loaded network configuration list (a `.conflist`, or a wrapped `.conf`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    /// `disableCheck`: CHECK is skipped for this network.
    pub disable_check: bool,
    pub plugins: Vec<PluginConf>,
    /// The list as JSON; what the result cache stores so DEL works if the file changes.
    pub json: Value,
    /// Where it was loaded from.
    pub source: PathBuf,
}

/// Whether `name` is a valid network name (libcni: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
pub fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Compares two CNI versions ("0.4.0" < "1.0.0"); unparsable parts count as 0.
pub fn version_at_least(version: &str, min: &str) -> bool {
    fn parts(v: &str) -> [u32; 3] {
        let mut out = [0; 3];
        for (slot, p) in out.iter_mut().zip(v.split('.')) {
            *slot = p.parse().unwrap_or(0);
        }
        out
    }
    parts(version) >= parts(min)
}

fn bad(path: &Path, reason: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn parse_plugin(path: &Path, idx: usize, value: &Value) -> Result<PluginConf, CniError> {
    let raw = value
        .as_object()
        .ok_or_else(|| bad(path, format!("plugins[{idx}] is not an object")))?
        .clone();
    let plugin_type = match raw.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(bad(path, format!("plugins[{idx}].type is missing"))),
    };
    if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return Err(bad(
            path,
            format!("plugins[{idx}].type {plugin_type:?} is not a plugin name"),
        ));
    }
    let capabilities = match raw.get("capabilities") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Object(caps)) => caps
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect(),
        Some(_) => {
            return Err(bad(
                path,
                format!("plugins[{idx}].capabilities is not an object"),
            ));
        }
    };
    Ok(PluginConf {
        plugin_type,
        capabilities,
        raw,
    })
}

impl NetworkConfigList {
    /// Parses a `.conflist` document.
    pub fn from_conflist(bytes: &[u8], path: &Path) -> Result<Self, CniError> {
        let json: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(path, format!("invalid JSON: {e}")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| bad(path, "not a JSON object"))?;
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            _ => return Err(bad(path, "name is missing")),
        };
        if !valid_network_name(&name) {
            return Err(bad(
                path,
                format!("name {name:?} is not a valid network name"),
            ));
        }
        let cni_version = match obj.get("cniVersion") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(bad(path, "cniVersion is missing")),
        };
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(bad(
                path,
                format!("cniVersion {cni_version:?} is not one of {SUPPORTED_VERSIONS:?}"),
            ));
        }
        let disable_check = match obj.get("disableCheck") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            // libcni also accepts the strings "true"/"false".
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => return Err(bad(path, format!("disableCheck {other} is not a bool"))),
        };
        let plugins = match obj.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => p
                .iter()
                .enumerate()
                .map(|(i, v)| parse_plugin(path, i, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => return Err(bad(path, "plugins is empty")),
            _ => {
                return Err(bad(
                    path,
                    "plugins is missing (a .conflist needs a plugins list)",
                ));
            }
        };
        Ok(Self {
            name,
            cni_version,
            disable_check,
            plugins,
            json,
            source: path.to_path_buf(),
        })
    }

    /// Parses a single-plugin `.conf`/`.json` and wraps it into a list, as libcni's
    /// `ConfListFromConf` does.
    pub fn from_conf(bytes: &[u8], path: &Path) -> Result<Self, CniError> {
        let conf: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(path, format!("invalid JSON: {e}")))?;
        let obj = conf
            .as_object()
            .ok_or_else(|| bad(path, "not a JSON object"))?;
        if obj.contains_key("plugins") && !obj.contains_key("type") {
            return Err(bad(
                path,
                "a network list in a .conf file: rename it .conflist",
            ));
        }
        let mut list = Map::new();
        for key in ["cniVersion", "name"] {
            if let Some(v) = obj.get(key) {
                list.insert(key.to_string(), v.clone());
            }
        }
        list.insert("plugins".into(), Value::Array(vec![conf.clone()]));
        let bytes = serde_json::to_vec(&Value::Object(list)).expect("JSON value serializes");
        Self::from_conflist(&bytes, path)
    }

    /// Loads one file, choosing the format by extension.
    pub fn load(path: &Path) -> Result<Self, CniError> {
        let bytes = std::fs::read(path).map_err(|source| CniError::Io {
            op: "read CNI config",
            path: path.to_path_buf(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "conflist") {
            Self::from_conflist(&bytes, path)
        } else {
            Self::from_conf(&bytes, path)
        }
    }

    /// The plugin config handed to plugin `idx` on stdin: its own object plus the list's
    /// `name` and `cniVersion`, the previous result, and `runtimeConfig` holding the
    /// capability args the plugin declared (libcni `buildOneConfig`).
    pub fn plugin_config(
        &self,
        idx: usize,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Value {
        let plugin = &self.plugins[idx];
        let mut conf = plugin.raw.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let runtime: Map<String, Value> = plugin
            .capabilities
            .iter()
            .filter_map(|cap| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
            .collect();
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        Value::Object(conf)
    }
}

/// The config files of a conf dir that libcni would consider, in lexical order.
/// A missing dir holds none.
pub fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CniError::Io {
                op: "read CNI conf dir",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| CONF_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The first valid network in `dir`. Invalid files are skipped with a warning (as CRI-O
/// does) and named in the error when no file is usable.
pub fn load_first(dir: &Path) -> Result<NetworkConfigList, CniError> {
    let mut skipped = Vec::new();
    for path in conf_files(dir)? {
        match NetworkConfigList::load(&path) {
            Ok(list) => return Ok(list),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping CNI config");
                skipped.push(e.to_string());
            }
        }
    }
    Err(CniError::NoConfig {
        dir: dir.to_path_buf(),
        skipped,
    })
}

#[cfg(test)]
mod tests;
