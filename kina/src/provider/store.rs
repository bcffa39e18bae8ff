//! The provider of a build without node machinery: clusters and nodes as the state
//! store records them.
//!
//! Listing and deleting work on the records; every operation that needs a node runtime
//! (creating nodes, exec, loading images, logs) fails with
//! [`ProviderError::Unavailable`] instead of pretending.

use std::path::Path;

use super::{
    ExecOutput, LoadBalancerSpec, Node, NodeNetwork, NodeSpec, Provider, ProviderError, Role,
};
use crate::state::{NodeRecord, StateStore};

/// Provider backed only by the state store.
#[derive(Debug, Clone)]
pub struct StoreProvider {
    store: StateStore,
}

impl StoreProvider {
    /// A provider reading `store`.
    pub fn new(store: StateStore) -> Self {
        StoreProvider { store }
    }
}

fn unavailable(operation: impl Into<String>) -> ProviderError {
    ProviderError::Unavailable {
        operation: operation.into(),
    }
}

impl Provider for StoreProvider {
    fn ensure_image(&self, image: &str) -> Result<(), ProviderError> {
        Err(unavailable(format!("ensure node image {image}")))
    }

    fn create_nodes(&self, specs: &[NodeSpec]) -> Result<Vec<Box<dyn Node>>, ProviderError> {
        Err(unavailable(format!(
            "create {} node container(s)",
            specs.len()
        )))
    }

    fn create_load_balancer(
        &self,
        spec: &LoadBalancerSpec,
        _control_planes: &[&dyn Node],
    ) -> Result<Box<dyn Node>, ProviderError> {
        Err(unavailable(format!("create load balancer {}", spec.name)))
    }

    fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        // A record without nodes is a cluster whose creation stopped half-way: listed,
        // so that it can be deleted.
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
            .map(|r| Box::new(RecordedNode(r)) as Box<dyn Node>)
            .collect())
    }

    fn delete_nodes(&self, cluster: &str, nodes: &[String]) -> Result<(), ProviderError> {
        // Removing the last node removes the cluster's record.
        self.store.remove_nodes(cluster, nodes)?;
        Ok(())
    }
}

/// A node known from its record only.
#[derive(Debug, Clone)]
struct RecordedNode(NodeRecord);

impl Node for RecordedNode {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn role(&self) -> Role {
        self.0.role
    }

    fn exec(&self, argv: &[String], _stdin: Option<&[u8]>) -> Result<ExecOutput, ProviderError> {
        Err(unavailable(format!(
            "run {:?} in node {}",
            argv.first().map(String::as_str).unwrap_or(""),
            self.0.name
        )))
    }

    fn exec_interactive(
        &self,
        argv: &[String],
        _tty: bool,
        _stdin: bool,
    ) -> Result<i32, ProviderError> {
        self.exec(argv, None).map(|o| o.status)
    }

    fn network(&self) -> Result<NodeNetwork, ProviderError> {
        Ok(NodeNetwork {
            ipv4: self.0.ipv4,
            ipv6: self.0.ipv6,
        })
    }

    fn load_image_archive(&self, archive: &Path) -> Result<(), ProviderError> {
        Err(unavailable(format!(
            "load {} into node {}",
            archive.display(),
            self.0.name
        )))
    }

    fn collect_logs(&self, _dir: &Path) -> Result<(), ProviderError> {
        Err(unavailable(format!("collect logs of node {}", self.0.name)))
    }
}
