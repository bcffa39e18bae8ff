//! cri-server binary: flags, logging, signals; everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use cri_server::config::{Config, DEFAULT_CONFIG};

/// CRI v1 server for kubelet and crictl.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Unix socket to serve CRI on (overrides `listen`).
    #[arg(long)]
    listen: Option<PathBuf>,
    /// Persistent state directory (overrides `root_dir`).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory (overrides `state_dir`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Directory of `<registry>/hosts.toml` files (overrides `registry.config_path`).
    #[arg(long)]
    registry_config_path: Option<PathBuf>,
    /// Log filter (overrides `log_level`).
    #[arg(long)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Manage the image store directly (safe while the server runs).
    #[command(subcommand)]
    Images(ImagesCommand),
}

#[derive(Debug, clap::Subcommand)]
enum ImagesCommand {
    /// Import OCI image-layout or `docker save` tars, with their tags.
    Import { archives: Vec<PathBuf> },
    /// Export an image (ID, name or digest reference) as an OCI image-layout tar.
    Export { image: String, archive: PathBuf },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(p) => Config::load(p, false)?,
        None => Config::load(DEFAULT_CONFIG.as_ref(), true)?,
    };
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.root {
        config.root_dir = v;
    }
    if let Some(v) = args.state {
        config.state_dir = v;
    }
    if let Some(v) = args.registry_config_path {
        config.registry.config_path = v;
    }
    if let Some(v) = args.log_level {
        config.log_level = v;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("log_level {:?}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")?;
    rt.block_on(async {
        match args.command {
            None => serve(&config).await,
            Some(Command::Images(cmd)) => images(&config, cmd).await,
        }
    })
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
    };
    cri_server::server::serve(config, shutdown)
        .await
        .context("cri-server")
}

async fn images(config: &Config, cmd: ImagesCommand) -> anyhow::Result<()> {
    let images = cri_server::server::image_manager(config)?;
    match cmd {
        ImagesCommand::Import { archives } => {
            anyhow::ensure!(
                !archives.is_empty(),
                "images import: name at least one archive"
            );
            for a in archives {
                let imported = images
                    .import_archive(&a)
                    .await
                    .with_context(|| format!("import {}", a.display()))?;
                for (names, rec) in imported {
                    println!("{} {}", rec.id, names.join(" "));
                }
            }
        }
        ImagesCommand::Export { image, archive } => {
            images
                .export_archive(&image, &archive)
                .await
                .with_context(|| format!("export {image}"))?;
        }
    }
    Ok(())
}
