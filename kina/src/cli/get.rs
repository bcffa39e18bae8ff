//! `kina get clusters|nodes|kubeconfig`: what the provider knows, printed like kind.

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env};
use crate::config::DEFAULT_CLUSTER_NAME;
use crate::kubeconfig;
use crate::provider::Role;

/// `kina get …`
#[derive(Debug, Subcommand)]
pub enum Get {
    /// Lists existing kina clusters by their name.
    Clusters,
    /// Lists existing kina nodes by their name.
    Nodes(GetNodesArgs),
    /// Prints cluster kubeconfig.
    Kubeconfig(GetKubeconfigArgs),
}

/// Flags of `kina get nodes`.
#[derive(Debug, Args)]
pub struct GetNodesArgs {
    /// The cluster context name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// List nodes of all clusters (ignores --name).
    #[arg(short = 'A', long)]
    pub all_clusters: bool,
}

/// Flags of `kina get kubeconfig`.
#[derive(Debug, Args)]
pub struct GetKubeconfigArgs {
    /// The cluster context name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Use the internal (node network) address instead of the host one.
    #[arg(long)]
    pub internal: bool,
}

/// Run `kina get …`.
pub fn run(what: Get, env: &Env) -> Result<(), CliError> {
    match what {
        Get::Clusters => {
            let clusters = env
                .provider
                .list_clusters()
                .map_err(CliError::provider("kina get clusters"))?;
            if clusters.is_empty() {
                env.status.line("No kina clusters found.");
            }
            for c in clusters {
                println!("{c}");
            }
            Ok(())
        }
        Get::Nodes(a) => {
            const CMD: &str = "kina get nodes";
            let clusters = if a.all_clusters {
                env.provider
                    .list_clusters()
                    .map_err(CliError::provider(CMD))?
            } else {
                vec![a.name.clone()]
            };
            let mut any = false;
            for c in &clusters {
                for n in env
                    .provider
                    .list_nodes(c)
                    .map_err(CliError::provider(CMD))?
                {
                    any = true;
                    println!("{}", n.name());
                }
            }
            if !any {
                if a.all_clusters {
                    env.status.line("No kina nodes found.");
                } else {
                    env.status
                        .line(&format!("No kina nodes found for cluster {:?}.", a.name));
                }
            }
            Ok(())
        }
        Get::Kubeconfig(a) => {
            print!(
                "{}",
                cluster_kubeconfig("kina get kubeconfig", &a.name, a.internal, env)?
            );
            Ok(())
        }
    }
}

/// The admin kubeconfig of a cluster, with the host endpoint or (`internal`) the
/// first control-plane node's address on the cluster network.
pub fn cluster_kubeconfig(
    cmd: &'static str,
    name: &str,
    internal: bool,
    env: &Env,
) -> Result<String, CliError> {
    let nodes = env
        .provider
        .list_nodes(name)
        .map_err(CliError::provider(cmd))?;
    // In-network, the API server is behind the load balancer when there is one.
    let entry = nodes
        .iter()
        .find(|n| n.role() == Role::ExternalLoadBalancer)
        .or_else(|| nodes.iter().find(|n| n.role() == Role::ControlPlane));
    let Some(cp) = entry else {
        return Err(CliError::request(
            cmd,
            format!("could not locate any control plane nodes for cluster named {name:?}"),
        ));
    };
    let kubeconfig = env
        .store
        .get(name)?
        .and_then(|r| r.kubeconfig)
        .ok_or_else(|| {
            CliError::request(
                cmd,
                format!("cluster {name:?} has no kubeconfig recorded yet"),
            )
        })?;
    if !internal {
        return Ok(kubeconfig);
    }
    let net = cp.network().map_err(CliError::provider(cmd))?;
    let server = match (net.ipv4, net.ipv6) {
        (Some(v4), _) => format!("https://{v4}:6443"),
        (None, Some(v6)) => format!("https://[{v6}]:6443"),
        (None, None) => {
            return Err(CliError::request(
                cmd,
                format!("node {} has no address on the cluster network", cp.name()),
            ));
        }
    };
    kubeconfig::with_server(&kubeconfig, &server).map_err(|e| CliError::request(cmd, e.to_string()))
}
