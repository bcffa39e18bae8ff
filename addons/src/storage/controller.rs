//! The Kubernetes side of kina-local-path, kept thin: reflectors over claims, volumes and
//! storage classes; every claim change runs [`claim::decide`] and provisions, every volume
//! change runs [`pv::reclaim`] and deletes. A periodic resync re-runs both over the caches,
//! retrying whatever failed; watch errors are retried by kube-runtime's backoff. Creating a PV
//! that exists already (a retry, a restart) is success, so every step is idempotent.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource as _};

use super::claim::{self, ClaimDecision};
use super::pv::{self, Reclaim};
use super::{HOSTNAME_LABEL, volume_dir};

/// How often every cached claim and volume is looked at again.
pub const RESYNC: Duration = Duration::from_secs(30);

/// This instance's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub storage_dir: PathBuf,
}

struct Provisioner {
    settings: Settings,
    hostname: String,
    pvs: Api<PersistentVolume>,
    recorder: Recorder,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
}

/// The node's `kubernetes.io/hostname` label (what PV node affinity matches), retried until
/// the API answers; the node name when the label is absent.
async fn hostname(client: &Client, node: &str) -> String {
    let api: Api<Node> = Api::all(client.clone());
    let mut delay = Duration::from_secs(1);
    loop {
        match api.get(node).await {
            Ok(n) => {
                return n
                    .metadata
                    .labels
                    .and_then(|l| l.get(HOSTNAME_LABEL).cloned())
                    .unwrap_or_else(|| node.to_owned());
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "reading this node's hostname label failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RESYNC);
            }
        }
    }
}

/// Runs until a watch stream ends (it does not, short of a panic in kube-runtime).
pub async fn run(client: Client, settings: Settings) {
    let hostname = hostname(&client, &settings.node_name).await;
    tracing::info!(node = %settings.node_name, %hostname, dir = %settings.storage_dir.display(), "provisioning local-path volumes");
    let (claims, claims_w) = reflector::store();
    let (volumes, volumes_w) = reflector::store();
    let (classes, classes_w) = reflector::store();
    let cfg = watcher::Config::default;
    let claim_events = reflector(
        claims_w,
        watcher(Api::<PersistentVolumeClaim>::all(client.clone()), cfg()).default_backoff(),
    );
    let volume_events = reflector(
        volumes_w,
        watcher(Api::<PersistentVolume>::all(client.clone()), cfg()).default_backoff(),
    );
    let class_events = reflector(
        classes_w,
        watcher(Api::<StorageClass>::all(client.clone()), cfg()).default_backoff(),
    );
    let reporter = Reporter {
        controller: "kina-local-path".into(),
        instance: Some(settings.node_name.clone()),
    };
    let p = Provisioner {
        hostname,
        pvs: Api::all(client.clone()),
        recorder: Recorder::new(client, reporter),
        settings,
        claims,
        volumes,
        classes,
    };
    let (mut claim_events, mut volume_events, mut class_events) = (
        std::pin::pin!(claim_events),
        std::pin::pin!(volume_events),
        std::pin::pin!(class_events),
    );
    let mut tick = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            ev = claim_events.next() => match ev {
                None => return,
                Some(Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c))) => p.claim(&c).await,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching claims failed; retrying with backoff"),
            },
            ev = volume_events.next() => match ev {
                None => return,
                Some(Ok(watcher::Event::Apply(v) | watcher::Event::InitApply(v))) => p.volume(&v).await,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching volumes failed; retrying with backoff"),
            },
            ev = class_events.next() => match ev {
                None => return,
                // Claims seen before their class was cached get another look.
                Some(Ok(watcher::Event::InitDone)) => p.resync().await,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching storage classes failed; retrying with backoff"),
            },
            _ = tick.tick() => p.resync().await,
        }
    }
}

impl Provisioner {
    async fn resync(&self) {
        for c in self.claims.state() {
            self.claim(&c).await;
        }
        for v in self.volumes.state() {
            self.volume(&v).await;
        }
    }

    async fn claim(&self, c: &PersistentVolumeClaim) {
        let class = c
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .and_then(|name| self.classes.get(&ObjectRef::new(name)));
        let key = format!(
            "{}/{}",
            c.metadata.namespace.as_deref().unwrap_or_default(),
            c.metadata.name.as_deref().unwrap_or_default()
        );
        match claim::decide(
            c,
            class.as_deref(),
            &self.settings.node_name,
            &self.settings.storage_dir,
        ) {
            ClaimDecision::Skip(why) => tracing::trace!(claim = %key, why, "skipping claim"),
            ClaimDecision::Reject(e) => {
                tracing::warn!(claim = %key, error = %e, "cannot provision claim");
                self.event(c, EventType::Warning, "ProvisioningFailed", e.to_string())
                    .await;
            }
            ClaimDecision::Provision(plan) => match self.provision(&plan).await {
                Ok(true) => {
                    let msg = format!(
                        "Successfully provisioned volume {} at {}",
                        plan.pv_name,
                        plan.dir.display()
                    );
                    tracing::info!(claim = %key, "{msg}");
                    self.event(c, EventType::Normal, "ProvisioningSucceeded", msg)
                        .await;
                }
                Ok(false) => {
                    tracing::debug!(claim = %key, pv = %plan.pv_name, "volume exists already")
                }
                Err(msg) => {
                    tracing::error!(claim = %key, "{msg}");
                    self.event(c, EventType::Warning, "ProvisioningFailed", msg)
                        .await;
                }
            },
        }
    }

    /// Directory, then PV; returns false when the PV existed already.
    async fn provision(&self, plan: &claim::VolumePlan) -> Result<bool, String> {
        let created = volume_dir::create(&plan.dir).map_err(|e| e.to_string())?;
        let volume = pv::build(plan, &self.hostname);
        match self.pvs.create(&PostParams::default(), &volume).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => {
                if created && let Err(cleanup) = volume_dir::remove(&plan.dir) {
                    tracing::warn!(error = %cleanup, "removing the directory of a volume that failed");
                }
                Err(format!("create PersistentVolume {}: {e}", plan.pv_name))
            }
        }
    }

    async fn volume(&self, v: &PersistentVolume) {
        let name = v.metadata.name.clone().unwrap_or_default();
        match pv::reclaim(v, &self.hostname, &self.settings.storage_dir) {
            Reclaim::Skip(why) => tracing::trace!(pv = %name, why, "not reclaiming"),
            Reclaim::Refuse(msg) => tracing::warn!(pv = %name, "refusing to reclaim: {msg}"),
            Reclaim::Delete { dir } => {
                if let Err(e) = volume_dir::remove(&dir) {
                    tracing::error!(pv = %name, error = %e, "reclaiming volume failed; will retry");
                    return;
                }
                match self.pvs.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::info!(pv = %name, dir = %dir.display(), "deleted released volume")
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::error!(pv = %name, error = %e, "deleting PersistentVolume failed; will retry")
                    }
                }
            }
        }
    }

    async fn event(&self, c: &PersistentVolumeClaim, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Provision".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &c.object_ref(&())).await {
            tracing::debug!(error = %e, "publishing event failed");
        }
    }
}
