//! `kina load image-archive`: import an image tarball into the runtime of every node
//! (or the nodes named by `--nodes`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CLUSTER_NAME_ENV, CliError, Env};
use crate::config::DEFAULT_CLUSTER_NAME;

const CMD: &str = "kina load image-archive";

/// `kina load …`
#[derive(Debug, Subcommand)]
pub enum Load {
    /// Loads a docker-archive or OCI image tarball into nodes.
    ImageArchive(ImageArchiveArgs),
}

/// Flags of `kina load image-archive`.
#[derive(Debug, Args)]
pub struct ImageArchiveArgs {
    /// The image archive.
    pub file: PathBuf,
    /// The cluster context name.
    #[arg(short = 'n', long, env = CLUSTER_NAME_ENV, default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Comma separated list of nodes to load images into (default: all).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

/// Run `kina load …`.
pub fn run(what: Load, env: &Env) -> Result<(), CliError> {
    let Load::ImageArchive(a) = what;
    let meta = std::fs::metadata(&a.file).map_err(|error| CliError::File {
        command: CMD,
        path: a.file.clone(),
        error,
    })?;
    if !meta.is_file() {
        return Err(CliError::request(
            CMD,
            format!("{} is not a file", a.file.display()),
        ));
    }
    let nodes = env
        .provider
        .list_nodes(&a.name)
        .map_err(CliError::provider(CMD))?;
    if nodes.is_empty() {
        return Err(CliError::request(
            CMD,
            format!("no nodes found for cluster {:?}", a.name),
        ));
    }
    for wanted in &a.nodes {
        if !nodes.iter().any(|n| n.name() == wanted) {
            return Err(CliError::request(
                CMD,
                format!("unknown node {wanted:?} in cluster {:?}", a.name),
            ));
        }
    }
    for node in nodes
        .iter()
        .filter(|n| a.nodes.is_empty() || a.nodes.iter().any(|w| w == n.name()))
    {
        node.load_image_archive(&a.file)
            .map_err(CliError::provider(CMD))?;
    }
    Ok(())
}
