//! A containerd-style metadata store: records in memory behind one lock, each persisted as
//! `<dir>/<id>.json` (write to a temporary file, rename) before a change becomes visible, and
//! loaded again at start. Every change goes through one closure under the lock, so a crash leaves
//! either the old or the new record and concurrent updates never interleave.
//!
//! Durability: a new record is fsynced (after a power loss the object it names — snapshot,
//! cgroup, CNI lease — must still be known so it can be cleaned up); state updates are atomic
//! renames without fsync, which survive any process crash (SIGKILL of the server), while after a
//! power loss every container is dead anyway and recovery re-derives their state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored record: an ID and a unique name.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + 'static {
    fn id(&self) -> &str;
    /// Unique name (e.g. `<name>_<namespace>_<uid>_<attempt>`).
    fn name(&self) -> &str;
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} name {name:?} is already used by {id}")]
    NameTaken {
        kind: &'static str,
        name: String,
        id: String,
    },
    #[error("{kind} store: {op} {path}: {source}")]
    Io {
        kind: &'static str,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Records of one kind.
#[derive(Debug)]
pub struct Store<T> {
    kind: &'static str,
    dir: PathBuf,
    records: Mutex<BTreeMap<String, T>>,
}

impl<T: Record> Store<T> {
    /// Opens `dir`, loading every record; unreadable files are logged and skipped.
    pub fn open(kind: &'static str, dir: &Path) -> Result<Self, StoreError> {
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                kind,
                op,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut records = BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(io("list", dir))? {
            let p = e.map_err(io("list", dir))?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') {
                let _ = std::fs::remove_file(&p); // a temp file of an interrupted write
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    records.insert(r.id().to_owned(), r);
                }
                Err(e) => {
                    tracing::error!(path = %p.display(), "skipping unreadable {kind} record: {e}")
                }
            }
        }
        Ok(Self {
            kind,
            dir: dir.to_owned(),
            records: Mutex::new(records),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn persist(&self, r: &T, durable: bool) -> Result<(), StoreError> {
        let path = self.path(r.id());
        let tmp = self.dir.join(format!(".{}.tmp", r.id()));
        let kind = self.kind;
        let io = |op, p: &Path| {
            let p = p.to_owned();
            move |source| StoreError::Io {
                kind,
                op,
                path: p,
                source,
            }
        };
        let data = serde_json::to_vec(r).map_err(|e| StoreError::Io {
            kind,
            op: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&data).map_err(io("write", &tmp))?;
        if durable {
            f.sync_all().map_err(io("fsync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))
    }

    /// Adds a new record; its name must be unused.
    pub fn add(&self, r: T) -> Result<(), StoreError> {
        let mut m = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = m.values().find(|o| o.name() == r.name()) {
            return Err(StoreError::NameTaken {
                kind: self.kind,
                name: r.name().to_owned(),
                id: other.id().to_owned(),
            });
        }
        self.persist(&r, true)?;
        m.insert(r.id().to_owned(), r);
        Ok(())
    }

    /// Applies `f` to a copy of the record, persists it, then publishes it.
    pub fn update<R>(&self, id: &str, f: impl FnOnce(&mut T) -> R) -> Result<(R, T), StoreError> {
        let mut m = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let cur = m.get(id).ok_or_else(|| StoreError::NotFound {
            kind: self.kind,
            id: id.to_owned(),
        })?;
        let mut next = cur.clone();
        let out = f(&mut next);
        self.persist(&next, false)?;
        m.insert(id.to_owned(), next.clone());
        Ok((out, next))
    }

    /// Deletes a record (idempotent).
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let mut m = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    kind: self.kind,
                    op: "remove",
                    path,
                    source,
                });
            }
        }
        m.remove(id);
        Ok(())
    }

    /// A record by full ID or unique ID prefix.
    pub fn get(&self, id: &str) -> Result<T, StoreError> {
        let m = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let nf = || StoreError::NotFound {
            kind: self.kind,
            id: id.to_owned(),
        };
        if id.is_empty() {
            return Err(nf());
        }
        if let Some(r) = m.get(id) {
            return Ok(r.clone());
        }
        let mut it = m
            .range(id.to_owned()..)
            .take_while(|(k, _)| k.starts_with(id));
        match (it.next(), it.next()) {
            (Some((_, r)), None) => Ok(r.clone()),
            _ => Err(nf()),
        }
    }

    /// All records.
    pub fn list(&self) -> Vec<T> {
        let m = self.records.lock().unwrap_or_else(|e| e.into_inner());
        m.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct R {
        id: String,
        name: String,
        n: u32,
    }
    impl Record for R {
        fn id(&self) -> &str {
            &self.id
        }
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn r(id: &str, name: &str) -> R {
        R {
            id: id.into(),
            name: name.into(),
            n: 0,
        }
    }

    #[test]
    fn persists_updates_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::<R>::open("thing", dir.path()).unwrap();
        s.add(r("abc1", "a")).unwrap();
        s.add(r("abd2", "b")).unwrap();
        assert!(matches!(
            s.add(r("x", "a")),
            Err(StoreError::NameTaken { .. })
        ));
        s.update("abc1", |x| x.n = 7).unwrap();
        assert_eq!(s.get("abc").unwrap().n, 7);
        assert!(s.get("ab").is_err(), "ambiguous prefix");
        std::fs::write(dir.path().join("junk.json"), b"{").unwrap();
        let again = Store::<R>::open("thing", dir.path()).unwrap();
        assert_eq!(again.list().len(), 2);
        assert_eq!(again.get("abc1").unwrap().n, 7);
        again.remove("abc1").unwrap();
        again.remove("abc1").unwrap();
        assert!(matches!(
            again.get("abc1"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            again.update("zzz", |_| ()),
            Err(StoreError::NotFound { .. })
        ));
    }
}
