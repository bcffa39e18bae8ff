//! [`Runtime`]: the state shared by the sandbox and container operations — stores, runtime
//! handlers, images, CNI, events — plus recovery at start and the exit watcher.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{CgroupDriver, Config};
use crate::events::Events;
use crate::image::ImageManager;
use crate::network::CniManager;
use crate::oci::{ExitStatus, OciCli, RuntimeBackend};
use crate::sandbox::SandboxRecord;

use super::error::RuntimeError;
use super::record::{ContainerRecord, State};
use super::store::Store;

/// The built-in handler name for kina-runtime.
pub const NATIVE_HANDLER: &str = "kina";

/// Shared runtime state.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub images: ImageManager,
    pub cni: Arc<CniManager>,
    pub sandboxes: Store<SandboxRecord>,
    pub containers: Store<ContainerRecord>,
    pub events: Events,
    backends: BTreeMap<String, Arc<dyn RuntimeBackend>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Previous CPU sample (time, usage ns) per container / `pod:<id>`, for usage_nano_cores.
    pub(crate) cpu_samples: Mutex<HashMap<String, (i64, u64)>>,
}

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A new 64-hex-digit ID.
pub fn new_id() -> Result<String, RuntimeError> {
    let mut b = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(super::error::io("read", Path::new("/dev/urandom")))?;
    Ok(hex::encode(b))
}

/// A binary next to the running executable (how defaults are found).
pub fn beside_exe(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Runtime {
    /// Opens the stores and sets up the handlers; `monitor` is the cri-monitor binary.
    pub fn open(
        config: Config,
        images: ImageManager,
        cni: Arc<CniManager>,
        monitor: PathBuf,
    ) -> Result<Arc<Self>, RuntimeError> {
        let meta = config.root_dir.join("runtime");
        let sandboxes = Store::open("sandbox", &meta.join("sandboxes"))?;
        let containers = Store::open("container", &meta.join("containers"))?;
        let mut handlers = config.runtime_handlers.clone();
        handlers
            .entry(NATIVE_HANDLER.to_owned())
            .or_insert_with(|| beside_exe("kina-runtime"));
        let mut backends: BTreeMap<String, Arc<dyn RuntimeBackend>> = BTreeMap::new();
        for (name, bin) in handlers {
            let bin = if bin.components().count() == 1 {
                beside_exe(&bin.display().to_string())
            } else {
                bin
            };
            let mut runtime_args = Vec::new();
            if config.cgroup_driver == CgroupDriver::Systemd {
                runtime_args.push("--systemd-cgroup".to_owned());
            }
            backends.insert(
                name.clone(),
                Arc::new(OciCli {
                    runtime: bin,
                    runtime_args,
                    root: config.state_dir.join("runtime").join(&name),
                    monitor: monitor.clone(),
                    scratch: config.state_dir.join("exec"),
                }),
            );
        }
        let rt = Arc::new(Self {
            config,
            images,
            cni,
            sandboxes,
            containers,
            events: Events::new(),
            backends,
            locks: Mutex::new(HashMap::new()),
            cpu_samples: Mutex::new(HashMap::new()),
        });
        rt.recover();
        Ok(rt)
    }

    /// The backend of a handler ("" is the default handler).
    pub fn backend(
        &self,
        handler: &str,
    ) -> Result<(String, Arc<dyn RuntimeBackend>), RuntimeError> {
        let name = if handler.is_empty() {
            self.config.default_runtime_handler.as_str()
        } else {
            handler
        };
        self.backends
            .get(name)
            .map(|b| (name.to_owned(), b.clone()))
            .ok_or_else(|| {
                RuntimeError::NotFound(format!(
                    "runtime_handler {name:?} is not configured (have: {})",
                    self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    /// Configured handler names.
    pub fn handler_names(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// Serialises operations on one sandbox or container.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(id.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }

    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("sandboxes").join(id)
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("containers").join(id)
    }

    /// Attach socket and ctl fifo of a sandbox or container: short, as unix socket paths are
    /// limited to 107 bytes (96 bits of the ID are plenty to be unique).
    pub fn socket_dir(&self, id: &str) -> PathBuf {
        self.config
            .state_dir
            .join("s")
            .join(&id[..id.len().min(24)])
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.config.state_dir.join("netns")
    }

    /// Folds a recorded exit into a running container's record; returns the new record if the
    /// container has just been found exited.
    pub fn refresh_container(&self, c: &ContainerRecord) -> Option<ContainerRecord> {
        if c.state != State::Running {
            return None;
        }
        let exit = match ExitStatus::read(&self.container_dir(&c.id).join("exit")) {
            Ok(Some(e)) => Some(e),
            Ok(None) if process_alive(c.monitor_pid) => return None,
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(id = %c.id, "{e}");
                None
            }
        };
        // Under the store lock: only the caller that sees it still running records the exit
        // (the watcher and an RPC may race here), so the stopped event is sent once.
        let (changed, rec) = self
            .containers
            .update(&c.id, |r| {
                if r.state != State::Running {
                    return false;
                }
                r.state = State::Exited;
                match &exit {
                    Some(e) => {
                        r.exit_code = e.exit_code;
                        r.finished_at = e.exited_at;
                        r.reason = if e.oom_killed {
                            "OOMKilled".into()
                        } else if e.exit_code == 0 {
                            "Completed".into()
                        } else {
                            "Error".into()
                        };
                    }
                    None => {
                        r.exit_code = 255;
                        r.finished_at = now_ns();
                        r.reason = "Unknown".into();
                        r.message =
                            "the container's monitor exited without recording its exit".into();
                    }
                }
                true
            })
            .ok()?;
        if changed {
            self.events.container(&rec.id, crate::events::Kind::Stopped);
        }
        Some(rec)
    }

    /// Marks a sandbox whose pause process has ended as not ready.
    pub fn refresh_sandbox(&self, s: &SandboxRecord) {
        if !s.ready {
            return;
        }
        let exit = self.sandbox_dir(&s.id).join("exit");
        if exit.exists() || !process_alive(s.monitor_pid) {
            let _ = self.sandboxes.update(&s.id, |r| r.ready = false);
        }
    }

    /// Reconciles the stores with what survived a restart.
    fn recover(&self) {
        let (mut cs, mut ss) = (0, 0);
        for c in self.containers.list() {
            cs += 1;
            self.refresh_container(&c);
        }
        for s in self.sandboxes.list() {
            ss += 1;
            self.refresh_sandbox(&s);
        }
        tracing::info!(sandboxes = ss, containers = cs, "recovered runtime state");
    }

    /// Watches running containers for exits (so events and statuses follow promptly).
    pub fn watch_exits(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(rt) = weak.upgrade() else { return };
                for c in rt.containers.list() {
                    if c.state == State::Running {
                        rt.refresh_container(&c);
                    }
                }
                for s in rt.sandboxes.list() {
                    rt.refresh_sandbox(&s);
                }
            }
        })
    }
}

/// Whether `pid` is a live (non-zombie) process.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
