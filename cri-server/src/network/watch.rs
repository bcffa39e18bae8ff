//! [`CniManager`]: the network the runtime uses now, reloaded when the conf dir changes
//! (a cheap poll of the dir's file names, sizes and mtimes — no inotify instance, which is
//! a scarce per-user resource on hosts running many nodes), NetworkReady for the CRI status,
//! DEL driven by the result cache, and UpdateRuntimeConfig's conf template rendering.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ipnetwork::IpNetwork;
use tokio::sync::watch;

use super::cache::ResultCache;
use super::cni::{CniConfig, CniNetwork, cached_list};
use super::conf::conf_files;
use super::error::CniError;
use super::request::{PodNetworkRequest, PodNetworkStatus};
use super::template::{TemplateData, render};

/// How often [`CniManager::watch`] looks at the conf dir unless told otherwise.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The file UpdateRuntimeConfig writes the rendered template to.
pub const TEMPLATE_OUTPUT: &str = "10-kina-net.conflist";

/// Whether pods can be networked, and with which network.
#[derive(Debug, Clone)]
pub enum NetworkState {
    Ready(Arc<CniNetwork>),
    /// Why not (for the CRI `NetworkReady` condition's message).
    NotReady(String),
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Owns the current network and its readiness.
#[derive(Debug)]
pub struct CniManager {
    config: CniConfig,
    state: watch::Sender<NetworkState>,
    fingerprint: Mutex<Option<Fingerprint>>,
}

impl CniManager {
    /// Loads the conf dir once; call [`CniManager::watch`] to follow changes.
    pub fn new(config: CniConfig) -> Self {
        let (state, _) = watch::channel(NetworkState::NotReady("not loaded yet".into()));
        let m = Self {
            config,
            state,
            fingerprint: Mutex::new(None),
        };
        m.reload();
        m
    }

    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    fn fingerprint(&self) -> Fingerprint {
        conf_files(&self.config.conf_dir)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map_or(0, |m| m.len());
                let mtime = meta.and_then(|m| m.modified().ok());
                (p, len, mtime)
            })
            .collect()
    }

    /// Reads the conf dir again and publishes the new state.
    pub fn reload(&self) -> NetworkState {
        let fp = self.fingerprint();
        let state = match CniNetwork::load(&self.config).and_then(|n| {
            n.check_plugins()?;
            Ok(n)
        }) {
            Ok(n) => NetworkState::Ready(Arc::new(n)),
            Err(e) => NetworkState::NotReady(e.to_string()),
        };
        *self.fingerprint.lock().expect("fingerprint lock") = Some(fp);
        // Subscribers (and the log) only hear about real changes.
        self.state.send_if_modified(|current| {
            let same = match (&*current, &state) {
                (NetworkState::Ready(a), NetworkState::Ready(b)) => a.list() == b.list(),
                (NetworkState::NotReady(a), NetworkState::NotReady(b)) => a == b,
                _ => false,
            };
            if !same {
                match &state {
                    NetworkState::Ready(n) => tracing::info!(network = n.name(),
                        source = %n.list().source.display(), "CNI network ready"),
                    NetworkState::NotReady(reason) => {
                        tracing::info!(%reason, "CNI network not ready")
                    }
                }
                *current = state.clone();
            }
            !same
        });
        state
    }

    /// Reloads when the conf dir changed since the last load, or while not ready (a plugin
    /// binary may have been installed). Returns whether it reloaded.
    pub fn poll(&self) -> bool {
        let fp = self.fingerprint();
        let changed = self.fingerprint.lock().expect("fingerprint lock").as_ref() != Some(&fp);
        let not_ready = matches!(*self.state.borrow(), NetworkState::NotReady(_));
        if changed || not_ready {
            self.reload();
        }
        changed || not_ready
    }

    /// Polls the conf dir every `interval` until the manager is dropped elsewhere.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(m) = weak.upgrade() else { return };
                // Directory reads are quick; keep them off the async workers anyway.
                let _ = tokio::task::spawn_blocking(move || m.poll()).await;
            }
        })
    }

    /// The current state, for subscribers that wait for readiness.
    pub fn subscribe(&self) -> watch::Receiver<NetworkState> {
        self.state.subscribe()
    }

    /// `Ok` when pods can be networked, else the reason (CRI NetworkReady condition).
    pub fn network_ready(&self) -> Result<(), String> {
        match &*self.state.borrow() {
            NetworkState::Ready(_) => Ok(()),
            NetworkState::NotReady(reason) => Err(reason.clone()),
        }
    }

    /// The network to attach new pods to.
    pub fn network(&self) -> Result<Arc<CniNetwork>, CniError> {
        match &*self.state.borrow() {
            NetworkState::Ready(n) => Ok(n.clone()),
            NetworkState::NotReady(reason) => Err(CniError::NotReady(reason.clone())),
        }
    }

    /// ADD on the current network. Host-network pods do not call this (nor teardown):
    /// that is the caller's decision.
    pub async fn setup(&self, pod: &PodNetworkRequest) -> Result<PodNetworkStatus, CniError> {
        self.network()?.setup(pod).await
    }

    /// DEL of every network the sandbox is attached to according to the cache (so it works
    /// after a restart or a conf dir change); with no cache entry, DEL on the current
    /// network. Without either there is nothing to undo.
    pub async fn teardown(&self, pod: &PodNetworkRequest) -> Result<(), CniError> {
        pod.validate()?;
        let cache = ResultCache::new(&self.config.cache_dir);
        let entries = cache.entries_for(&pod.container_id)?;
        let mut done_current = false;
        let current = self.network().ok();
        let mut first_err = None;
        for (path, entry) in entries
            .into_iter()
            .filter(|(_, e)| e.if_name == self.config.ifname)
        {
            let net = match cached_list(&entry.config, &path) {
                Ok(list) => CniNetwork::from_list(&self.config, list),
                Err(e) => match &current {
                    Some(c) if c.name() == entry.network_name => (**c).clone(),
                    _ => {
                        first_err.get_or_insert(e);
                        continue;
                    }
                },
            };
            done_current |= current.as_ref().is_some_and(|c| c.name() == net.name());
            if let Err(e) = net.teardown(pod).await {
                first_err.get_or_insert(e);
            }
        }
        if !done_current
            && let Some(c) = current
            && let Err(e) = c.teardown(pod).await
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// UpdateRuntimeConfig: renders the conf template (if configured) with the node's pod
    /// CIDRs into the conf dir, as containerd does — only while no network is ready, so an
    /// operator's or CNI daemonset's config is never overwritten. Returns the written file.
    pub fn update_runtime_config(
        &self,
        pod_cidrs: &[IpNetwork],
    ) -> Result<Option<PathBuf>, CniError> {
        let Some(template) = &self.config.conf_template else {
            return Ok(None);
        };
        if pod_cidrs.is_empty() || self.network_ready().is_ok() {
            return Ok(None);
        }
        let src = std::fs::read_to_string(template).map_err(|source| CniError::Io {
            op: "read CNI conf template",
            path: template.clone(),
            source,
        })?;
        let rendered =
            render(&src, &TemplateData::new(pod_cidrs)).map_err(|e| CniError::InvalidConfig {
                path: template.clone(),
                reason: e.to_string(),
            })?;
        // Refuse to publish a template that does not yield a valid list.
        super::conf::NetworkConfigList::from_conflist(rendered.as_bytes(), template)?;
        let dir = &self.config.conf_dir;
        std::fs::create_dir_all(dir).map_err(|source| CniError::Io {
            op: "create CNI conf dir",
            path: dir.clone(),
            source,
        })?;
        let out = dir.join(TEMPLATE_OUTPUT);
        let tmp = dir.join(format!(".{TEMPLATE_OUTPUT}.tmp"));
        let io = |op, path: &PathBuf| {
            let path = path.clone();
            move |source| CniError::Io { op, path, source }
        };
        std::fs::write(&tmp, rendered).map_err(io("write CNI config", &tmp))?;
        std::fs::rename(&tmp, &out).map_err(io("rename CNI config", &out))?;
        tracing::info!(path = %out.display(), ?pod_cidrs, "wrote CNI config from template");
        self.reload();
        Ok(Some(out))
    }
}
