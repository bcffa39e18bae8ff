//! [`RuntimeBackend`] over a runc-compatible CLI (kina-runtime, runc, crun).
//!
//! `create` runs cri-monitor, which runs `<runtime> create` with the container's stdio and stays
//! as the container's supervisor (log, exit file); the monitor's sync line (`{"pid","monitor_pid"}`
//! or `{"error"}`) is read from its stdout. Every other operation is one runtime invocation.
//! Processes are spawned with tokio::process: nothing forks inside the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{CreateOptions, Created, ExecOutput, OciError, RuntimeBackend, RuntimeState};

/// A runc-compatible runtime binary plus the monitor that supervises its containers.
#[derive(Debug, Clone)]
pub struct OciCli {
    /// The runtime binary.
    pub runtime: PathBuf,
    /// Extra global flags (before the subcommand).
    pub runtime_args: Vec<String>,
    /// The runtime's `--root` state directory.
    pub root: PathBuf,
    /// cri-monitor binary.
    pub monitor: PathBuf,
    /// Scratch directory for exec process files and pid files.
    pub scratch: PathBuf,
}

static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
#[serde(untagged)]
enum SyncLine {
    Started { pid: i32, monitor_pid: i32 },
    Failed { error: String },
}

#[derive(Deserialize)]
struct StateJson {
    status: String,
    #[serde(default)]
    pid: i32,
}

fn trimmed(out: &[u8]) -> String {
    let s = String::from_utf8_lossy(out);
    let s = s.trim();
    if s.len() > 4096 {
        let mut end = 4096;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

fn not_found(output: &str) -> bool {
    let o = output.to_ascii_lowercase();
    o.contains("does not exist") || o.contains("not found") || o.contains("no such")
}

impl OciCli {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.args(&self.runtime_args).arg("--root").arg(&self.root);
        c.stdin(Stdio::null()).kill_on_drop(false);
        c
    }

    /// Runs `<runtime> args...` and returns stdout, or the failure with its output.
    async fn run(&self, id: &str, op: &'static str, args: &[&str]) -> Result<Vec<u8>, OciError> {
        let out = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(|source| OciError::Spawn {
                id: id.into(),
                bin: self.runtime.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let mut output = trimmed(&out.stderr);
        if output.is_empty() {
            output = trimmed(&out.stdout);
        }
        if not_found(&output) {
            return Err(OciError::NotFound {
                id: id.into(),
                bin: self.runtime.clone(),
            });
        }
        Err(OciError::Failed {
            id: id.into(),
            bin: self.runtime.clone(),
            op,
            output: format!("{} ({})", output, out.status),
        })
    }

    fn io(id: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
        let (id, path) = (id.to_string(), path.to_owned());
        move |source| OciError::Io {
            id,
            op,
            path,
            source,
        }
    }

    fn scratch_file(&self, id: &str, what: &str) -> PathBuf {
        let n = EXEC_SEQ.fetch_add(1, Ordering::Relaxed);
        self.scratch
            .join(format!("{id}.{what}.{}.{n}", std::process::id()))
    }
}

#[tonic::async_trait]
impl RuntimeBackend for OciCli {
    fn name(&self) -> String {
        self.runtime.display().to_string()
    }

    async fn create(&self, opts: &CreateOptions) -> Result<Created, OciError> {
        let id = opts.id.as_str();
        std::fs::create_dir_all(&opts.socket_dir).map_err(Self::io(
            id,
            "create socket dir",
            &opts.socket_dir,
        ))?;
        if let Some(dir) = opts.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(Self::io(id, "create log dir", dir))?;
        }
        let diag = opts.bundle.join("monitor.log");
        let diag_file = std::fs::File::create(&diag).map_err(Self::io(id, "create", &diag))?;
        let mut c = Command::new(&self.monitor);
        c.arg("--runtime").arg(&self.runtime);
        for a in &self.runtime_args {
            c.arg(format!("--runtime-arg={a}"));
        }
        c.arg("--root")
            .arg(&self.root)
            .arg("--bundle")
            .arg(&opts.bundle)
            .arg("--id")
            .arg(id)
            .arg("--log-path")
            .arg(&opts.log_path)
            .arg("--exit-file")
            .arg(&opts.exit_file)
            .arg("--pid-file")
            .arg(opts.bundle.join("init.pid"))
            .arg("--socket-dir")
            .arg(&opts.socket_dir);
        if opts.tty {
            c.arg("--tty");
        }
        if opts.stdin {
            c.arg("--stdin");
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(diag_file);
        let out = c.output().await.map_err(|source| OciError::Spawn {
            id: id.into(),
            bin: self.monitor.clone(),
            source,
        })?;
        let line = String::from_utf8_lossy(&out.stdout);
        let failed = |output: String| OciError::Failed {
            id: id.into(),
            bin: self.runtime.clone(),
            op: "create",
            output,
        };
        match serde_json::from_str::<SyncLine>(line.trim()) {
            Ok(SyncLine::Started { pid, monitor_pid }) if out.status.success() => {
                Ok(Created { pid, monitor_pid })
            }
            Ok(SyncLine::Failed { error }) => Err(failed(error)),
            _ => Err(failed(format!(
                "monitor exited with {} and said {:?}; diagnostics: {}",
                out.status,
                line.trim(),
                std::fs::read_to_string(&diag).unwrap_or_default().trim()
            ))),
        }
    }

    async fn start(&self, id: &str) -> Result<(), OciError> {
        self.run(id, "start", &["start", id]).await.map(drop)
    }

    async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), OciError> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run(id, "kill", &args).await.map(drop)
    }

    async fn delete(&self, id: &str) -> Result<(), OciError> {
        match self.run(id, "delete", &["delete", "--force", id]).await {
            Err(OciError::NotFound { .. }) => Ok(()),
            r => r.map(drop),
        }
    }

    async fn state(&self, id: &str) -> Result<RuntimeState, OciError> {
        let out = self.run(id, "state", &["state", id]).await?;
        let s: StateJson = serde_json::from_slice(&out).map_err(|e| OciError::Failed {
            id: id.into(),
            bin: self.runtime.clone(),
            op: "state",
            output: format!("unparsable state {:?}: {e}", trimmed(&out)),
        })?;
        Ok(RuntimeState {
            status: s.status,
            pid: s.pid,
        })
    }

    async fn exec(
        &self,
        id: &str,
        process: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, OciError> {
        std::fs::create_dir_all(&self.scratch).map_err(Self::io(id, "create", &self.scratch))?;
        let pfile = self.scratch_file(id, "process.json");
        let pidfile = self.scratch_file(id, "exec.pid");
        let _cleanup = RemoveOnDrop(vec![pfile.clone(), pidfile.clone()]);
        std::fs::write(&pfile, process.to_string()).map_err(Self::io(id, "write", &pfile))?;
        let mut child = self
            .command()
            .arg("exec")
            .arg("--process")
            .arg(&pfile)
            .arg("--pid-file")
            .arg(&pidfile)
            .arg(id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| OciError::Spawn {
                id: id.into(),
                bin: self.runtime.clone(),
                source,
            })?;
        let mut so = child.stdout.take().expect("piped");
        let mut se = child.stderr.take().expect("piped");
        let out_task = tokio::spawn(async move {
            let mut b = Vec::new();
            let _ = so.read_to_end(&mut b).await;
            b
        });
        let err_task = tokio::spawn(async move {
            let mut b = Vec::new();
            let _ = se.read_to_end(&mut b).await;
            b
        });
        let waited = match timeout {
            Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        let (status, timed_out) = match waited {
            Some(s) => (s, false),
            None => {
                // Kill the exec'd process itself: killing the runtime would orphan it.
                if let Some(pid) = std::fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .filter(|&p| p > 1)
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let s = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                (s, true)
            }
        };
        let status = status.map_err(|source| OciError::Spawn {
            id: id.into(),
            bin: self.runtime.clone(),
            source,
        })?;
        let stdout = out_task.await.unwrap_or_default();
        let stderr = err_task.await.unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code,
            timed_out,
        })
    }

    async fn update(&self, id: &str, resources: &serde_json::Value) -> Result<(), OciError> {
        std::fs::create_dir_all(&self.scratch).map_err(Self::io(id, "create", &self.scratch))?;
        let f = self.scratch_file(id, "resources.json");
        let _cleanup = RemoveOnDrop(vec![f.clone()]);
        std::fs::write(&f, resources.to_string()).map_err(Self::io(id, "write", &f))?;
        let fs = f.display().to_string();
        self.run(id, "update", &["update", "--resources", &fs, id])
            .await
            .map(drop)
    }

    fn exec_command(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        tty: bool,
    ) -> Option<std::process::Command> {
        let mut c = std::process::Command::new(&self.runtime);
        c.args(&self.runtime_args).arg("--root").arg(&self.root);
        c.arg("exec").arg("--process").arg(process_file);
        c.arg("--pid-file").arg(pid_file);
        if tty {
            c.arg("--tty");
        }
        c.arg(id);
        Some(c)
    }
}

/// Removes scratch files when an operation ends, however it ends.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_missing_containers() {
        assert!(not_found("container \"x\" does not exist"));
        assert!(not_found("ERRO[0000] container not found"));
        assert!(!not_found("permission denied"));
        assert_eq!(trimmed(b"  x \n"), "x");
    }
}
