//! `kina build node-image`: the flags kind takes; the builder itself lives in the
//! node-image crate, which this build does not include.

use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, Env};

/// `kina build …`
#[derive(Debug, Subcommand)]
pub enum Build {
    /// Build the node image which contains Kubernetes build artifacts and other kina requirements.
    NodeImage(NodeImageArgs),
}

/// Where Kubernetes comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceType {
    /// A release tarball URL.
    Url,
    /// A release tarball on disk.
    File,
    /// A Kubernetes release version, e.g. v1.36.2.
    Release,
    /// A Kubernetes source tree.
    Source,
}

/// Flags of `kina build node-image`.
#[derive(Debug, Args)]
pub struct NodeImageArgs {
    /// Kubernetes source: a release version, tarball URL or file, or source directory.
    pub source: Option<String>,
    /// How to read SOURCE (guessed from SOURCE when omitted).
    #[arg(long = "type", value_enum)]
    pub source_type: Option<SourceType>,
    /// Name:tag of the resulting image.
    #[arg(long, default_value = "kina/node:latest")]
    pub image: String,
    /// Name:tag of the base image to use for the build.
    #[arg(long)]
    pub base_image: Option<String>,
    /// Architecture to build for (defaults to the host's).
    #[arg(long)]
    pub arch: Option<String>,
}

/// Run `kina build …`.
pub fn run(what: Build, _env: &Env) -> Result<(), CliError> {
    let Build::NodeImage(a) = what;
    Err(CliError::request(
        "kina build node-image",
        format!(
            "the node image builder is not available in this build (cannot build {})",
            a.image
        ),
    ))
}
