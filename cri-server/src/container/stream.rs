//! [`CriStreamRuntime`]: the streaming server's backend over the real containers.
//!
//! - exec: the container's process settings with the requested command, run in the foreground
//!   through the container's OCI runtime (`<runtime> exec --process F --pid-file P [--tty] ID`),
//!   stdio over pipes; with a TTY the runtime runs as session leader on a pseudo-terminal we
//!   own (`setsid --ctty`), so it relays the container's terminal and follows our TIOCSWINSZ
//!   (SIGWINCH) resizes. The exec'd process is killed when the session is dropped.
//! - attach: the container's cri-monitor attach socket (`SOCK_SEQPACKET`; output packets carry a
//!   one-byte stream prefix, 2 stdout / 3 stderr; input packets are raw stdin); resizes are
//!   `1 <cols> <rows>` lines to the monitor's ctl fifo.
//! - port-forward: the sandbox's network namespace file.
//!
//! Nothing forks inside the server: processes are spawned binaries.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::stream::nsenter::{run_pipes, run_tty};
use crate::stream::runtime::{BoxFuture, RuntimeError, StreamIo, StreamRuntime, TermSize};

use super::record::{ContainerRecord, State};
use super::runtime::Runtime;

static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);

/// Stream output prefixes of the monitor's attach socket.
const ATTACH_STDOUT: u8 = 2;
const ATTACH_STDERR: u8 = 3;

/// Streaming backend over a [`Runtime`].
#[derive(Debug, Clone)]
pub struct CriStreamRuntime {
    rt: Arc<Runtime>,
}

impl CriStreamRuntime {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }

    fn running(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        let c = self
            .rt
            .container(id)
            .map_err(|_| RuntimeError::NotFound(id.to_string()))?;
        if c.state != State::Running {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        Ok(c)
    }

    async fn exec_in(
        &self,
        id: &str,
        argv: &[String],
        tty: bool,
        io: StreamIo,
    ) -> Result<i32, RuntimeError> {
        let c = self.running(id)?;
        let cfg = self.rt.container_dir(&c.id).join("config.json");
        let spec: serde_json::Value = std::fs::read(&cfg)
            .map_err(io_err(format!("read {}", cfg.display())))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| RuntimeError::Io {
                    context: format!("parse {}", cfg.display()),
                    source: std::io::Error::other(e),
                })
            })?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(argv);
        process["terminal"] = serde_json::json!(tty);
        if tty {
            let env = process["env"].as_array().cloned().unwrap_or_default();
            if !env
                .iter()
                .any(|e| e.as_str().is_some_and(|s| s.starts_with("TERM=")))
            {
                let mut env = env;
                env.push(serde_json::json!("TERM=xterm"));
                process["env"] = serde_json::Value::Array(env);
            }
        }
        let n = EXEC_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = self.rt.container_dir(&c.id);
        let pfile = dir.join(format!("exec-{}-{n}.json", std::process::id()));
        let pidfile = dir.join(format!("exec-{}-{n}.pid", std::process::id()));
        let _cleanup = ExecGuard {
            files: vec![pfile.clone(), pidfile.clone()],
        };
        std::fs::write(&pfile, process.to_string())
            .map_err(io_err(format!("write {}", pfile.display())))?;
        let (_, backend) = self.rt.backend(&c.handler).map_err(|e| RuntimeError::Io {
            context: format!("exec in {id}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let std_cmd = backend.exec_command(&c.id, &pfile, &pidfile, tty).ok_or(
            RuntimeError::Unsupported {
                op: "streaming exec",
                backend: "OCI runtime",
            },
        )?;
        let mut cmd = if tty {
            let mut t = Command::new("setsid");
            t.arg("--ctty")
                .arg(std_cmd.get_program())
                .args(std_cmd.get_args());
            t
        } else {
            let mut t = Command::new(std_cmd.get_program());
            t.args(std_cmd.get_args()).process_group(0);
            t
        };
        cmd.kill_on_drop(true);
        // Kills the exec'd process (not a child of ours) if the session is dropped early.
        let mut killer = KillPidFile(Some(pidfile.clone()));
        let code = if tty {
            run_tty(id, cmd, io).await
        } else {
            run_pipes(id, cmd, io).await
        }?;
        killer.0 = None;
        Ok(code)
    }

    async fn attach_to(&self, id: &str, io: StreamIo) -> Result<(), RuntimeError> {
        let c = self.running(id)?;
        let dir = self.rt.socket_dir(&c.id);
        let sock = connect_seqpacket(&dir.join("attach"))?;
        // A SEQPACKET socket reads and writes like a stream socket, one packet per call.
        let sock = tokio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(sock))
            .map_err(io_err(format!("register attach socket of {id}")))?;
        let (mut rd, mut wr) = sock.into_split();
        let mut tasks = Vec::new();
        if let Some(mut rx) = io.resize {
            let ctl = dir.join("ctl");
            tasks.push(tokio::spawn(async move {
                while let Some(s) = rx.recv().await {
                    resize_via_ctl(&ctl, s).await;
                }
            }));
        }
        if let Some(mut rx) = io.stdin {
            tasks.push(tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
            }));
        }
        let mut buf = vec![0u8; 64 * 1024 + 1];
        let result = loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(io_err(format!("read attach socket of {id}"))(e)),
            };
            let data = Bytes::copy_from_slice(&buf[1..n]);
            let tx = match buf[0] {
                ATTACH_STDOUT => io.stdout.as_ref(),
                ATTACH_STDERR => io.stderr.as_ref().or(io.stdout.as_ref()),
                _ => None,
            };
            if let Some(tx) = tx
                && tx.send(data).await.is_err()
            {
                break Ok(());
            }
        };
        for t in tasks {
            t.abort();
        }
        result
    }

    async fn netns(&self, sandbox_id: &str) -> Result<PathBuf, RuntimeError> {
        let s = self
            .rt
            .sandboxes
            .get(sandbox_id)
            .map_err(|_| RuntimeError::NotFound(sandbox_id.to_string()))?;
        if !s.netns.is_empty() {
            return Ok(PathBuf::from(s.netns));
        }
        if s.pid > 0 && super::runtime::process_alive(s.pid) {
            return Ok(PathBuf::from(format!("/proc/{}/ns/net", s.pid)));
        }
        Err(RuntimeError::NotRunning(sandbox_id.to_string()))
    }
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

fn connect_seqpacket(path: &Path) -> Result<OwnedFd, RuntimeError> {
    let ctx = || format!("connect to attach socket {}", path.display());
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| io_err(ctx())(e.into()))?;
    let addr = UnixAddr::new(path).map_err(|e| io_err(ctx())(e.into()))?;
    // A unix socket connect completes at once (or fails with EAGAIN when the backlog is full).
    connect(fd.as_raw_fd(), &addr).map_err(|e| io_err(ctx())(e.into()))?;
    Ok(fd)
}

async fn resize_via_ctl(ctl: &Path, s: TermSize) {
    let line = format!("1 {} {}\n", s.width, s.height);
    let r = tokio::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(ctl)
        .await;
    match r {
        Ok(mut f) => {
            if let Err(e) = f.write_all(line.as_bytes()).await {
                tracing::warn!(ctl = %ctl.display(), error = %e, "resize through ctl fifo");
            }
        }
        Err(e) => tracing::warn!(ctl = %ctl.display(), error = %e, "open ctl fifo"),
    }
}

/// Removes the exec's scratch files.
struct ExecGuard {
    files: Vec<PathBuf>,
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// SIGKILLs the process whose pid the runtime wrote to the file, unless disarmed.
struct KillPidFile(Option<PathBuf>);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        if let Some(pid) = self
            .0
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&p| p > 1)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl StreamRuntime for CriStreamRuntime {
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: &'a [String],
        tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<i32, RuntimeError>> {
        Box::pin(self.exec_in(container_id, cmd, tty, io))
    }

    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        _tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.attach_to(container_id, io))
    }

    fn port_forward_netns<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<PathBuf, RuntimeError>> {
        Box::pin(self.netns(sandbox_id))
    }
}
