//! The Kubernetes side of kina-net, kept thin: a reflector over all Nodes; after the initial
//! list and on every change (plus a periodic resync that also repairs drift), the cached
//! Nodes become [`NodeInfo`]s and go to [`NetSync::sync`]. Watch errors are retried by
//! kube-runtime's exponential backoff; failed passes are retried with a backoff of their own.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};

use super::node::NodeInfo;
use super::sync::NetSync;

/// How often to re-apply everything even without changes.
pub const RESYNC: Duration = Duration::from_secs(60);

/// Runs until the watch stream ends (it does not, short of a panic in kube-runtime).
pub async fn run(client: Client, mut sync: NetSync) {
    let api: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    let mut events = std::pin::pin!(events);
    let mut ready = false;
    let mut tick = tokio::time::interval(RESYNC);
    let mut retry: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let force = tokio::select! {
            ev = events.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching Nodes failed; retrying with backoff");
                    continue;
                }
                Some(Ok(watcher::Event::InitDone)) => { ready = true; false }
                Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
                Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => false,
            },
            _ = tick.tick() => true,
            _ = async { match retry.as_mut() { Some(s) => s.await, None => std::future::pending().await } } => {
                retry = None;
                false
            }
        };
        if !ready {
            continue;
        }
        let nodes: Vec<NodeInfo> = store
            .state()
            .iter()
            .map(|n| NodeInfo::from_node(n))
            .collect();
        let (report, errors) = sync.sync(&nodes, force).await;
        tracing::debug!(?report, nodes = nodes.len(), "sync pass");
        if errors.is_empty() {
            backoff = Duration::from_secs(1);
            retry = None;
        } else {
            for e in &errors {
                tracing::error!(error = %e, "sync failed");
            }
            retry = Some(Box::pin(tokio::time::sleep(backoff)));
            tracing::info!(in_secs = backoff.as_secs(), "retrying the sync");
            backoff = (backoff * 2).min(RESYNC);
        }
    }
}
