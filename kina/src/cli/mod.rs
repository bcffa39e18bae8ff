//! The kina command line: one file per command, the same verbs and flags as kind's.
//!
//! Commands work through [`Env`]: the state store, a [`Provider`] for node containers
//! and the [`Status`] output, so a runtime-backed provider slots in without changes here.

pub mod build;
pub mod completion;
pub mod create;
pub mod delete;
pub mod duration;
pub mod exec;
pub mod export;
pub mod get;
pub mod load;
pub mod version;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::provider::{Provider, ProviderError};
use crate::state::{StateError, StateStore};
use crate::status::Status;

/// Environment variable giving the default cluster name (kind: `KIND_CLUSTER_NAME`).
pub const CLUSTER_NAME_ENV: &str = "KINA_CLUSTER_NAME";

/// kina creates and manages local Kubernetes clusters whose nodes run on kina's runtime.
#[derive(Debug, Parser)]
#[command(
    name = "kina",
    disable_version_flag = true,
    after_help = "Environment:\n  KINA_CLUSTER_NAME  default for --name (kina)\n  KINA_STATE_DIR     cluster state directory (/var/lib/kina)\n  KUBECONFIG         kubeconfig to update (first entry), else $HOME/.kube/config"
)]
pub struct Cli {
    /// Silence all stderr output except errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Info log verbosity, higher is more verbose.
    #[arg(
        short = 'v',
        long,
        global = true,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub verbosity: i32,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates cluster
    #[command(about = "Creates one of [cluster]")]
    Create {
        /// What to create.
        #[command(subcommand)]
        what: create::Create,
    },
    /// Deletes cluster, clusters
    #[command(about = "Deletes one of [cluster, clusters]")]
    Delete {
        /// What to delete.
        #[command(subcommand)]
        what: delete::Delete,
    },
    /// Gets clusters, nodes, kubeconfig
    #[command(about = "Gets one of [clusters, nodes, kubeconfig]")]
    Get {
        /// What to get.
        #[command(subcommand)]
        what: get::Get,
    },
    /// Exports kubeconfig, logs
    #[command(about = "Exports one of [kubeconfig, logs]")]
    Export {
        /// What to export.
        #[command(subcommand)]
        what: export::Export,
    },
    /// Loads images into nodes.
    Load {
        /// What to load.
        #[command(subcommand)]
        what: load::Load,
    },
    /// Build node-image
    #[command(about = "Build one of [node-image]")]
    Build {
        /// What to build.
        #[command(subcommand)]
        what: build::Build,
    },
    /// Runs a command in a node (`-it` for an interactive terminal).
    Exec(exec::ExecArgs),
    /// Opens an interactive shell in a node.
    Shell(exec::ShellArgs),
    /// Prints the kina CLI version.
    Version,
    /// Outputs shell completion code for the specified shell (bash, zsh or fish).
    Completion(completion::CompletionArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The cluster config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command run in a node exited with `status` (the exit code kina passes on).
    #[error("the command exited with status {status}")]
    Exited {
        /// The exit status.
        status: i32,
    },
    /// The provider failed while running `command`.
    #[error("{command}: {error}")]
    Provider {
        /// The command, e.g. `kina create cluster`.
        command: &'static str,
        /// The provider's error.
        error: ProviderError,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The request cannot be carried out as given.
    #[error("{command}: {message}")]
    Request {
        /// The command.
        command: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Building a node image failed.
    #[error("{command}: {error}")]
    NodeImage {
        /// The command.
        command: &'static str,
        /// The builder's error.
        error: crate::node_image::NodeImageError,
    },
    /// A file could not be read or written.
    #[error("{command}: {}: {error}", path.display())]
    File {
        /// The command.
        command: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl CliError {
    /// Wrap a provider error with the command it happened in.
    pub fn provider(command: &'static str) -> impl FnOnce(ProviderError) -> CliError {
        move |error| CliError::Provider { command, error }
    }

    /// A request error.
    pub fn request(command: &'static str, message: impl Into<String>) -> CliError {
        CliError::Request {
            command,
            message: message.into(),
        }
    }
}

/// What commands run against.
pub struct Env {
    /// The cluster-state store.
    pub store: StateStore,
    /// Creates and finds node containers.
    pub provider: Box<dyn Provider>,
    /// Step output on stderr.
    pub status: Status,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("store", &self.store)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli, env: &Env) -> Result<(), CliError> {
    match cli.command {
        Command::Create { what } => create::run(what, env),
        Command::Delete { what } => delete::run(what, env),
        Command::Get { what } => get::run(what, env),
        Command::Export { what } => export::run(what, env),
        Command::Load { what } => load::run(what, env),
        Command::Build { what } => build::run(what, env),
        Command::Exec(a) => exec::exec(a, env),
        Command::Shell(a) => exec::shell(a, env),
        Command::Version => {
            println!("{}", version::version_line());
            Ok(())
        }
        Command::Completion(args) => completion::run(&args),
    }
}
