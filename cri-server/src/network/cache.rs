//! The on-disk result cache (libcni's `/var/lib/cni/results/<net>-<cid>-<ifname>`, under our
//! own state dir): what ADD was called with and what it returned, so DEL and CHECK work after
//! a restart or a change of the conf dir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::CniError;

/// Format marker of a cache entry.
pub const CACHE_KIND: &str = "kinaCniCacheV1";

/// One cached attachment of a container to a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub kind: String,
    pub container_id: String,
    pub if_name: String,
    pub network_name: String,
    /// The network list ADD used.
    pub config: Value,
    /// `CNI_ARGS` as passed.
    pub cni_args: String,
    /// The capability args (portMappings, bandwidth, ...) ADD got.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The netns path ADD ran in.
    #[serde(default)]
    pub netns: String,
    /// The final result; `None` while ADD is in progress (so a crash mid-ADD still leaves
    /// a record DEL can use).
    #[serde(default)]
    pub result: Option<Value>,
}

/// The cache directory and its file naming.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CniError + 'a {
    move |source| CniError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl ResultCache {
    /// A cache keeping its files in `<cache_dir>/results`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("results"),
        }
    }

    /// The file of one attachment.
    pub fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{if_name}"))
    }

    /// Writes an entry atomically (temp file + rename).
    pub fn store(&self, entry: &CacheEntry) -> Result<PathBuf, CniError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create CNI cache dir", &self.dir))?;
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        // Not `with_extension`: network names and container ids may contain dots.
        let tmp = self.dir.join(format!(
            ".{}-{}-{}.tmp",
            entry.network_name, entry.container_id, entry.if_name
        ));
        let bytes = serde_json::to_vec(entry).expect("cache entry serializes");
        std::fs::write(&tmp, bytes).map_err(io("write CNI cache", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename CNI cache", &path))?;
        Ok(path)
    }

    /// Reads one entry; `None` when there is none.
    pub fn load(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Result<Option<CacheEntry>, CniError> {
        let path = self.path(network, container_id, if_name);
        match std::fs::read(&path) {
            Ok(bytes) => Self::decode(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read CNI cache", &path)(e)),
        }
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<CacheEntry, CniError> {
        let entry: CacheEntry =
            serde_json::from_slice(bytes).map_err(|e| CniError::CacheCorrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        if entry.kind != CACHE_KIND {
            return Err(CniError::CacheCorrupt {
                path: path.to_path_buf(),
                reason: format!("kind {:?}, want {CACHE_KIND:?}", entry.kind),
            });
        }
        Ok(entry)
    }

    /// Every entry of a container, whatever network it was attached to. Corrupt files are
    /// reported by path (with a warning) and otherwise skipped.
    pub fn entries_for(&self, container_id: &str) -> Result<Vec<(PathBuf, CacheEntry)>, CniError> {
        let needle = format!("-{container_id}-");
        let mut out = self.scan(|name| name.contains(&needle))?;
        out.retain(|(_, e)| e.container_id == container_id);
        Ok(out)
    }

    /// Every readable entry (for garbage collection after a restart).
    pub fn entries(&self) -> Result<Vec<(PathBuf, CacheEntry)>, CniError> {
        self.scan(|_| true)
    }

    fn scan(&self, want: impl Fn(&str) -> bool) -> Result<Vec<(PathBuf, CacheEntry)>, CniError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read CNI cache dir", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for dirent in rd.filter_map(|e| e.ok()) {
            let name = dirent.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !want(name) {
                continue;
            }
            let path = dirent.path();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("read CNI cache", &path)(e)),
            };
            match Self::decode(&path, &bytes) {
                Ok(entry) => out.push((path, entry)),
                Err(e) => tracing::warn!(error = %e, "ignoring CNI cache file"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes one entry; a missing one is fine.
    pub fn remove(&self, network: &str, container_id: &str, if_name: &str) -> Result<(), CniError> {
        let path = self.path(network, container_id, if_name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("remove CNI cache", &path)(e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(net: &str, cid: &str) -> CacheEntry {
        CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: cid.into(),
            if_name: "eth0".into(),
            network_name: net.into(),
            config: json!({"name": net}),
            cni_args: "IgnoreUnknown=1".into(),
            capability_args: Map::new(),
            netns: "/run/netns/x".into(),
            result: Some(json!({"cniVersion": "1.0.0"})),
        }
    }

    #[test]
    fn stores_loads_lists_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        assert_eq!(cache.load("n", "abc", "eth0").unwrap(), None);
        let p = cache.store(&entry("n", "abc")).unwrap();
        assert_eq!(p, dir.path().join("results/n-abc-eth0"));
        let dotted = cache.store(&entry("my.net", "c.1")).unwrap();
        assert_eq!(dotted, dir.path().join("results/my.net-c.1-eth0"));
        assert_eq!(cache.entries_for("c.1").unwrap().len(), 1);
        cache.store(&entry("other-net", "abc")).unwrap();
        cache.store(&entry("n", "abcd")).unwrap();
        assert_eq!(
            cache.load("n", "abc", "eth0").unwrap(),
            Some(entry("n", "abc"))
        );
        let all = cache.entries_for("abc").unwrap();
        let nets: Vec<_> = all.iter().map(|(_, e)| e.network_name.as_str()).collect();
        assert_eq!(nets, vec!["n", "other-net"]);
        cache.remove("n", "abc", "eth0").unwrap();
        cache.remove("n", "abc", "eth0").unwrap();
        assert_eq!(cache.load("n", "abc", "eth0").unwrap(), None);
    }

    #[test]
    fn corrupt_entry_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        std::fs::create_dir_all(dir.path().join("results")).unwrap();
        std::fs::write(cache.path("n", "c1", "eth0"), "{garbage").unwrap();
        let err = cache.load("n", "c1", "eth0").unwrap_err();
        assert!(err.to_string().contains("results/n-c1-eth0"), "{err}");
        assert!(cache.entries_for("c1").unwrap().is_empty());
    }
}
