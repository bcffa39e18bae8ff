//! `kina create cluster`: load and validate the config before touching anything, then
//! bring the nodes up through the provider with kind's step-by-step output.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env, duration};
use crate::bootstrap;
use crate::config::{self, IpFamily, Loaded, NodeRole, PortMapping};
use crate::kubeconfig;
use crate::provider::{LoadBalancerSpec, Node, NodeSpec, Role, node_names};

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

/// The containers a config asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    /// The Kubernetes nodes, in config order.
    pub nodes: Vec<NodeSpec>,
    /// The API server load balancer, when there are several control planes.
    pub load_balancer: Option<LoadBalancerSpec>,
}

/// Plan the containers as kind does: with one control plane it publishes the API server
/// on `apiServerAddress:apiServerPort`; with several, an external load balancer takes
/// that endpoint and each control plane publishes 6443 on a free loopback port.
pub fn plan(cluster: &config::Cluster) -> ClusterPlan {
    let net = &cluster.networking;
    let control_planes = cluster
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .count();
    let with_lb = control_planes > 1;
    let mut roles: Vec<Role> = cluster.nodes.iter().map(|n| Role::from(n.role)).collect();
    if with_lb {
        roles.push(Role::ExternalLoadBalancer);
    }
    let mut names = node_names(&cluster.name, &roles);
    let api = PortMapping {
        container_port: 6443,
        host_port: net.api_server_port,
        listen_address: net.api_server_address.clone(),
        protocol: config::Protocol::Tcp,
    };
    let load_balancer = with_lb.then(|| LoadBalancerSpec {
        cluster: cluster.name.clone(),
        name: names.pop().unwrap_or_default(),
        listen: api.clone(),
        ip_family: net.ip_family,
    });
    let cp_api = if with_lb {
        let loopback = match net.ip_family {
            IpFamily::Ipv6 => "::1",
            IpFamily::Ipv4 | IpFamily::Dual => "127.0.0.1",
        };
        PortMapping {
            host_port: 0,
            listen_address: loopback.to_string(),
            ..api
        }
    } else {
        api
    };
    let nodes = cluster
        .nodes
        .iter()
        .zip(names)
        .map(|(node, name)| {
            let mut ports = node.extra_port_mappings.clone();
            if node.role == NodeRole::ControlPlane {
                ports.push(cp_api.clone());
            }
            NodeSpec {
                cluster: cluster.name.clone(),
                name,
                role: node.role.into(),
                image: node.image.clone(),
                mounts: node.extra_mounts.clone(),
                ports,
                labels: node.labels.clone(),
                ip_family: net.ip_family,
            }
        })
        .collect();
    ClusterPlan {
        nodes,
        load_balancer,
    }
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
    let plan = plan(cluster);
    let mut planned: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    planned.extend(plan.load_balancer.iter().map(|lb| lb.name.clone()));
    let mut created: Vec<Box<dyn Node>> = Vec::new();
    let prepared = env.status.step("Preparing nodes 📦", || {
        created = env.provider.create_nodes(&plan.nodes)?;
        if let Some(lb) = &plan.load_balancer {
            let cps: Vec<&dyn Node> = created
                .iter()
                .filter(|n| n.role() == Role::ControlPlane)
                .map(|n| n.as_ref())
                .collect();
            let lb = env.provider.create_load_balancer(lb, &cps)?;
            created.push(lb);
        }
        Ok(())
    });
    if let Err(e) = prepared {
        cleanup(env, name, &planned, args.retain);
        return Err(CliError::provider(CMD)(e));
    }

    let result = bootstrap_cluster(&args, env, cluster, &created);
    if let Err(e) = result {
        cleanup(env, name, &planned, args.retain);
        return Err(e);
    }
    Ok(())
}

/// Runs kubeadm and the addons in the nodes, then records and exports the kubeconfig.
fn bootstrap_cluster(
    args: &CreateClusterArgs,
    env: &Env,
    cluster: &config::Cluster,
    created: &[Box<dyn Node>],
) -> Result<(), CliError> {
    let name = cluster.name.as_str();
    let record = env.store.get(name)?.ok_or_else(|| {
        CliError::request(
            CMD,
            format!("cluster {name:?} vanished from the state store"),
        )
    })?;
    let kube_nodes: Vec<&dyn Node> = created
        .iter()
        .filter(|n| n.role() != Role::ExternalLoadBalancer)
        .map(|n| n.as_ref())
        .collect();
    // The API server as the nodes reach it: the load balancer, else the control plane.
    let entry = created
        .iter()
        .find(|n| n.role() == Role::ExternalLoadBalancer)
        .or_else(|| created.iter().find(|n| n.role() == Role::ControlPlane))
        .ok_or_else(|| CliError::request(CMD, "the cluster has no control-plane node"))?;
    let net = entry.network().map_err(CliError::provider(CMD))?;
    let endpoint = match (net.ipv4, net.ipv6) {
        (Some(v4), _) if cluster.networking.ip_family != IpFamily::Ipv6 => format!("{v4}:6443"),
        (_, Some(v6)) => format!("[{v6}]:6443"),
        (Some(v4), None) => format!("{v4}:6443"),
        (None, None) => {
            return Err(CliError::request(
                CMD,
                format!(
                    "node {} has no address on the cluster network",
                    entry.name()
                ),
            ));
        }
    };
    // Where the host reaches the API server: the port published for 6443.
    let published = record
        .nodes
        .iter()
        .find(|n| n.name == entry.name())
        .and_then(|n| n.ports.iter().find(|p| p.container_port == 6443))
        .ok_or_else(|| {
            CliError::request(
                CMD,
                format!("node {} publishes no API server port", entry.name()),
            )
        })?;
    let host = published.listen_address;
    let host_port = published.host_port;
    let bplan = bootstrap::Plan {
        cluster,
        nodes: kube_nodes,
        control_plane_endpoint: endpoint,
        host_api_address: host.to_string(),
        wait: args.wait,
    };
    let done =
        bootstrap::run(&bplan, &env.status).map_err(|e| CliError::request(CMD, e.to_string()))?;
    let server = match host {
        std::net::IpAddr::V6(a) => format!("https://[{a}]:{host_port}"),
        std::net::IpAddr::V4(a) => format!("https://{a}:{host_port}"),
    };
    let kubeconfig = kubeconfig::from_admin_conf(&done.admin_kubeconfig, name, &server)
        .map_err(|e| CliError::request(CMD, e.to_string()))?;
    env.store.update(name, |rec| {
        let mut rec = rec.unwrap_or_else(|| crate::state::ClusterRecord::new(name));
        rec.api_server = Some(crate::state::ApiServerEndpoint {
            address: host,
            port: host_port,
        });
        rec.kubeconfig = Some(kubeconfig.clone());
        (Some(rec), ())
    })?;
    let path = kubeconfig::path(args.kubeconfig.as_deref());
    kubeconfig::merge(&path, name, &kubeconfig)
        .map_err(|e| CliError::request(CMD, e.to_string()))?;
    let context = kubeconfig::context_name(name);
    env.status
        .line(&format!("Set kubectl context to {context:?}"));
    env.status.line(&format!(
        "You can now use your cluster with:\n\nkubectl cluster-info --context {context}\n\nHave a nice day! 👋"
    ));
    Ok(())
}

/// Remove what a failed create made (every planned node: deleting one that was never made
/// is a no-op), unless `--retain` asks to keep it for debugging.
fn cleanup(env: &Env, cluster: &str, planned: &[String], retain: bool) {
    if retain {
        env.status.line(&format!(
            "Retaining the nodes of cluster {cluster:?} for debugging (--retain)"
        ));
        return;
    }
    if let Err(e) = env.provider.delete_nodes(cluster, planned) {
        tracing::error!("{CMD}: removing the nodes of the failed cluster: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::provider::{ExecOutput, NodeNetwork, Provider, ProviderError};
    use crate::state::StateStore;
    use crate::status::Status;

    /// A provider that creates nothing real, recording what it was asked to do, so the
    /// create sequence (image, nodes, load balancer, cleanup) can be checked.
    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
    }

    #[derive(Debug)]
    struct Made(String, Role);

    impl Node for Made {
        fn name(&self) -> &str {
            &self.0
        }
        fn role(&self) -> Role {
            self.1
        }
        fn exec(&self, _: &[String], _: Option<&[u8]>) -> Result<ExecOutput, ProviderError> {
            unreachable!("create does not exec before bootstrapping")
        }
        fn exec_interactive(&self, _: &[String], _: bool, _: bool) -> Result<i32, ProviderError> {
            unreachable!("create never runs interactive commands")
        }
        fn network(&self) -> Result<NodeNetwork, ProviderError> {
            Ok(NodeNetwork::default())
        }
        fn load_image_archive(&self, _: &Path) -> Result<(), ProviderError> {
            unreachable!()
        }
        fn collect_logs(&self, _: &Path) -> Result<(), ProviderError> {
            unreachable!()
        }
    }

    impl Recorder {
        fn log(&self, s: String) {
            self.calls.lock().unwrap().push(s);
        }
    }

    impl Provider for Recorder {
        fn ensure_image(&self, image: &str) -> Result<(), ProviderError> {
            self.log(format!("image {image}"));
            Ok(())
        }
        fn create_nodes(&self, specs: &[NodeSpec]) -> Result<Vec<Box<dyn Node>>, ProviderError> {
            self.log(format!("nodes {}", specs.len()));
            Ok(specs
                .iter()
                .map(|s| Box::new(Made(s.name.clone(), s.role)) as Box<dyn Node>)
                .collect())
        }
        fn create_load_balancer(
            &self,
            spec: &LoadBalancerSpec,
            cps: &[&dyn Node],
        ) -> Result<Box<dyn Node>, ProviderError> {
            let backends: Vec<&str> = cps.iter().map(|n| n.name()).collect();
            self.log(format!("lb {} -> {}", spec.name, backends.join(",")));
            Ok(Box::new(Made(
                spec.name.clone(),
                Role::ExternalLoadBalancer,
            )))
        }
        fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
            Ok(vec![])
        }
        fn list_nodes(&self, _: &str) -> Result<Vec<Box<dyn Node>>, ProviderError> {
            Ok(vec![])
        }
        fn delete_nodes(&self, cluster: &str, nodes: &[String]) -> Result<(), ProviderError> {
            self.log(format!("delete {cluster}: {}", nodes.join(",")));
            Ok(())
        }
    }

    fn run_create(config: &str, retain: bool) -> (Result<(), CliError>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, config).unwrap();
        let rec = Recorder::default();
        let calls = rec.calls.clone();
        let env = Env {
            store: StateStore::open(dir.path().join("state")),
            provider: Box::new(rec),
            status: Status::quiet(),
        };
        let args = CreateClusterArgs {
            name: Some("ha".into()),
            config: Some(cfg.to_string_lossy().into_owned()),
            image: None,
            wait: Duration::ZERO,
            retain,
            kubeconfig: None,
        };
        let r = create_cluster(args, &env);
        let calls = calls.lock().unwrap().clone();
        (r, calls)
    }

    const HA: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: control-plane
  image: other/node:v1
- role: worker
";

    #[test]
    fn failed_bootstrap_removes_every_created_container() {
        let (r, calls) = run_create(HA, false);
        let e = r.unwrap_err().to_string();
        // The recorder keeps no state, so the bootstrap stops at the missing record.
        assert!(e.contains("vanished from the state store"), "{e}");
        assert_eq!(
            calls,
            vec![
                "image kina/node:v1.36.2",
                "image other/node:v1",
                "nodes 3",
                "lb ha-external-load-balancer -> ha-control-plane,ha-control-plane2",
                "delete ha: ha-control-plane,ha-control-plane2,ha-worker,ha-external-load-balancer",
            ]
        );
    }

    #[test]
    fn retain_keeps_the_containers() {
        let (r, calls) = run_create(HA, true);
        assert!(r.is_err());
        assert!(!calls.iter().any(|c| c.starts_with("delete")), "{calls:?}");
    }
}
