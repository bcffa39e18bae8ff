//! The actions of `kina create cluster` after the nodes run, each one status line, in
//! kind's order.

use std::time::{Duration, Instant};

use super::settings::{self, NodeFacts, NodeInputs, Settings};
use super::{BootstrapError, Bootstrapped, Plan, exec, manifests};
use crate::kubeadm::{self, CONFIG_PATH, PATCHES_DIR};
use crate::provider::{Node, Role};
use crate::status::Status;

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// Runs the pipeline.
pub fn run(plan: &Plan<'_>, status: &Status) -> Result<Bootstrapped, BootstrapError> {
    let cps: Vec<&dyn Node> = plan
        .nodes
        .iter()
        .copied()
        .filter(|n| n.role() == Role::ControlPlane)
        .collect();
    let workers: Vec<&dyn Node> = plan
        .nodes
        .iter()
        .copied()
        .filter(|n| n.role() == Role::Worker)
        .collect();
    let Some(&first) = cps.first() else {
        return Err(BootstrapError::Invalid(
            "the cluster has no control-plane node".into(),
        ));
    };
    let settings = Settings::for_host();
    let token = kubeadm::random_token().map_err(|error| BootstrapError::Kubeadm {
        node: first.name().to_string(),
        error,
    })?;
    let certificate_key =
        match cps.len() > 1 {
            true => Some(kubeadm::random_certificate_key().map_err(|error| {
                BootstrapError::Kubeadm {
                    node: first.name().to_string(),
                    error,
                }
            })?),
            false => None,
        };

    status.step("Writing configuration 📜", || {
        let facts = NodeFacts::read(first)?;
        for (index, node) in plan.nodes.iter().enumerate() {
            write_config(&NodeInputs {
                cluster: plan.cluster,
                config_index: index,
                node: *node,
                join: !std::ptr::addr_eq(*node, first),
                control_plane_endpoint: &plan.control_plane_endpoint,
                host_api_address: &plan.host_api_address,
                token: &token,
                certificate_key: certificate_key.as_deref(),
                facts: &facts,
                settings: &settings,
                untainted: workers.is_empty(),
            })?;
        }
        Ok::<_, BootstrapError>(())
    })?;

    let admin_kubeconfig = status.step("Starting control-plane 🕹️", || {
        let mut argv = vec![
            "kubeadm",
            "init",
            "--config",
            CONFIG_PATH,
            "--skip-token-print",
            "--v=6",
        ];
        if certificate_key.is_some() {
            argv.push("--upload-certs");
        }
        exec::run(first, &argv, None)?;
        exec::run(first, &["cat", ADMIN_CONF], None)
    })?;

    if !plan.cluster.networking.disable_default_cni {
        status.step("Installing CNI 🔌", || {
            apply(
                first,
                &manifests::cni_manifest(plan.cluster, &plan.control_plane_endpoint),
            )
        })?;
    }
    status.step("Installing StorageClass 💾", || {
        apply(first, &manifests::storage_manifest(plan.cluster))
    })?;

    if cps.len() > 1 {
        // One at a time, as kind does: etcd members join sequentially.
        status.step("Joining more control-plane nodes 🎮", || {
            cps[1..].iter().try_for_each(|n| join(*n))
        })?;
    }
    if !workers.is_empty() {
        status.step("Joining worker nodes 🚜", || {
            std::thread::scope(|s| {
                let handles: Vec<_> = workers.iter().map(|n| s.spawn(move || join(*n))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BootstrapError::Invalid("a join thread panicked".into()))
                        })
                    })
                    .collect::<Result<Vec<()>, _>>()
            })
        })?;
    }
    if !plan.wait.is_zero() {
        let title = format!(
            "Waiting ≤ {} for control-plane = Ready ⏳",
            crate::cli::duration::format(plan.wait)
        );
        status.step(&title, || wait_ready(first, plan.wait))?;
    }
    Ok(Bootstrapped { admin_kubeconfig })
}

fn write_config(i: &NodeInputs<'_>) -> Result<(), BootstrapError> {
    let node = i.node;
    let data = settings::config_data(i)?;
    let node_cfg = &i.cluster.nodes[i.config_index];
    let generated =
        kubeadm::generate(&data, i.cluster, node_cfg).map_err(|error| BootstrapError::Kubeadm {
            node: node.name().to_string(),
            error,
        })?;
    exec::write_file(node, CONFIG_PATH, &generated.config)?;
    for f in &generated.files {
        exec::write_file(node, &f.path, &f.content)?;
    }
    if let Some(dir) = &generated.copy_patches_from {
        // The user's patches directory (mounted into the node) joins kina's etcd patches.
        exec::run(
            node,
            &[
                "sh",
                "-c",
                "mkdir -p \"$2\" && cp -a \"$1\"/. \"$2\"/",
                "sh",
                dir,
                PATCHES_DIR,
            ],
            None,
        )?;
    }
    Ok(())
}

fn join(node: &dyn Node) -> Result<(), BootstrapError> {
    exec::run(
        node,
        &["kubeadm", "join", "--config", CONFIG_PATH, "--v=6"],
        None,
    )
    .map(drop)
}

fn apply(node: &dyn Node, manifest: &manifests::Manifest) -> Result<(), BootstrapError> {
    exec::run(
        node,
        &["kubectl", "--kubeconfig", ADMIN_CONF, "apply", "-f", "-"],
        Some(manifest.yaml.as_bytes()),
    )
    .map(drop)
}

/// Waits until every control-plane Node reports Ready.
fn wait_ready(node: &dyn Node, wait: Duration) -> Result<(), BootstrapError> {
    let deadline = Instant::now() + wait;
    loop {
        let out = exec::run(
            node,
            &[
                "kubectl",
                "--kubeconfig",
                ADMIN_CONF,
                "get",
                "nodes",
                "--selector=node-role.kubernetes.io/control-plane",
                "-o=jsonpath={.items..status.conditions[?(@.type==\"Ready\")].status}",
            ],
            None,
        );
        if let Ok(s) = &out
            && !s.trim().is_empty()
            && s.split_whitespace().all(|v| v == "True")
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BootstrapError::Timeout {
                what: "the control-plane nodes to be Ready".into(),
                waited: wait,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
