//! The runc-compatible command line: one file per command.
//!
//! Global flags (`--root`, `--log`, `--log-format`, `--debug`, `--systemd-cgroup`) are accepted
//! before or after the command name, like runc's. A failure prints one line naming the
//! container on stderr (and to the `--log` file) and exits non-zero.

mod create;
mod delete;
mod exec;
mod features;
mod kill;
mod list;
mod log;
mod pause;
mod ps;
mod run;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::container::{ContainerError, Runtime};

/// Errors of the command line layer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "kina-runtime",
    version,
    about = "kina's native OCI runtime (runc-compatible CLI)"
)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = crate::state::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// cgroupsPath uses systemd's slice:prefix:name form (written to cgroupfs directly).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (rootless mode is detected).
    #[arg(long, global = true, hide = true)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (it waits for `start`).
    Create(create::Args),
    /// Start a created container.
    Start(start::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Send a signal to the container's init (or every process with --all).
    Kill(kill::Args),
    /// Delete a container.
    Delete(delete::Args),
    /// Create and start a container (in the foreground unless --detach).
    Run(run::Args),
    /// Run a process in a running container.
    Exec(exec::Args),
    /// List containers.
    List(list::Args),
    /// Show the processes of a container.
    Ps(ps::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// Update a container's resource limits.
    Update(update::Args),
    /// Print the features this runtime implements (JSON).
    Features,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let logged = match log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kina-runtime: {e}");
            return 1;
        }
    };
    let rt = Runtime::new(&cli.root, cli.systemd_cgroup);
    match dispatch(&rt, cli.command) {
        Ok(code) => code,
        Err(e) => {
            if logged {
                tracing::error!("{e}");
            }
            eprintln!("kina-runtime: {e}");
            1
        }
    }
}

fn dispatch(rt: &Runtime, command: Command) -> Result<i32, CliError> {
    match command {
        Command::Create(a) => create::run(rt, a),
        Command::Start(a) => start::run(rt, a),
        Command::State(a) => state::run(rt, a),
        Command::Kill(a) => kill::run(rt, a),
        Command::Delete(a) => delete::run(rt, a),
        Command::Run(a) => run::run(rt, a),
        Command::Exec(a) => exec::run(rt, a),
        Command::List(a) => list::run(rt, a),
        Command::Ps(a) => ps::run(rt, a),
        Command::Pause(a) => pause::pause(rt, a),
        Command::Resume(a) => pause::resume(rt, a),
        Command::Update(a) => update::run(rt, a),
        Command::Features => features::run(),
    }
}

/// Prints JSON (pretty, like runc) on stdout.
pub(crate) fn print_json(v: &serde_json::Value) -> Result<i32, CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(v).expect("json serializes");
    writeln!(out, "{text}").map_err(|source| CliError::Io {
        what: "write stdout".into(),
        source,
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_before_and_after_command() {
        let c = Cli::try_parse_from(["kina-runtime", "--root", "/r", "state", "x"]).unwrap();
        assert_eq!(c.root, PathBuf::from("/r"));
        let c = Cli::try_parse_from(["kina-runtime", "delete", "--root", "/q", "-f", "x"]).unwrap();
        assert_eq!(c.root, PathBuf::from("/q"));
    }
}
