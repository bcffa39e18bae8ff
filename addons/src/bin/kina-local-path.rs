//! `kina-local-path`: kina's host-path volume provisioner, one per node (see
//! `kina_addons::storage`).

use anyhow::Context as _;
use clap::Parser;
use kina_addons::storage::{DEFAULT_STORAGE_DIR, controller};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "kina's local-path volume provisioner (rancher.io/local-path)"
)]
struct Args {
    /// This node's name (downward API spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Where volume directories are created (a hostPath mount of the same path on the node).
    #[arg(long, env = "STORAGE_DIR", default_value = DEFAULT_STORAGE_DIR)]
    storage_dir: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kina_addons::logging::init();
    let args = Args::parse();
    if args.node_name.trim().is_empty() {
        anyhow::bail!("NODE_NAME is empty: set it from the downward API (fieldRef spec.nodeName)");
    }
    let meta = std::fs::metadata(&args.storage_dir)
        .with_context(|| format!("storage directory {}", args.storage_dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "storage directory {} is not a directory",
        args.storage_dir.display()
    );
    let client = kina_addons::kube_client::in_cluster(None).context("Kubernetes API client")?;
    controller::run(
        client,
        controller::Settings {
            node_name: args.node_name,
            storage_dir: args.storage_dir,
        },
    )
    .await;
    anyhow::bail!("the watches ended")
}
