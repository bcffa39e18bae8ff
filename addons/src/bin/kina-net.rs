//! `kina-net`: kina's CNI daemon (see `kina_addons::net`). Settings come from the environment
//! (`NODE_NAME`, `POD_SUBNET`, optional `CONTROL_PLANE_ENDPOINT`); flags only move files.

use anyhow::Context as _;
use clap::Parser;
use kina_addons::net::{NetConfig, conflist, sync::NetSync, watch};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "kina's node network daemon: CNI config, pod routes, masquerade"
)]
struct Args {
    /// Where to write the node's CNI config.
    #[arg(long, default_value = conflist::CONFLIST_PATH)]
    cni_config: std::path::PathBuf,
    /// The nft binary loading the masquerade table (a full path: images set no PATH).
    #[arg(long, default_value = "/usr/sbin/nft")]
    nft: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kina_addons::logging::init();
    let args = Args::parse();
    let config = NetConfig::from_env().context("kina-net settings")?;
    tracing::info!(node = %config.node_name, pod_subnets = ?config.pod_subnets, endpoint = ?config.control_plane_endpoint, "starting kina-net");
    let (conn, handle, _) = rtnetlink::new_connection().context("open a netlink socket")?;
    tokio::spawn(conn);
    let client = kina_addons::kube_client::in_cluster(config.control_plane_endpoint.as_deref())
        .context("Kubernetes API client")?;
    let sync = NetSync::new(config, handle, args.cni_config, args.nft);
    watch::run(client, sync).await;
    anyhow::bail!("the Node watch ended")
}
