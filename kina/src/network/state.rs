//! Persistent network state: one JSON record per cluster (network, node leases, published
//! ports) plus the host sysctls kina changed, all under `<state_dir>/network/` and serialized by
//! an exclusive `flock` held for the whole of each operation.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::NetworkError;
use super::ports::PublishedPort;
use super::sysctl::SysctlChange;
use super::{ClusterNetwork, NodeAddresses};

/// Format version written into every record.
const VERSION: u32 = 1;

/// Everything kina knows about one cluster's network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterRecord {
    pub version: u32,
    pub network: ClusterNetwork,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl ClusterRecord {
    pub(crate) fn new(network: ClusterNetwork) -> Self {
        Self {
            version: VERSION,
            network,
            nodes: BTreeMap::new(),
        }
    }

    /// All published ports of all nodes.
    pub(crate) fn ports(&self) -> impl Iterator<Item = &PublishedPort> {
        self.nodes.values().flat_map(|n| n.ports.iter())
    }
}

/// A node's lease and published ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub addresses: NodeAddresses,
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
}

/// Host-wide changes kina made, undone when the last cluster goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HostRecord {
    #[serde(default)]
    pub sysctls: Vec<SysctlChange>,
}

/// The locked state directory. Dropping it releases the lock.
pub(crate) struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    /// Creates `<state_dir>/network/` if needed and takes the exclusive lock (blocking).
    pub(crate) fn lock(state_dir: &Path) -> Result<Self, NetworkError> {
        let dir = state_dir.join("network");
        let clusters = dir.join("clusters");
        fs::create_dir_all(&clusters).map_err(|e| NetworkError::state(&clusters, e))?;
        let lock_path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| NetworkError::state(&lock_path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| NetworkError::state(&lock_path, errno.into()))?;
        Ok(Self { dir, _lock: lock })
    }

    fn cluster_path(&self, cluster: &str) -> PathBuf {
        self.dir.join("clusters").join(format!("{cluster}.json"))
    }

    fn host_path(&self) -> PathBuf {
        self.dir.join("host.json")
    }

    /// The record of `cluster`, if any.
    pub(crate) fn load(&self, cluster: &str) -> Result<Option<ClusterRecord>, NetworkError> {
        read_json(&self.cluster_path(cluster))
    }

    /// Writes the record of its cluster atomically.
    pub(crate) fn save(&self, record: &ClusterRecord) -> Result<(), NetworkError> {
        write_json(&self.cluster_path(&record.network.name), record)
    }

    /// Forgets `cluster` (no error if it was never recorded).
    pub(crate) fn remove(&self, cluster: &str) -> Result<(), NetworkError> {
        let path = self.cluster_path(cluster);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::state(path, e)),
            _ => Ok(()),
        }
    }

    /// Records of every cluster.
    pub(crate) fn all(&self) -> Result<Vec<ClusterRecord>, NetworkError> {
        let dir = self.dir.join("clusters");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| NetworkError::state(&dir, e))? {
            let path = entry.map_err(|e| NetworkError::state(&dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(record) = read_json(&path)?
            {
                out.push(record);
            }
        }
        out.sort_by(|a: &ClusterRecord, b| a.network.name.cmp(&b.network.name));
        Ok(out)
    }

    /// Host-wide changes on record.
    pub(crate) fn host(&self) -> Result<HostRecord, NetworkError> {
        Ok(read_json(&self.host_path())?.unwrap_or_default())
    }

    /// Replaces the host-wide record.
    pub(crate) fn save_host(&self, host: &HostRecord) -> Result<(), NetworkError> {
        write_json(&self.host_path(), host)
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, NetworkError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NetworkError::state(path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| NetworkError::StateFormat {
            path: path.to_path_buf(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NetworkError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|source| NetworkError::StateFormat {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file = File::create(&tmp).map_err(|e| NetworkError::state(&tmp, e))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| NetworkError::state(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| NetworkError::state(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::IpFamily;

    fn network(name: &str) -> ClusterNetwork {
        ClusterNetwork {
            name: name.into(),
            family: IpFamily::Ipv4,
            bridge: "kina-x".into(),
            v4: Some("172.18.0.0/16".parse().unwrap()),
            v6: None,
            gateway4: Some("172.18.0.1".parse().unwrap()),
            gateway6: None,
        }
    }

    #[test]
    fn records_round_trip_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::lock(dir.path()).unwrap();
        assert!(store.load("a").unwrap().is_none());
        store.save(&ClusterRecord::new(network("b"))).unwrap();
        store.save(&ClusterRecord::new(network("a"))).unwrap();
        let all = store.all().unwrap();
        assert_eq!(
            all.iter()
                .map(|r| r.network.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(store.load("a").unwrap().unwrap().network, network("a"));
        store.remove("a").unwrap();
        store.remove("a").unwrap();
        assert!(store.load("a").unwrap().is_none());
    }

    #[test]
    fn corrupt_record_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::lock(dir.path()).unwrap();
        let path = dir.path().join("network/clusters/bad.json");
        fs::write(&path, "{not json").unwrap();
        let err = store.load("bad").unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("corrupt"), "{err}");
    }
}
