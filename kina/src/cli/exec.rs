//! `kina exec NODE -- CMD…` and `kina shell [NODE]`: what `docker exec -it kind-control-plane
//! bash` gives kind users, without Docker.

use clap::Args;

use super::{CLUSTER_NAME_ENV, CliError, Env};
use crate::config::DEFAULT_CLUSTER_NAME;
use crate::provider::{Node, Role};

/// Flags of `kina exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The cluster name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The node to run in.
    pub node: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Flags of `kina shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The cluster name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// The node [default: the cluster's first control plane].
    pub node: Option<String>,
}

fn find_node(
    cmd: &'static str,
    env: &Env,
    cluster: &str,
    node: Option<&str>,
) -> Result<Box<dyn Node>, CliError> {
    let nodes = env
        .provider
        .list_nodes(cluster)
        .map_err(CliError::provider(cmd))?;
    if nodes.is_empty() {
        return Err(CliError::request(
            cmd,
            format!("unknown cluster {cluster:?}"),
        ));
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
    let found = match node {
        Some(want) => nodes.into_iter().find(|n| n.name() == want),
        None => nodes.into_iter().find(|n| n.role() == Role::ControlPlane),
    };
    found.ok_or_else(|| {
        CliError::request(
            cmd,
            format!(
                "no node {:?} in cluster {cluster:?} (nodes: {})",
                node.unwrap_or("control-plane"),
                names.join(", ")
            ),
        )
    })
}

fn finish(status: i32) -> Result<(), CliError> {
    match status {
        0 => Ok(()),
        status => Err(CliError::Exited { status }),
    }
}

/// Run `kina exec`.
pub fn exec(a: ExecArgs, env: &Env) -> Result<(), CliError> {
    const CMD: &str = "kina exec";
    let node = find_node(CMD, env, &a.name, Some(&a.node))?;
    let status = node
        .exec_interactive(&a.command, a.tty, a.interactive)
        .map_err(CliError::provider(CMD))?;
    finish(status)
}

/// Run `kina shell`.
pub fn shell(a: ShellArgs, env: &Env) -> Result<(), CliError> {
    const CMD: &str = "kina shell";
    let node = find_node(CMD, env, &a.name, a.node.as_deref())?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let argv = vec!["bash".to_string(), "-l".to_string()];
    let status = node
        .exec_interactive(&argv, tty, true)
        .map_err(CliError::provider(CMD))?;
    finish(status)
}
