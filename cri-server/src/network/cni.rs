//! [`CniNetwork`]: one loaded network list and the libcni operations on it — ADD with
//! `prevResult` chaining (and DEL of the whole chain when a plugin fails), DEL from the
//! result cache (idempotent, also after a restart), CHECK against the cached result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::cache::{CACHE_KIND, CacheEntry, ResultCache};
use super::conf::{NetworkConfigList, load_first, version_at_least};
use super::error::CniError;
use super::exec::{self, Invocation, Verb, find_plugin, join_dirs};
use super::request::{PodNetworkRequest, PodNetworkStatus};
use super::result::CniResult;

/// Where the CNI layer finds configs and plugins and keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// Network configs (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin binaries, searched in order (`CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// Our state dir for the result cache (results live in `<cache_dir>/results`).
    pub cache_dir: PathBuf,
    /// The pod-side interface name.
    pub ifname: String,
    /// A plugin taking longer than this is killed.
    pub plugin_timeout: Duration,
    /// containerd's `conf_template`: rendered into the conf dir on UpdateRuntimeConfig.
    pub conf_template: Option<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        Self {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cache_dir: "/var/lib/cri-server/cni".into(),
            ifname: "eth0".into(),
            plugin_timeout: Duration::from_secs(120),
            conf_template: None,
        }
    }
}

/// A loaded network list bound to a [`CniConfig`].
#[derive(Debug, Clone)]
pub struct CniNetwork {
    config: CniConfig,
    list: NetworkConfigList,
    cache: ResultCache,
}

/// The inputs of one attachment (from the request, or from the cache on DEL).
struct Attachment<'a> {
    container_id: &'a str,
    netns: &'a str,
    cni_args: &'a str,
    caps: &'a Map<String, Value>,
}

impl CniNetwork {
    /// The first network of the conf dir.
    pub fn load(config: &CniConfig) -> Result<Self, CniError> {
        Ok(Self::from_list(config, load_first(&config.conf_dir)?))
    }

    /// A network from an already loaded list.
    pub fn from_list(config: &CniConfig, list: NetworkConfigList) -> Self {
        Self {
            cache: ResultCache::new(&config.cache_dir),
            config: config.clone(),
            list,
        }
    }

    pub fn name(&self) -> &str {
        &self.list.name
    }

    pub fn list(&self) -> &NetworkConfigList {
        &self.list
    }

    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    /// Every plugin of the list exists in the bin dirs (part of NetworkReady).
    pub fn check_plugins(&self) -> Result<(), CniError> {
        for p in &self.list.plugins {
            if find_plugin(&self.config.bin_dirs, &p.plugin_type).is_none() {
                return Err(CniError::PluginNotFound {
                    network: self.list.name.clone(),
                    plugin: p.plugin_type.clone(),
                    dirs: join_dirs(&self.config.bin_dirs),
                });
            }
        }
        Ok(())
    }

    fn invocation<'a>(&'a self, list: &'a NetworkConfigList, a: &'a Attachment) -> Invocation<'a> {
        Invocation {
            network: &list.name,
            container_id: a.container_id,
            netns: a.netns,
            ifname: &self.config.ifname,
            cni_args: a.cni_args,
            bin_dirs: &self.config.bin_dirs,
            timeout: self.config.plugin_timeout,
        }
    }

    /// ADD: attaches the pod, caches the result and returns the pod's addresses. When a
    /// plugin fails, DEL runs for the plugins that ran so no interface or lease is left, and
    /// the failing plugin's error is returned.
    ///
    /// Drive it to completion (e.g. in a spawned task): dropping the future kills the
    /// running plugin, and only the cache entry written before ADD is left for a later
    /// [`CniNetwork::teardown`] or GC to undo the partial attachment.
    pub async fn setup(&self, pod: &PodNetworkRequest) -> Result<PodNetworkStatus, CniError> {
        pod.validate()?;
        if pod.netns_path.is_empty() {
            return Err(CniError::InvalidRequest(format!(
                "sandbox {}: no network namespace path for ADD",
                pod.container_id
            )));
        }
        let cni_args = pod.cni_args();
        let caps = pod.capability_args();
        let a = Attachment {
            container_id: &pod.container_id,
            netns: &pod.netns_path,
            cni_args: &cni_args,
            caps: &caps,
        };
        let mut entry = CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: pod.container_id.clone(),
            if_name: self.config.ifname.clone(),
            network_name: self.list.name.clone(),
            config: self.list.json.clone(),
            cni_args: cni_args.clone(),
            capability_args: caps.clone(),
            netns: pod.netns_path.clone(),
            result: None,
        };
        // Recorded before ADD so that a crash half-way still lets DEL find the chain.
        self.cache.store(&entry)?;
        let inv = self.invocation(&self.list, &a);
        let mut prev: Option<Value> = None;
        let mut parsed: Option<CniResult> = None;
        for (i, plugin) in self.list.plugins.iter().enumerate() {
            let conf = self.list.plugin_config(i, prev.as_ref(), &caps);
            let step = async {
                let out = exec::run(&inv, Verb::Add, &plugin.plugin_type, &conf).await?;
                let invalid = |source| CniError::InvalidResult {
                    network: self.list.name.clone(),
                    plugin: plugin.plugin_type.clone(),
                    command: "ADD",
                    source,
                };
                let value: Value = serde_json::from_slice(&out)
                    .map_err(|e| invalid(super::result::ResultError::Json(e)))?;
                let result =
                    CniResult::from_value(&value, &self.list.cni_version).map_err(invalid)?;
                Ok::<_, CniError>((value, result))
            };
            match step.await {
                Ok((value, result)) => {
                    prev = Some(value);
                    parsed = Some(result);
                }
                Err(err) => {
                    // Plugins after the failing one never ran; the failing one did unless
                    // it could not even be started.
                    let started =
                        !matches!(err, CniError::PluginNotFound { .. } | CniError::Exec { .. });
                    let ran = i + usize::from(started);
                    self.undo_add(&a, prev.as_ref(), ran, &err).await;
                    return Err(err);
                }
            }
        }
        let (Some(raw), Some(result)) = (prev, parsed) else {
            // Only reachable with a hand-built list without plugins.
            let _ = self
                .cache
                .remove(&self.list.name, a.container_id, &self.config.ifname);
            return Err(CniError::InvalidConfig {
                path: self.list.source.clone(),
                reason: "network list has no plugins".into(),
            });
        };
        entry.result = Some(raw.clone());
        if let Err(err) = self.cache.store(&entry) {
            self.undo_add(&a, Some(&raw), self.list.plugins.len(), &err)
                .await;
            return Err(err);
        }
        Ok(PodNetworkStatus::from_result(&self.list.name, &result, raw))
    }

    /// After a failed ADD: DEL (best-effort, in reverse) the first `ran` plugins of the
    /// chain — those that ran ADD — and drop the cache entry once that worked.
    async fn undo_add(
        &self,
        a: &Attachment<'_>,
        prev: Option<&Value>,
        ran: usize,
        cause: &CniError,
    ) {
        tracing::warn!(network = %self.list.name, container = a.container_id, error = %cause,
            "CNI ADD failed, deleting the partial attachment");
        match self.del_plugins(&self.list, a, prev, ran).await {
            Ok(()) => {
                if let Err(e) =
                    self.cache
                        .remove(&self.list.name, a.container_id, &self.config.ifname)
                {
                    tracing::warn!(error = %e, "cannot remove CNI cache entry");
                }
            }
            Err(e) => tracing::warn!(network = %self.list.name, container = a.container_id,
                error = %e, "DEL after failed ADD failed; the cache entry stays for a later DEL"),
        }
    }

    /// DEL of every plugin in reverse order. All plugins run even if one fails (so one
    /// broken plugin does not leak the others' resources); the first error is returned.
    async fn del_list(
        &self,
        list: &NetworkConfigList,
        a: &Attachment<'_>,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        self.del_plugins(list, a, prev, list.plugins.len()).await
    }

    /// DEL of the first `count` plugins, last first.
    async fn del_plugins(
        &self,
        list: &NetworkConfigList,
        a: &Attachment<'_>,
        prev: Option<&Value>,
        count: usize,
    ) -> Result<(), CniError> {
        // DEL gets prevResult from 0.4.0 on (libcni).
        let prev = prev.filter(|_| version_at_least(&list.cni_version, "0.4.0"));
        let inv = self.invocation(list, a);
        let mut first_err = None;
        for i in (0..count.min(list.plugins.len())).rev() {
            let conf = list.plugin_config(i, prev, a.caps);
            if let Err(e) = exec::run(&inv, Verb::Del, &list.plugins[i].plugin_type, &conf).await {
                tracing::warn!(error = %e, "CNI DEL failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// DEL: detaches the pod. Uses the cached config, args and result of ADD when there is
    /// one (so it works after a restart or a conf dir change); without a cache entry or
    /// netns it still calls every plugin's DEL, which the plugins treat as "nothing left".
    pub async fn teardown(&self, pod: &PodNetworkRequest) -> Result<(), CniError> {
        pod.validate()?;
        let ifname = &self.config.ifname;
        let entry = self
            .cache
            .load(&self.list.name, &pod.container_id, ifname)?;
        let cache_path = self.cache.path(&self.list.name, &pod.container_id, ifname);
        let (list, cni_args, caps, prev, cached_netns) = match &entry {
            Some(e) => {
                let list = cached_list(&e.config, &cache_path).unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "using the current network list for DEL");
                    self.list.clone()
                });
                let prev = e.result.clone();
                let caps = if e.capability_args.is_empty() {
                    pod.capability_args()
                } else {
                    e.capability_args.clone()
                };
                (list, e.cni_args.clone(), caps, prev, e.netns.clone())
            }
            None => (
                self.list.clone(),
                pod.cni_args(),
                pod.capability_args(),
                None,
                String::new(),
            ),
        };
        let wanted = if pod.netns_path.is_empty() {
            cached_netns
        } else {
            pod.netns_path.clone()
        };
        // A netns that is gone is passed as "" (the spec allows it for DEL).
        let netns = if !wanted.is_empty() && Path::new(&wanted).exists() {
            wanted
        } else {
            String::new()
        };
        let a = Attachment {
            container_id: &pod.container_id,
            netns: &netns,
            cni_args: &cni_args,
            caps: &caps,
        };
        self.del_list(&list, &a, prev.as_ref()).await?;
        self.cache
            .remove(&self.list.name, &pod.container_id, ifname)
    }

    /// CHECK: asks every plugin whether the attachment is still as ADD left it.
    pub async fn check(&self, pod: &PodNetworkRequest) -> Result<(), CniError> {
        pod.validate()?;
        if !version_at_least(&self.list.cni_version, "0.4.0") {
            return Err(CniError::Unsupported {
                network: self.list.name.clone(),
                command: "CHECK",
                version: self.list.cni_version.clone(),
            });
        }
        if self.list.disable_check {
            return Ok(());
        }
        let entry = self
            .cache
            .load(&self.list.name, &pod.container_id, &self.config.ifname)?;
        let Some(CacheEntry {
            result: Some(prev),
            cni_args,
            capability_args,
            netns,
            ..
        }) = entry
        else {
            return Err(CniError::NoCachedResult {
                network: self.list.name.clone(),
                container_id: pod.container_id.clone(),
            });
        };
        let netns = if pod.netns_path.is_empty() {
            &netns
        } else {
            &pod.netns_path
        };
        let a = Attachment {
            container_id: &pod.container_id,
            netns,
            cni_args: &cni_args,
            caps: &capability_args,
        };
        let inv = self.invocation(&self.list, &a);
        for (i, plugin) in self.list.plugins.iter().enumerate() {
            let conf = self.list.plugin_config(i, Some(&prev), &capability_args);
            exec::run(&inv, Verb::Check, &plugin.plugin_type, &conf).await?;
        }
        Ok(())
    }

    /// The status ADD returned for a sandbox, from the cache (e.g. after a restart).
    pub fn cached_status(&self, container_id: &str) -> Result<Option<PodNetworkStatus>, CniError> {
        let Some(entry) = self
            .cache
            .load(&self.list.name, container_id, &self.config.ifname)?
        else {
            return Ok(None);
        };
        let Some(raw) = entry.result else {
            return Ok(None);
        };
        let path = self
            .cache
            .path(&self.list.name, container_id, &self.config.ifname);
        let result = CniResult::from_value(&raw, &self.list.cni_version).map_err(|e| {
            CniError::CacheCorrupt {
                path,
                reason: e.to_string(),
            }
        })?;
        Ok(Some(PodNetworkStatus::from_result(
            &self.list.name,
            &result,
            raw,
        )))
    }
}

/// The network list stored in a cache entry.
pub(crate) fn cached_list(config: &Value, path: &Path) -> Result<NetworkConfigList, CniError> {
    let bytes = serde_json::to_vec(config).expect("JSON value serializes");
    NetworkConfigList::from_conflist(&bytes, path)
}
