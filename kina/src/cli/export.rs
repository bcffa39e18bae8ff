//! `kina export kubeconfig` and `kina export logs`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env};
use crate::config::DEFAULT_CLUSTER_NAME;
use crate::kubeconfig;

/// `kina export …`
#[derive(Debug, Subcommand)]
pub enum Export {
    /// Exports cluster kubeconfig.
    Kubeconfig(ExportKubeconfigArgs),
    /// Exports logs to a tempdir or DIR if specified
    #[command(about = "Exports logs to a tempdir or [DIR] if specified")]
    Logs(ExportLogsArgs),
}

/// Flags of `kina export kubeconfig`.
#[derive(Debug, Args)]
pub struct ExportKubeconfigArgs {
    /// The cluster context name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Kubeconfig to update instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Use the internal (node network) address instead of the host one.
    #[arg(long)]
    pub internal: bool,
}

/// Flags of `kina export logs`.
#[derive(Debug, Args)]
pub struct ExportLogsArgs {
    /// Directory to write the logs to (a new temporary directory when omitted).
    pub dir: Option<PathBuf>,
    /// The cluster context name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
}

/// Run `kina export …`.
pub fn run(what: Export, env: &Env) -> Result<(), CliError> {
    match what {
        Export::Kubeconfig(a) => {
            const CMD: &str = "kina export kubeconfig";
            let kc = super::get::cluster_kubeconfig(CMD, &a.name, a.internal, env)?;
            let path = kubeconfig::path(a.kubeconfig.as_deref());
            kubeconfig::merge(&path, &a.name, &kc)
                .map_err(|e| CliError::request(CMD, e.to_string()))?;
            env.status.line(&format!(
                "Set kubectl context to {:?}",
                kubeconfig::context_name(&a.name)
            ));
            Ok(())
        }
        Export::Logs(a) => export_logs(a, env),
    }
}

fn export_logs(a: ExportLogsArgs, env: &Env) -> Result<(), CliError> {
    const CMD: &str = "kina export logs";
    let nodes = env
        .provider
        .list_nodes(&a.name)
        .map_err(CliError::provider(CMD))?;
    if nodes.is_empty() {
        return Err(CliError::request(
            CMD,
            format!("unknown cluster {:?}", a.name),
        ));
    }
    let (dir, ours) = match a.dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("kina-logs-{}-{}", a.name, std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|error| CliError::File {
        command: CMD,
        path: dir.clone(),
        error,
    })?;
    for node in &nodes {
        // Each node writes its own directory, `<dir>/<node name>`.
        if let Err(e) = node.collect_logs(&dir.join(node.name())) {
            if ours {
                // Nothing of value was collected into the directory we made.
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(CliError::provider(CMD)(e));
        }
    }
    env.status
        .line(&format!("Exported logs for cluster {:?} to:", a.name));
    println!("{}", dir.display());
    Ok(())
}
