//! `exec <id> <command...>` or `exec -p process.json <id>`.

use std::path::PathBuf;

use super::CliError;
use crate::container::{ExecOptions, Runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Process JSON file (`-` for stdin) instead of a command.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Do not wait for the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Extra environment (KEY=value), repeatable.
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability, repeatable.
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Accepted for compatibility (no SELinux on the hosts kina targets).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    if a.process_label.is_some() || a.apparmor.is_some() {
        tracing::warn!("--process-label/--apparmor are ignored");
    }
    if a.process.is_none() && a.command.is_empty() {
        return Err(CliError::Usage(format!(
            "exec {}: a command or -p process.json is required",
            a.id
        )));
    }
    let opts = ExecOptions {
        id: a.id,
        process: a.process,
        args: a.command,
        tty: a.tty,
        detach: a.detach,
        pid_file: a.pid_file,
        env: a.env,
        cwd: a.cwd,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        console_socket: a.console_socket,
        no_new_privs: a.no_new_privs,
        preserve_fds: a.preserve_fds,
    };
    Ok(rt.exec(&opts)?)
}
