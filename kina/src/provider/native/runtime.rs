//! The node runtime: kina-runtime's runc-compatible CLI, driven as a program so node
//! containers outlive the kina process and any later `kina` (or `kina-runtime list`) finds
//! them under one `--root`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::NativeError;
use crate::provider::ExecOutput;

/// Environment variable naming the runtime binary (default: `kina-runtime` beside the
/// kina executable, else on `PATH`).
pub const RUNTIME_ENV: &str = "KINA_RUNTIME";

/// A container's state as `state` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// created, running, paused or stopped.
    pub status: String,
    /// Init process (0 when stopped).
    pub pid: i32,
}

/// The runtime binary and its state root.
#[derive(Debug, Clone)]
pub struct RuntimeCli {
    binary: PathBuf,
    root: PathBuf,
}

/// Finds the runtime binary: `$KINA_RUNTIME`, then beside the current executable, then
/// `PATH` (a bare `kina-runtime`, which fails with [`NativeError::RuntimeNotFound`] when
/// used, if it is nowhere).
pub fn locate() -> PathBuf {
    if let Some(p) = std::env::var_os(RUNTIME_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("kina-runtime")));
    sibling
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("kina-runtime"))
}

impl RuntimeCli {
    /// The runtime `binary` keeping its state under `root`.
    pub fn new(binary: PathBuf, root: PathBuf) -> Self {
        Self { binary, root }
    }

    fn spawn_error(&self, error: std::io::Error) -> NativeError {
        if error.kind() == std::io::ErrorKind::NotFound {
            NativeError::RuntimeNotFound
        } else {
            NativeError::Spawn {
                program: self.binary.clone(),
                error,
            }
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c
    }

    fn run(&self, id: &str, what: &str, cmd: &mut Command) -> Result<Vec<u8>, NativeError> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            return Err(NativeError::Runtime {
                node: id.to_string(),
                what: format!("kina-runtime {what}"),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// Creates container `id` from `bundle`, stopped at the exec fifo until [`Self::start`];
    /// the container's stdout and stderr go to `console` (the node's console log).
    pub fn create(&self, id: &str, bundle: &Path, console: &Path) -> Result<(), NativeError> {
        let log = File::create(console).map_err(|e| NativeError::io("create", console, e))?;
        let err = log
            .try_clone()
            .map_err(|e| NativeError::io("open", console, e))?;
        let status = self
            .command()
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .status()
            .map_err(|e| self.spawn_error(e))?;
        if !status.success() {
            let text = std::fs::read_to_string(console).unwrap_or_default();
            return Err(NativeError::Runtime {
                node: id.to_string(),
                what: "kina-runtime create".into(),
                output: text.trim().to_string(),
            });
        }
        Ok(())
    }

    /// Starts a created container.
    pub fn start(&self, id: &str) -> Result<(), NativeError> {
        self.run(id, "start", self.command().arg("start").arg(id))
            .map(drop)
    }

    /// The container's state, `None` when the runtime does not know it.
    pub fn state(&self, id: &str) -> Result<Option<ContainerState>, NativeError> {
        let out = self
            .command()
            .arg("state")
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            return Ok(None);
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| NativeError::Runtime {
                node: id.to_string(),
                what: "kina-runtime state".into(),
                output: format!("unreadable state: {e}"),
            })?;
        Ok(Some(ContainerState {
            status: v["status"].as_str().unwrap_or("unknown").to_string(),
            pid: v["pid"].as_i64().unwrap_or(0) as i32,
        }))
    }

    /// Sends `signal` (a number or name) to every process of the container.
    pub fn kill_all(&self, id: &str, signal: &str) -> Result<(), NativeError> {
        self.run(
            id,
            "kill",
            self.command().args(["kill", "--all"]).arg(id).arg(signal),
        )
        .map(drop)
    }

    /// Removes the container, killing it first if it still runs.
    pub fn delete_force(&self, id: &str) -> Result<(), NativeError> {
        self.run(
            id,
            "delete",
            self.command().args(["delete", "--force"]).arg(id),
        )
        .map(drop)
    }

    /// Runs `argv` in the container and waits, feeding it `stdin`.
    pub fn exec(
        &self,
        id: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, NativeError> {
        let mut cmd = self.command();
        cmd.arg("exec")
            .arg(id)
            .arg("--")
            .args(argv.iter().map(OsStr::new));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        // Feed stdin from a thread so a command that writes a lot before reading cannot
        // deadlock against us.
        let feeder = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        if let Some(f) = feeder {
            let _ = f.join();
        }
        use std::os::unix::process::ExitStatusExt;
        let status = out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Ok(ExecOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            status,
        })
    }

    /// An interactive exec: the runtime inherits this process's stdout and stderr, stdin
    /// with `stdin`, and the terminal with `tty`; returns the exit status.
    pub fn exec_interactive(
        &self,
        id: &str,
        argv: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<i32, NativeError> {
        let mut cmd = self.command();
        cmd.arg("exec");
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg(id).arg("--").args(argv.iter().map(OsStr::new));
        if !stdin {
            cmd.stdin(Stdio::null());
        }
        let status = cmd.status().map_err(|e| self.spawn_error(e))?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}
