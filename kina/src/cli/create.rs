//! `kina create cluster`: load and validate the config before touching anything, then
//! bring the nodes up through the provider with kind's step-by-step output.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env, duration};
use crate::config::{self, Loaded, NodeRole, PortMapping};
use crate::provider::{NodeSpec, node_names};

const CMD: &str = "kina create cluster";

/// `kina create …`
#[derive(Debug, Subcommand)]
pub enum Create {
    /// Creates a local Kubernetes cluster.
    Cluster(CreateClusterArgs),
}

/// Flags of `kina create cluster`.
#[derive(Debug, Args)]
pub struct CreateClusterArgs {
    /// Cluster name, overrides the config's name [default: kina].
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV)]
    pub name: Option<String>,
    /// Path to a kind config file, `-` for stdin.
    #[arg(long)]
    pub config: Option<String>,
    /// Node image to use for every node, overrides the config.
    #[arg(long)]
    pub image: Option<String>,
    /// Wait for the control plane to be ready (e.g. 30s, 5m, 1m30s; 0 = do not wait).
    #[arg(long, value_parser = duration::parse, default_value = "0s")]
    pub wait: Duration,
    /// Retain nodes for debugging when cluster creation fails.
    #[arg(long)]
    pub retain: bool,
    /// Kubeconfig to update instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Run `kina create …`.
pub fn run(what: Create, env: &Env) -> Result<(), CliError> {
    match what {
        Create::Cluster(args) => create_cluster(args, env),
    }
}

/// Load, override and validate the config the way `create cluster` uses it.
pub fn load_config(args: &CreateClusterArgs) -> Result<Loaded, CliError> {
    let mut loaded = match &args.config {
        Some(path) => config::load(path, args.name.as_deref())?,
        None => config::default_config(args.name.as_deref())?,
    };
    if let Some(image) = &args.image {
        for node in &mut loaded.cluster.nodes {
            node.image = image.clone();
        }
    }
    Ok(loaded)
}

/// The node containers a config asks for.
pub fn node_specs(cluster: &config::Cluster) -> Vec<NodeSpec> {
    let roles: Vec<NodeRole> = cluster.nodes.iter().map(|n| n.role).collect();
    let names = node_names(&cluster.name, &roles);
    let first_cp = cluster
        .nodes
        .iter()
        .position(|n| n.role == NodeRole::ControlPlane);
    cluster
        .nodes
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (node, name))| {
            let mut ports = node.extra_port_mappings.clone();
            if Some(i) == first_cp {
                // The API server's host port (0 = pick a free one).
                ports.push(PortMapping {
                    container_port: 6443,
                    host_port: cluster.networking.api_server_port,
                    listen_address: cluster.networking.api_server_address.clone(),
                    protocol: config::Protocol::Tcp,
                });
            }
            NodeSpec {
                cluster: cluster.name.clone(),
                name,
                role: node.role,
                image: node.image.clone(),
                mounts: node.extra_mounts.clone(),
                ports,
                labels: node.labels.clone(),
                ip_family: cluster.networking.ip_family,
            }
        })
        .collect()
}

fn create_cluster(args: CreateClusterArgs, env: &Env) -> Result<(), CliError> {
    // Everything about the request is checked before anything is created.
    let loaded = load_config(&args)?;
    for warning in &loaded.containerd.warnings {
        tracing::warn!("{warning}");
    }
    let cluster = &loaded.cluster;
    let name = cluster.name.as_str();
    let existing = env
        .provider
        .list_nodes(name)
        .map_err(CliError::provider(CMD))?;
    if !existing.is_empty() {
        return Err(CliError::request(
            CMD,
            format!("node(s) already exist for a cluster with the name {name:?}"),
        ));
    }

    env.status.line(&format!("Creating cluster {name:?} ..."));
    let images: BTreeSet<&str> = cluster.nodes.iter().map(|n| n.image.as_str()).collect();
    for image in images {
        env.status
            .step(&format!("Ensuring node image ({image}) 🖼"), || {
                env.provider.ensure_image(image)
            })
            .map_err(CliError::provider(CMD))?;
    }
    let specs = node_specs(cluster);
    let nodes = env
        .status
        .step("Preparing nodes 📦", || env.provider.create_nodes(&specs))
        .map_err(CliError::provider(CMD))?;

    // Bootstrapping Kubernetes in the nodes (kubeadm config, init/join, CNI, storage)
    // belongs to the node machinery; without it the nodes are of no use.
    let result = env.status.step("Writing configuration 📜", || {
        Err::<(), _>(CliError::request(
            CMD,
            "the kubeadm bootstrap is not available in this build",
        ))
    });
    if let Err(e) = result {
        if args.retain {
            env.status.line(&format!(
                "Retaining nodes of cluster {name:?} for debugging (--retain)"
            ));
        } else {
            let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
            if let Err(cleanup) = env.provider.delete_nodes(name, &names) {
                tracing::error!("{CMD}: removing the nodes of the failed cluster: {cleanup}");
            }
        }
        return Err(e);
    }
    Ok(())
}
