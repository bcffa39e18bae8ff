//! The user's kubeconfig: which file, and adding or removing a cluster's
//! `kina-<name>` cluster/user/context entries the way kind does for `kind-<name>`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// Errors reading, editing or writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The file could not be read or written.
    #[error("kubeconfig {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file (or the cluster's kubeconfig) is not a kubeconfig.
    #[error("kubeconfig {what}: {message}")]
    Invalid {
        /// Which kubeconfig.
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// The context (and cluster and user) name of a cluster: `kina-<name>`.
pub fn context_name(cluster: &str) -> String {
    format!("kina-{cluster}")
}

/// The kubeconfig to edit: `explicit`, else the first `$KUBECONFIG` entry, else
/// `$HOME/.kube/config`.
pub fn path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return first;
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".kube").join("config")
}

fn invalid(what: &str, message: impl Into<String>) -> KubeconfigError {
    KubeconfigError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

fn parse(text: &str, what: &str) -> Result<Mapping, KubeconfigError> {
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_norway::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(_) => Err(invalid(what, "not a YAML mapping")),
        Err(e) => Err(invalid(what, e.to_string())),
    }
}

/// `kubeconfig` with every cluster's `server` replaced by `server`.
pub fn with_server(kubeconfig: &str, server: &str) -> Result<String, KubeconfigError> {
    let mut doc = parse(kubeconfig, "of the cluster")?;
    if let Some(Value::Sequence(clusters)) = doc.get_mut("clusters") {
        for c in clusters {
            if let Some(Value::Mapping(inner)) = c.get_mut("cluster") {
                inner.insert("server".into(), server.into());
            }
        }
    }
    serde_norway::to_string(&doc).map_err(|e| invalid("of the cluster", e.to_string()))
}

/// kubeadm's `admin.conf` as kina hands it out (kind's `KubeConfig`): the cluster, user and
/// context all named `kina-<cluster>`, the context current, and the server set to `server`.
pub fn from_admin_conf(
    admin: &str,
    cluster: &str,
    server: &str,
) -> Result<String, KubeconfigError> {
    let name = context_name(cluster);
    let mut doc = parse(admin, "of the cluster")?;
    let single = |doc: &mut Mapping, key: &str| -> Result<Mapping, KubeconfigError> {
        match named_list(doc, key).as_slice() {
            [Value::Mapping(m)] => Ok(m.clone()),
            other => Err(invalid(
                "of the cluster",
                format!("admin.conf has {} {key} entries, expected one", other.len()),
            )),
        }
    };
    let mut c = single(&mut doc, "clusters")?;
    let mut u = single(&mut doc, "users")?;
    let mut x = single(&mut doc, "contexts")?;
    c.insert("name".into(), name.as_str().into());
    if let Some(Value::Mapping(inner)) = c.get_mut("cluster") {
        inner.insert("server".into(), server.into());
    }
    u.insert("name".into(), name.as_str().into());
    x.insert("name".into(), name.as_str().into());
    let mut ctx = Mapping::new();
    ctx.insert("cluster".into(), name.as_str().into());
    ctx.insert("user".into(), name.as_str().into());
    x.insert("context".into(), Value::Mapping(ctx));
    doc.insert("clusters".into(), Value::Sequence(vec![Value::Mapping(c)]));
    doc.insert("users".into(), Value::Sequence(vec![Value::Mapping(u)]));
    doc.insert("contexts".into(), Value::Sequence(vec![Value::Mapping(x)]));
    doc.insert("current-context".into(), name.into());
    serde_norway::to_string(&doc).map_err(|e| invalid("of the cluster", e.to_string()))
}

fn named_list<'a>(doc: &'a mut Mapping, key: &str) -> &'a mut Vec<Value> {
    if !matches!(doc.get(key), Some(Value::Sequence(_))) {
        doc.insert(key.into(), Value::Sequence(Vec::new()));
    }
    match doc.get_mut(key) {
        Some(Value::Sequence(s)) => s,
        _ => unreachable!("just inserted a sequence"),
    }
}

fn has_name(v: &Value, name: &str) -> bool {
    v.get("name").and_then(Value::as_str) == Some(name)
}

fn read(path: &Path) -> Result<String, KubeconfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(KubeconfigError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

fn write(path: &Path, doc: &Mapping) -> Result<(), KubeconfigError> {
    let io = |error| KubeconfigError::Io {
        path: path.to_path_buf(),
        error,
    };
    let text = serde_norway::to_string(doc).map_err(|e| invalid("to write", e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("kina-tmp-{}", std::process::id()));
    // Credentials inside: readable by the owner only, as kubectl writes it.
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true).mode(0o600);
    open.open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
}

/// Merge a cluster's kubeconfig (entries named `kina-<cluster>`) into the file at `path`
/// and make its context current.
pub fn merge(path: &Path, cluster: &str, kubeconfig: &str) -> Result<(), KubeconfigError> {
    let name = context_name(cluster);
    let what = format!("{}", path.display());
    let mut doc = parse(&read(path)?, &what)?;
    let mut src = parse(kubeconfig, "of the cluster")?;
    doc.entry("apiVersion".into()).or_insert("v1".into());
    doc.entry("kind".into()).or_insert("Config".into());
    for key in ["clusters", "users", "contexts"] {
        let entries: Vec<Value> = named_list(&mut src, key)
            .iter()
            .filter(|v| has_name(v, &name))
            .cloned()
            .collect();
        if entries.is_empty() {
            return Err(invalid(
                "of the cluster",
                format!("has no {key} entry named {name}"),
            ));
        }
        let list = named_list(&mut doc, key);
        list.retain(|v| !has_name(v, &name));
        list.extend(entries);
    }
    doc.insert("current-context".into(), name.into());
    write(path, &doc)
}

/// Remove a cluster's entries from the file at `path`; `false` when it had none.
pub fn remove(path: &Path, cluster: &str) -> Result<bool, KubeconfigError> {
    let name = context_name(cluster);
    let text = read(path)?;
    if text.is_empty() {
        return Ok(false);
    }
    let mut doc = parse(&text, &format!("{}", path.display()))?;
    let mut changed = false;
    for key in ["clusters", "users", "contexts"] {
        if let Some(Value::Sequence(list)) = doc.get_mut(key) {
            let before = list.len();
            list.retain(|v| !has_name(v, &name));
            changed |= list.len() != before;
        }
    }
    if doc.get("current-context").and_then(Value::as_str) == Some(name.as_str()) {
        doc.insert("current-context".into(), "".into());
        changed = true;
    }
    if changed {
        write(path, &doc)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1
kind: Config
clusters:
- name: kina-a
  cluster:
    server: https://127.0.0.1:40000
users:
- name: kina-a
  user:
    token: t
contexts:
- name: kina-a
  context:
    cluster: kina-a
    user: kina-a
current-context: kina-a
";

    #[test]
    fn admin_conf_is_renamed_and_pointed_at_the_host() {
        let admin = "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://172.18.0.2:6443
  name: a
contexts:
- context:
    cluster: a
    user: kubernetes-admin
  name: kubernetes-admin@a
current-context: kubernetes-admin@a
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
";
        let kc = from_admin_conf(admin, "a", "https://127.0.0.1:40000").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        merge(&p, "a", &kc).unwrap();
        let merged = std::fs::read_to_string(&p).unwrap();
        assert!(
            merged.contains("server: https://127.0.0.1:40000"),
            "{merged}"
        );
        assert!(merged.contains("current-context: kina-a"), "{merged}");
        assert!(
            merged.contains("certificate-authority-data: Q0E="),
            "{merged}"
        );
        assert!(!merged.contains("kubernetes-admin"), "{merged}");
        assert!(from_admin_conf("clusters: []", "a", "x").is_err());
    }

    #[test]
    fn merge_then_remove_leaves_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: x}\ncurrent-context: other\n",
        )
        .unwrap();
        merge(&p, "a", KC).unwrap();
        let doc = parse(&std::fs::read_to_string(&p).unwrap(), "t").unwrap();
        assert_eq!(doc["current-context"].as_str(), Some("kina-a"));
        assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 2);
        assert!(remove(&p, "a").unwrap());
        let doc = parse(&std::fs::read_to_string(&p).unwrap(), "t").unwrap();
        assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 1);
        assert_eq!(doc["contexts"].as_sequence().unwrap().len(), 0);
        assert_eq!(doc["current-context"].as_str(), Some(""));
        assert!(!remove(&p, "a").unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "kubeconfig mode {mode:o}");
    }

    #[test]
    fn with_server_rewrites_every_cluster() {
        let out = with_server(KC, "https://10.89.0.2:6443").unwrap();
        assert!(out.contains("https://10.89.0.2:6443"));
        assert!(!out.contains("40000"));
    }
}
