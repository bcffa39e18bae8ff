//! Persisted container state under --root, and the runc-compatible state JSON.
//!
//! Layout: `<root>/<id>/state.json` (written atomically: temp file + rename) and
//! `<root>/<id>/exec.fifo` while the container is created but not started. The directory is
//! created with `mkdir`, which is what makes a duplicate id fail.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// Default state directory, like runc's /run/runc.
pub const DEFAULT_ROOT: &str = "/run/kina-runtime";
const STATE_FILE: &str = "state.json";
/// Name of the fifo `start` opens to release the init.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Errors reading or writing container state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {id} already exists")]
    Exists { id: String },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id}: {op} {path}: {source}")]
    Io {
        id: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {id}: corrupt state file {path}: {source}")]
    Corrupt {
        id: String,
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        };
        f.write_str(s)
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Pid of the container init in the runtime's pid namespace (0 while creating).
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat) to detect pid reuse.
    pub pid_start: u64,
    /// Creating / Created / Running as last recorded; the live status is derived on read.
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time with nanoseconds (like runc).
    pub created: String,
    pub owner_uid: u32,
    pub annotations: BTreeMap<String, String>,
    /// Cgroup path relative to each hierarchy root.
    pub cgroup_path: PathBuf,
    /// The config the container was created from (hooks, namespaces, resources).
    pub spec: Spec,
}

impl State {
    /// The OCI state document given to hooks (runtime-spec "state").
    pub fn oci(&self, status: Status) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": crate::spec::OCI_VERSION_MAX,
            "id": self.id,
            "status": status,
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.annotations,
        })
    }

    /// runc's `state`/`list --format json` document.
    pub fn runc_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": self.spec.version(),
            "id": self.id,
            "pid": pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": owner_name(self.owner_uid),
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// The `--root` directory and the containers in it.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

impl StateStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join(EXEC_FIFO)
    }

    /// Claims `id`: creates its directory, failing if it exists.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StateError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io {
                id: id.to_string(),
                op,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists { id: id.to_string() })
            }
            Err(e) => Err(io("create", &dir)(e)),
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let dir = self.dir(&state.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join(STATE_FILE);
        let err = |op, path: &Path| {
            let (id, path) = (state.id.clone(), path.to_path_buf());
            move |source| StateError::Io {
                id,
                op,
                path,
                source,
            }
        };
        let data = serde_json::to_vec(state).expect("state serializes");
        let mut f = std::fs::File::create(&tmp).map_err(err("write", &tmp))?;
        f.write_all(&data).map_err(err("write", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err("rename", &path))
    }

    /// Reads a container's state; `Ok(None)` while it is still being created (no file yet).
    pub fn load(&self, id: &str) -> Result<State, StateError> {
        let path = self.dir(id).join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound { id: id.to_string() });
            }
            Err(source) => {
                return Err(StateError::Io {
                    id: id.to_string(),
                    op: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt {
            id: id.to_string(),
            path,
            source,
        })
    }

    /// Ids of all containers with a state file, sorted.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Io {
                    id: String::new(),
                    op: "list",
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(STATE_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes the container's directory (state file and fifo).
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                id: id.to_string(),
                op: "remove",
                path: dir,
                source,
            }),
        }
    }
}

/// Start time (clock ticks since boot) and state letter of a process, from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3; start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// True when `pid` still is the process we started (same start time) and not a zombie.
pub fn process_alive(pid: i32, start: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((s, st)) if s == start && st != 'Z' && st != 'X')
}

/// RFC 3339 UTC time with nanoseconds, e.g. 2024-05-01T12:00:00.123456789Z.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_nanos()
    )
}

/// User name of `uid` from /etc/passwd, or `#uid` like runc.
pub fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn own_process_is_alive_and_has_start_time() {
        let pid = std::process::id() as i32;
        let (start, _) = proc_stat(pid).unwrap();
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start + 1));
    }

    #[test]
    fn store_roundtrip_and_duplicate() {
        let d = tempfile::tempdir().unwrap();
        let store = StateStore::new(d.path());
        store.create_dir("c1").unwrap();
        assert!(matches!(
            store.create_dir("c1"),
            Err(StateError::Exists { .. })
        ));
        assert!(matches!(store.load("c1"), Err(StateError::NotFound { .. })));
        let st = State {
            id: "c1".into(),
            pid: 1,
            pid_start: 2,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: rfc3339(SystemTime::now()),
            owner_uid: 0,
            annotations: BTreeMap::new(),
            cgroup_path: "/c1".into(),
            spec: Spec::default(),
        };
        store.save(&st).unwrap();
        assert_eq!(store.load("c1").unwrap().pid, 1);
        assert_eq!(store.list().unwrap(), vec!["c1".to_string()]);
        store.remove("c1").unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
