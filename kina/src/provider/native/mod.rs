//! The native provider: node containers run by kina's own runtime, no daemon.
//!
//! Everything lives under the state dir (`KINA_STATE_DIR`, default `/var/lib/kina`):
//! - `images/`: node images, in the same content/snapshot store cri-server uses, so an
//!   image is unpacked once (one overlay lower dir per layer) and shared by every node;
//! - `nodes/<node>/`: a node's bundle — `config.json`, `rootfs` (an overlay of the image
//!   with the node's own upper dir), `var` (bound on the node's /var) and `console.log`;
//! - `runtime/`: kina-runtime's `--root`, so nodes outlive the kina process;
//! - `network/`: bridges, leases and ports (see [`crate::network`]);
//! - `clusters/`: the cluster records (see [`crate::state`]).

mod error;
pub mod images;
mod lifecycle;
mod loadbalancer;
mod logs;
mod node;
pub mod runtime;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use error::NativeError;
pub use images::NodeImages;
pub use node::NativeNode;

use super::{LoadBalancerSpec, Node, NodeSpec, Provider, ProviderError};
use crate::state::StateStore;
use runtime::RuntimeCli;

/// Provider of node containers on kina-runtime.
pub struct NativeProvider {
    store: StateStore,
    runtime: RuntimeCli,
    images: OnceLock<NodeImages>,
    /// Image references as given (name or path) → name in the image store.
    resolved: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for NativeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeProvider")
            .field("state", &self.store.root())
            .finish()
    }
}

impl NativeProvider {
    /// A provider keeping its state in `store`'s directory, running nodes with the
    /// kina-runtime binary `runtime`.
    /// Nothing is created on disk until an operation needs it.
    pub fn new(store: StateStore, runtime: PathBuf) -> Self {
        let root = store.root().to_path_buf();
        Self {
            runtime: RuntimeCli::new(runtime, root.join("runtime")),
            images: OnceLock::new(),
            store,
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// The provider for `store`, with the runtime found by [`runtime::locate`].
    pub fn from_store(store: StateStore) -> Self {
        Self::new(store, runtime::locate())
    }

    /// The node image store (opened on first use).
    pub fn images(&self) -> Result<&NodeImages, NativeError> {
        if let Some(i) = self.images.get() {
            return Ok(i);
        }
        let opened = NodeImages::open(&self.state_dir().join("images"))?;
        Ok(self.images.get_or_init(|| opened))
    }

    fn state_dir(&self) -> &Path {
        self.store.root()
    }

    fn node(&self, cluster: &str, record: crate::state::NodeRecord) -> NativeNode {
        let dir = lifecycle::node_dir(self.state_dir(), &record.name);
        NativeNode::new(cluster, record, self.runtime.clone(), dir)
    }

    fn ctx(&self) -> Result<lifecycle::Ctx<'_>, NativeError> {
        Ok(lifecycle::Ctx {
            state_dir: self.state_dir(),
            store: &self.store,
            runtime: &self.runtime,
            images: self.images()?,
        })
    }

    fn image_name(&self, image: &str) -> Result<String, NativeError> {
        if let Some(name) = self
            .resolved
            .lock()
            .map_err(|_| NativeError::Poisoned)?
            .get(image)
        {
            return Ok(name.clone());
        }
        self.images()?.resolve(image)
    }
}

impl Provider for NativeProvider {
    fn ensure_image(&self, image: &str) -> Result<(), ProviderError> {
        let name = self.images()?.ensure(image)?;
        self.resolved
            .lock()
            .map_err(|_| NativeError::Poisoned)?
            .insert(image.to_string(), name);
        Ok(())
    }

    fn create_nodes(&self, specs: &[NodeSpec]) -> Result<Vec<Box<dyn Node>>, ProviderError> {
        let mut plans = Vec::new();
        for spec in specs {
            plans.push((spec.clone(), self.image_name(&spec.image)?));
        }
        let created = lifecycle::create_all(&self.ctx()?, &plans)?;
        Ok(created
            .into_iter()
            .map(|(cluster, rec)| Box::new(self.node(&cluster, rec)) as Box<dyn Node>)
            .collect())
    }

    fn create_load_balancer(
        &self,
        spec: &LoadBalancerSpec,
        control_planes: &[&dyn Node],
    ) -> Result<Box<dyn Node>, ProviderError> {
        // The load balancer runs from the control planes' image (it ships HAProxy).
        let first = control_planes
            .first()
            .ok_or_else(|| ProviderError::Unavailable {
                operation: format!("create load balancer {} without control planes", spec.name),
            })?;
        let image = self
            .store
            .get(&spec.cluster)?
            .and_then(|r| r.nodes.into_iter().find(|n| n.name == first.name()))
            .map(|n| n.image)
            .ok_or_else(|| ProviderError::Unavailable {
                operation: format!("find the image of node {}", first.name()),
            })?;
        let node = NodeSpec {
            cluster: spec.cluster.clone(),
            name: spec.name.clone(),
            role: super::Role::ExternalLoadBalancer,
            image: image.clone(),
            mounts: Vec::new(),
            ports: vec![spec.listen.clone()],
            labels: Default::default(),
            ip_family: spec.ip_family,
        };
        let mut made = self.create_nodes(std::slice::from_ref(&node))?;
        let lb = made.pop().ok_or_else(|| ProviderError::Unavailable {
            operation: format!("create load balancer {}", spec.name),
        })?;
        loadbalancer::start(lb.as_ref(), control_planes)?;
        Ok(lb)
    }

    fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        Ok(self.store.list()?)
    }

    fn list_nodes(&self, cluster: &str) -> Result<Vec<Box<dyn Node>>, ProviderError> {
        let Some(rec) = self.store.get(cluster)? else {
            return Ok(Vec::new());
        };
        let mut nodes = rec.nodes;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes
            .into_iter()
            .map(|r| Box::new(self.node(cluster, r)) as Box<dyn Node>)
            .collect())
    }

    fn delete_nodes(&self, cluster: &str, nodes: &[String]) -> Result<(), ProviderError> {
        if !self.state_dir().exists() {
            return Ok(()); // nothing was ever made; do not create the state dir
        }
        lifecycle::delete(&self.ctx()?, cluster, nodes)?;
        Ok(())
    }
}
