//! The cluster-state store: what kina knows about its clusters and their nodes.
//!
//! One JSON file per cluster, `<state dir>/clusters/<name>/cluster.json`, holding the
//! cluster's nodes with their roles, images, addresses and published ports, the API
//! server endpoint and the admin kubeconfig. The state dir is `/var/lib/kina` unless
//! `KINA_STATE_DIR` names another. Writes are atomic (temp file, fsync, rename, fsync of
//! the directory), so a crash leaves either the old or the new record, never half of one,
//! and every change holds an exclusive `flock` on `<state dir>/.lock`, so two kina
//! processes changing the same cluster cannot lose each other's update.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::provider::Role;

/// Where state lives unless [`STATE_DIR_ENV`] says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kina";
/// Environment variable overriding the state dir.
pub const STATE_DIR_ENV: &str = "KINA_STATE_DIR";
const RECORD: &str = "cluster.json";

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error("cluster state: {op} {}: {error}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A record exists but is not valid JSON for its type.
    #[error("cluster state: {} is corrupt: {error}", path.display())]
    Corrupt {
        /// The record.
        path: PathBuf,
        /// The decode error.
        error: serde_json::Error,
    },
    /// A cluster name that cannot name a state directory.
    #[error("cluster state: {name:?} is not a valid cluster name")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
}

/// Where the API server of a cluster listens on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiServerEndpoint {
    /// Host address.
    pub address: IpAddr,
    /// Host port.
    pub port: u16,
}

/// A host port published to a node port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// Host address listened on.
    pub listen_address: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Node port.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// One node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node (and container) name, e.g. `kina-control-plane`.
    pub name: String,
    /// What the node is for.
    pub role: Role,
    /// Node image.
    pub image: String,
    /// IPv4 address on the cluster network.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address on the cluster network.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortRecord>,
}

/// Everything kina records about one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Cluster name.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// API server endpoint on the host, once known.
    #[serde(default)]
    pub api_server: Option<ApiServerEndpoint>,
    /// Admin kubeconfig (external endpoint), once known.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<NodeRecord>,
}

impl ClusterRecord {
    /// A record with no nodes yet, created now.
    pub fn new(name: &str) -> Self {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        ClusterRecord {
            name: name.to_string(),
            created_unix,
            api_server: None,
            kubeconfig: None,
            nodes: Vec::new(),
        }
    }
}

/// The store rooted at a state dir.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError + use<> {
    let path = path.to_path_buf();
    move |error| StateError::Io { op, path, error }
}

impl StateStore {
    /// A store rooted at `root` (created lazily on first write).
    pub fn open(root: impl Into<PathBuf>) -> Self {
        StateStore { root: root.into() }
    }

    /// The store named by `KINA_STATE_DIR`, else `/var/lib/kina`.
    pub fn from_env() -> Self {
        match std::env::var_os(STATE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::open(dir),
            _ => Self::open(DEFAULT_STATE_DIR),
        }
    }

    /// The state dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn clusters_dir(&self) -> PathBuf {
        self.root.join("clusters")
    }

    fn cluster_dir(&self, name: &str) -> Result<PathBuf, StateError> {
        if !crate::config::validate::valid_name(name) || name == "." || name == ".." {
            return Err(StateError::InvalidName {
                name: name.to_string(),
            });
        }
        Ok(self.clusters_dir().join(name))
    }

    /// Names of all recorded clusters, sorted.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let dir = self.clusters_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join(RECORD).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The record of a cluster, if there is one.
    pub fn get(&self, name: &str) -> Result<Option<ClusterRecord>, StateError> {
        let path = self.cluster_dir(name)?.join(RECORD);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|error| StateError::Corrupt { path, error })
    }

    /// Hold the store's exclusive lock while `f` runs.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, StateError>) -> Result<T, StateError> {
        fs::create_dir_all(&self.root).map_err(io("creating", &self.root))?;
        let path = self.root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        let _lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io("locking", &path)(errno.into()))?;
        f()
    }

    /// Change a cluster's record under the store lock: `f` gets the current record (if
    /// any) and returns the new one, or `None` to delete it.
    pub fn update<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<ClusterRecord>) -> (Option<ClusterRecord>, T),
    ) -> Result<T, StateError> {
        self.locked(|| {
            let (new, out) = f(self.get(name)?);
            match new {
                Some(rec) if rec.name == name => self.write(&rec)?,
                Some(rec) => {
                    return Err(StateError::InvalidName {
                        name: format!("{} (updating {name})", rec.name),
                    });
                }
                None => {
                    self.remove_unlocked(name)?;
                }
            }
            Ok(out)
        })
    }

    /// Write (create or replace) a cluster record atomically.
    pub fn put(&self, record: &ClusterRecord) -> Result<(), StateError> {
        self.locked(|| self.write(record))
    }

    fn write(&self, record: &ClusterRecord) -> Result<(), StateError> {
        let dir = self.cluster_dir(&record.name)?;
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = dir.join(RECORD);
        let tmp = dir.join(format!(".{RECORD}.tmp-{}", std::process::id()));
        let data = serde_json::to_vec_pretty(record).map_err(|error| StateError::Corrupt {
            path: path.clone(),
            error,
        })?;
        let write = || -> std::io::Result<()> {
            // Records hold the admin kubeconfig: owner-only.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io("writing", &path)(e)
        })
    }

    /// Delete a cluster's record; `false` when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, StateError> {
        self.cluster_dir(name)?;
        self.locked(|| self.remove_unlocked(name))
    }

    fn remove_unlocked(&self, name: &str) -> Result<bool, StateError> {
        let dir = self.cluster_dir(name)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("removing", &dir)(e)),
        }
    }

    /// Drop nodes from a cluster's record; the record goes when no node is left.
    /// Returns the names that were recorded.
    pub fn remove_nodes(&self, cluster: &str, nodes: &[String]) -> Result<Vec<String>, StateError> {
        if self.get(cluster)?.is_none() {
            return Ok(Vec::new()); // nothing to change; do not create the state dir
        }
        self.update(cluster, |rec| {
            let Some(mut rec) = rec else {
                return (None, Vec::new());
            };
            let (gone, kept): (Vec<_>, Vec<_>) =
                rec.nodes.into_iter().partition(|n| nodes.contains(&n.name));
            rec.nodes = kept;
            let gone = gone.into_iter().map(|n| n.name).collect();
            ((!rec.nodes.is_empty()).then_some(rec), gone)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            role: Role::Worker,
            image: "img".into(),
            ipv4: Some(Ipv4Addr::new(10, 89, 0, 2)),
            ipv6: None,
            ports: vec![],
        }
    }

    #[test]
    fn put_get_list_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path());
        assert!(store.list().unwrap().is_empty());
        let mut rec = ClusterRecord::new("b");
        rec.nodes = vec![node("b-control-plane"), node("b-worker")];
        store.put(&rec).unwrap();
        store.put(&ClusterRecord::new("a")).unwrap();
        assert_eq!(store.list().unwrap(), vec!["a", "b"]);
        assert_eq!(store.get("b").unwrap().unwrap(), rec);
        assert_eq!(
            store.remove_nodes("b", &["b-worker".into()]).unwrap(),
            vec!["b-worker".to_string()]
        );
        assert_eq!(store.get("b").unwrap().unwrap().nodes.len(), 1);
        store
            .remove_nodes("b", &["b-control-plane".into()])
            .unwrap();
        assert!(store.get("b").unwrap().is_none());
        assert!(store.remove("a").unwrap());
        assert!(!store.remove("a").unwrap());
        // no temp files left behind
        assert!(store.list().unwrap().is_empty());
        store.put(&ClusterRecord::new("c")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("clusters/c").join(RECORD))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "record mode {mode:o}");
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path());
        store.put(&ClusterRecord::new("c")).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .update("c", |rec| {
                            let mut rec = rec.unwrap();
                            rec.nodes.push(node(&format!("c-worker{i}")));
                            (Some(rec), ())
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("c").unwrap().unwrap().nodes.len(), 8);
    }

    #[test]
    fn names_cannot_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path());
        for bad in ["..", ".", "a/b", "", "A"] {
            assert!(matches!(
                store.get(bad),
                Err(StateError::InvalidName { .. })
            ));
        }
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path());
        let d = dir.path().join("clusters/x");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(RECORD), b"{not json").unwrap();
        let e = store.get("x").unwrap_err().to_string();
        assert!(e.contains("clusters/x/cluster.json"), "{e}");
    }
}
