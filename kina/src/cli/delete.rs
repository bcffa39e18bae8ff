//! `kina delete cluster` and `kina delete clusters`: remove the nodes through the
//! provider and the cluster's entries from the kubeconfig. Deleting a cluster that does
//! not exist succeeds, as in kind.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env};
use crate::config::DEFAULT_CLUSTER_NAME;
use crate::kubeconfig;

/// `kina delete …`
#[derive(Debug, Subcommand)]
pub enum Delete {
    /// Deletes a cluster.
    Cluster(DeleteClusterArgs),
    /// Deletes one or more clusters.
    Clusters(DeleteClustersArgs),
}

/// Flags of `kina delete cluster`.
#[derive(Debug, Args)]
pub struct DeleteClusterArgs {
    /// The cluster name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Kubeconfig to remove the cluster from instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Flags of `kina delete clusters`.
#[derive(Debug, Args)]
pub struct DeleteClustersArgs {
    /// Delete all clusters.
    #[arg(short = 'A', long, conflicts_with = "names")]
    pub all: bool,
    /// Names of the clusters to delete.
    #[arg(required_unless_present = "all")]
    pub names: Vec<String>,
    /// Kubeconfig to remove the clusters from instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Run `kina delete …`.
pub fn run(what: Delete, env: &Env) -> Result<(), CliError> {
    match what {
        Delete::Cluster(a) => {
            env.status
                .line(&format!("Deleting cluster {:?} ...", a.name));
            delete_cluster("kina delete cluster", &a.name, a.kubeconfig.as_deref(), env)
        }
        Delete::Clusters(a) => {
            const CMD: &str = "kina delete clusters";
            let names = if a.all {
                env.provider
                    .list_clusters()
                    .map_err(CliError::provider(CMD))?
            } else {
                a.names
            };
            for name in &names {
                delete_cluster(CMD, name, a.kubeconfig.as_deref(), env)?;
            }
            env.status.line(&format!("Deleted clusters: {names:?}"));
            Ok(())
        }
    }
}

/// Delete every node of `name` and its kubeconfig entries.
pub fn delete_cluster(
    cmd: &'static str,
    name: &str,
    kubeconfig_path: Option<&std::path::Path>,
    env: &Env,
) -> Result<(), CliError> {
    let nodes = env
        .provider
        .list_nodes(name)
        .map_err(CliError::provider(cmd))?;
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
    env.provider
        .delete_nodes(name, &names)
        .map_err(CliError::provider(cmd))?;
    if !names.is_empty() {
        tracing::info!("Deleted nodes: {names:?}");
    }
    let path = kubeconfig::path(kubeconfig_path);
    kubeconfig::remove(&path, name).map_err(|e| CliError::request(cmd, e.to_string()))?;
    Ok(())
}
