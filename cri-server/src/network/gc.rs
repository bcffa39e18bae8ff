//! The CNI 1.1 STATUS and GC verbs on a network, and the runtime's own garbage collection:
//! after a restart, attachments in the result cache whose sandbox no longer exists are
//! deleted (DEL from the cached config) so their veths, leases and rules do not leak.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::cni::{CniNetwork, cached_list};
use super::conf::version_at_least;
use super::error::CniError;
use super::exec::{self, Invocation, Verb};
use super::request::PodNetworkRequest;
use super::watch::CniManager;

impl CniNetwork {
    fn bare_invocation(&self) -> Invocation<'_> {
        Invocation {
            network: &self.list().name,
            container_id: "",
            netns: "",
            ifname: "",
            cni_args: "",
            bin_dirs: &self.config().bin_dirs,
            timeout: self.config().plugin_timeout,
        }
    }

    /// STATUS (CNI 1.1): every plugin says whether it can take ADDs. Networks of older
    /// versions have no STATUS and count as ready.
    pub async fn status(&self) -> Result<(), CniError> {
        let list = self.list();
        if !version_at_least(&list.cni_version, "1.1.0") {
            return Ok(());
        }
        let inv = self.bare_invocation();
        for (i, plugin) in list.plugins.iter().enumerate() {
            let conf = list.plugin_config(i, None, &Map::new());
            exec::run(&inv, Verb::Status, &plugin.plugin_type, &conf).await?;
        }
        Ok(())
    }

    /// GC (CNI 1.1): plugins release whatever does not belong to `valid` (container id,
    /// ifname) attachments. A no-op for older versions and `disableGC` networks.
    pub async fn gc(&self, valid: &[(String, String)]) -> Result<(), CniError> {
        let list = self.list();
        let disabled = list.json.get("disableGC").and_then(Value::as_bool) == Some(true);
        if !version_at_least(&list.cni_version, "1.1.0") || disabled {
            return Ok(());
        }
        let attachments: Vec<Value> = valid
            .iter()
            .map(|(cid, ifname)| json!({"containerID": cid, "ifname": ifname}))
            .collect();
        let inv = self.bare_invocation();
        let mut first_err = None;
        for (i, plugin) in list.plugins.iter().enumerate() {
            let mut conf = list.plugin_config(i, None, &Map::new());
            conf["cni.dev/valid-attachments"] = Value::Array(attachments.clone());
            if let Err(e) = exec::run(&inv, Verb::Gc, &plugin.plugin_type, &conf).await {
                tracing::warn!(error = %e, "CNI GC failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// What [`CniManager::gc`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Sandboxes whose stale attachments were deleted.
    pub removed: Vec<String>,
    /// Stale attachments whose DEL failed (kept in the cache for the next GC).
    pub failed: Vec<(String, String)>,
}

impl CniManager {
    /// Deletes every cached attachment whose sandbox is not in `live` (DEL with the cached
    /// config, args and result), then runs the CNI 1.1 GC verb on the current network.
    pub async fn gc(&self, live: &HashSet<String>) -> Result<GcReport, CniError> {
        let cache = super::cache::ResultCache::new(&self.config().cache_dir);
        let mut report = GcReport::default();
        for (path, entry) in cache.entries()? {
            if live.contains(&entry.container_id) {
                continue;
            }
            let list = match cached_list(&entry.config, &path) {
                Ok(list) => list,
                Err(e) => {
                    report
                        .failed
                        .push((entry.container_id.clone(), e.to_string()));
                    continue;
                }
            };
            let mut config = self.config().clone();
            config.ifname = entry.if_name.clone();
            let net = CniNetwork::from_list(&config, list);
            let pod = PodNetworkRequest {
                container_id: entry.container_id.clone(),
                netns_path: entry.netns.clone(),
                ..Default::default()
            };
            match net.teardown(&pod).await {
                Ok(()) => report.removed.push(entry.container_id),
                Err(e) => report.failed.push((entry.container_id, e.to_string())),
            }
        }
        if let Ok(net) = self.network() {
            let valid: Vec<(String, String)> = cache
                .entries()?
                .into_iter()
                .filter(|(_, e)| e.network_name == net.name())
                .map(|(_, e)| (e.container_id, e.if_name))
                .collect();
            net.gc(&valid).await?;
        }
        Ok(report)
    }

    /// NetworkReady including the CNI 1.1 STATUS of the current network's plugins.
    pub async fn network_status(&self) -> Result<(), String> {
        self.network_ready()?;
        let net = self.network().map_err(|e| e.to_string())?;
        net.status().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
