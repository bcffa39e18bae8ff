//! `containerdConfigPatches`: kind patches containerd's TOML config; kina's nodes run
//! cri-server instead, so the patches that have a cri-server meaning are translated and
//! every other setting is reported as a warning naming the patch and the key.
//!
//! Translated today: registry mirrors
//! (`[plugins."io.containerd.grpc.v1.cri".registry.mirrors."HOST"] endpoint = [...]`) and
//! the registry hosts directory (`registry.config_path`), under containerd 1.x's
//! `io.containerd.grpc.v1.cri` and containerd 2.x's `io.containerd.cri.v1.images`.

use std::collections::BTreeMap;

use super::locate::FieldPath;
use super::validate::FieldError;

const CRI_PLUGINS: [&str; 2] = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"];

/// The registry settings for cri-server collected from all patches (later patches win).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryConfig {
    /// Registry host → mirror endpoints, tried in order.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Directory with per-host `hosts.toml` files.
    pub config_path: Option<String>,
}

impl RegistryConfig {
    /// The `hosts.toml` (containerd's registry hosts format, which cri-server reads) for
    /// one mirrored host, or `None` when the host has no mirrors.
    pub fn hosts_toml(&self, host: &str) -> Option<String> {
        let endpoints = self.mirrors.get(host)?;
        let mut out = format!("server = {}\n", toml_str(&format!("https://{host}")));
        for ep in endpoints {
            out.push_str(&format!(
                "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                toml_str(ep)
            ));
        }
        Some(out)
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// What the containerd patches mean for cri-server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translation {
    /// Registry configuration.
    pub registry: RegistryConfig,
    /// Settings that were ignored, one message per patch.
    pub warnings: Vec<String>,
}

/// Translate `containerdConfigPatches` and `containerdConfigPatchesJSON6902`.
pub fn translate(patches: &[String], json6902: &[String]) -> Result<Translation, Vec<FieldError>> {
    let mut t = Translation::default();
    let mut errs = Vec::new();
    for (i, patch) in patches.iter().enumerate() {
        let path = FieldPath::root().key("containerdConfigPatches").index(i);
        let table: toml::Table = match patch.parse() {
            Ok(t) => t,
            Err(e) => {
                errs.push(FieldError {
                    path,
                    message: format!("patch is not valid TOML: {}", e.message()),
                });
                continue;
            }
        };
        let mut ignored = Vec::new();
        for (key, value) in &table {
            match (key.as_str(), value) {
                ("plugins", toml::Value::Table(plugins)) => {
                    for (name, plugin) in plugins {
                        let at = format!("plugins.{}", quote_key(name));
                        match plugin {
                            toml::Value::Table(p) if CRI_PLUGINS.contains(&name.as_str()) => {
                                cri_plugin(p, &at, &mut t.registry, &mut ignored, &path, &mut errs)
                            }
                            v => leaves(v, &at, &mut ignored),
                        }
                    }
                }
                (k, v) => leaves(v, &quote_key(k), &mut ignored),
            }
        }
        if !ignored.is_empty() {
            t.warnings.push(format!(
                "{path}: containerd settings without a cri-server equivalent were ignored: {}",
                ignored.join(", ")
            ));
        }
    }
    for i in 0..json6902.len() {
        t.warnings.push(format!(
            "containerdConfigPatchesJSON6902[{i}]: JSON 6902 patches to containerd's config have no cri-server equivalent and were ignored"
        ));
    }
    if errs.is_empty() { Ok(t) } else { Err(errs) }
}

fn cri_plugin(
    p: &toml::Table,
    at: &str,
    reg: &mut RegistryConfig,
    ignored: &mut Vec<String>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (k, v) in p {
        let here = format!("{at}.{}", quote_key(k));
        let toml::Value::Table(registry) = v else {
            ignored.push(here);
            continue;
        };
        if k != "registry" {
            leaves(v, &here, ignored);
            continue;
        }
        for (rk, rv) in registry {
            let rhere = format!("{here}.{}", quote_key(rk));
            match (rk.as_str(), rv) {
                ("config_path", toml::Value::String(s)) => reg.config_path = Some(s.clone()),
                ("mirrors", toml::Value::Table(mirrors)) => {
                    for (host, m) in mirrors {
                        let mhere = format!("{rhere}.{}", quote_key(host));
                        let toml::Value::Table(mt) = m else {
                            errs.push(FieldError {
                                path: path.clone(),
                                message: format!("{mhere}: a registry mirror is a table"),
                            });
                            continue;
                        };
                        for (ok, ov) in mt.iter().filter(|(k, _)| *k != "endpoint") {
                            leaves(ov, &format!("{mhere}.{}", quote_key(ok)), ignored);
                        }
                        let Some(endpoint) = mt.get("endpoint") else {
                            // kind accepts a mirror without endpoints; it changes nothing.
                            ignored.push(format!("{mhere} (no endpoint)"));
                            continue;
                        };
                        let list: Option<Vec<String>> = endpoint.as_array().and_then(|a| {
                            a.iter().map(|e| e.as_str().map(str::to_string)).collect()
                        });
                        match list {
                            Some(l) if l.is_empty() => ignored.push(format!("{mhere} (no endpoint)")),
                            Some(l) => {
                                reg.mirrors.insert(host.clone(), l);
                            }
                            None => errs.push(FieldError {
                                path: path.clone(),
                                message: format!(
                                    "{mhere}.endpoint: must be a list of URLs, e.g. [\"http://registry:5000\"]"
                                ),
                            }),
                        }
                    }
                }
                (_, v) => leaves(v, &rhere, ignored),
            }
        }
    }
}

/// Record every leaf key under `v` as ignored.
fn leaves(v: &toml::Value, at: &str, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                leaves(v, &format!("{at}.{}", quote_key(k)), out);
            }
        }
        _ => out.push(at.to_string()),
    }
}

fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_patch_becomes_hosts_config() {
        let p = "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"localhost:5000\"]\n  endpoint = [\"http://kind-registry:5000\"]".to_string();
        let t = translate(&[p], &[]).unwrap();
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        assert_eq!(
            t.registry.mirrors["localhost:5000"],
            vec!["http://kind-registry:5000".to_string()]
        );
        let hosts = t.registry.hosts_toml("localhost:5000").unwrap();
        let parsed: toml::Table = hosts.parse().unwrap();
        assert_eq!(parsed["server"].as_str(), Some("https://localhost:5000"));
        assert!(parsed["host"].get("http://kind-registry:5000").is_some());
    }

    #[test]
    fn config_path_is_kept_and_other_settings_warn() {
        let p = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"".to_string();
        let t = translate(&[p], &["[]".into()]).unwrap();
        assert_eq!(
            t.registry.config_path.as_deref(),
            Some("/etc/containerd/certs.d")
        );
        assert_eq!(t.warnings.len(), 2);
        assert!(t.warnings[0].contains("containerdConfigPatches[0]"));
        assert!(t.warnings[0].contains("containerd.snapshotter"));
        assert!(t.warnings[1].contains("containerdConfigPatchesJSON6902[0]"));
    }

    #[test]
    fn bad_toml_is_an_error_naming_the_patch() {
        let errs = translate(&["ok = 1".into(), "[plugins".into()], &[]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path.to_string(), "containerdConfigPatches[1]");
        let bad =
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"r:5000\"]\nendpoint = 5";
        let errs = translate(&[bad.into()], &[]).unwrap_err();
        assert!(errs[0].message.contains("endpoint"), "{}", errs[0].message);
    }
}
