//! OCI runtimes: the [`RuntimeBackend`] seam (create/start/kill/delete/state/exec/update), its
//! implementation over a runc-compatible CLI with every container started through cri-monitor
//! ([`cli`]), the monitor's exit file ([`exit`]), OCI spec generation from CRI requests
//! ([`spec`]) and what the host's cgroups can enforce ([`host`]).

pub mod cli;
pub mod exit;
pub mod host;
pub mod security;
pub mod spec;

use std::path::PathBuf;
use std::time::Duration;

pub use cli::OciCli;
pub use exit::ExitStatus;

/// Errors of an OCI runtime operation, naming the container, the runtime and the step.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A binary could not be run.
    #[error("container {id}: run {bin}: {source}")]
    Spawn {
        id: String,
        bin: PathBuf,
        source: std::io::Error,
    },
    /// The runtime (or monitor) reported a failure.
    #[error("container {id}: {bin} {op} failed: {output}")]
    Failed {
        id: String,
        bin: PathBuf,
        op: &'static str,
        output: String,
    },
    /// The container does not exist in the runtime.
    #[error("container {id}: not known to {bin}")]
    NotFound { id: String, bin: PathBuf },
    /// A file of the bundle or state could not be written or read.
    #[error("container {id}: {op} {path}: {source}")]
    Io {
        id: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The spec could not be built from the request.
    #[error("{0}")]
    InvalidSpec(String),
}

/// Where a container's files live and how its monitor is set up.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub id: String,
    /// Bundle directory holding `config.json` (rootfs path is in the spec).
    pub bundle: PathBuf,
    /// The CRI log file (kubelet's path).
    pub log_path: PathBuf,
    /// Where the monitor records the exit status.
    pub exit_file: PathBuf,
    /// Directory for the attach socket and ctl fifo.
    pub socket_dir: PathBuf,
    pub tty: bool,
    pub stdin: bool,
}

/// A created container: its init and its monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub pid: i32,
    pub monitor_pid: i32,
}

/// What `state` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeState {
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    pub pid: i32,
}

/// Output of a finished exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    /// The timeout struck and the process was killed.
    pub timed_out: bool,
}

/// An OCI runtime as cri-server uses it. Implemented over runc-compatible CLIs ([`OciCli`]);
/// the seam keeps the sandbox/container logic testable without one.
#[tonic::async_trait]
pub trait RuntimeBackend: Send + Sync + std::fmt::Debug {
    /// Runtime binary (for messages).
    fn name(&self) -> String;
    /// Creates the container (init waiting for `start`), supervised by a monitor.
    async fn create(&self, opts: &CreateOptions) -> Result<Created, OciError>;
    /// Lets the created init run the user process.
    async fn start(&self, id: &str) -> Result<(), OciError>;
    /// Sends `signal` to the init (or every process with `all`).
    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), OciError>;
    /// Deletes the runtime state (and cgroup) of the container; idempotent.
    async fn delete(&self, id: &str) -> Result<(), OciError>;
    /// The runtime's view of the container.
    async fn state(&self, id: &str) -> Result<RuntimeState, OciError>;
    /// Runs `process` (an OCI process JSON) in the container and collects its output; on
    /// `timeout` the process is killed.
    async fn exec(
        &self,
        id: &str,
        process: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, OciError>;
    /// Applies new resources (OCI `linux.resources` JSON).
    async fn update(&self, id: &str, resources: &serde_json::Value) -> Result<(), OciError>;
    /// The command that runs the process described by `process_file` in the container in the
    /// foreground (`exec --process F --pid-file P [--tty] ID`), for streaming exec: the caller
    /// wires its stdio. `None` when the backend cannot stream.
    fn exec_command(
        &self,
        _id: &str,
        _process_file: &std::path::Path,
        _pid_file: &std::path::Path,
        _tty: bool,
    ) -> Option<std::process::Command> {
        None
    }
}
