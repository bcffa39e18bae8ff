//! `NsenterRuntime`: a [`StreamRuntime`] that runs commands in the namespaces of a known
//! process with `nsenter --target PID --all` (and `setsid --ctty` on a pseudo-terminal for
//! TTY sessions). It needs no container runtime, so it serves as a debugging fallback and
//! lets the protocol tests run real processes in real namespaces. Dropping an exec kills the
//! whole process group it started.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use bytes::Bytes;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rustix::pty::OpenptFlags;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::attachable::Attachable;
use super::runtime::{BoxFuture, RuntimeError, StreamIo, StreamRuntime, TermSize};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BACKEND: &str = "nsenter";

/// Maps container and sandbox ids to the pid whose namespaces they stand for.
#[derive(Default)]
pub struct NsenterRuntime {
    targets: Mutex<HashMap<String, u32>>,
    mains: Mutex<HashMap<String, std::sync::Arc<Attachable>>>,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Kills the process group on drop unless disarmed.
struct KillGroup(Option<i32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Aborts its tasks on drop.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl NsenterRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Let `id` (a container or sandbox id) stand for the namespaces of `pid`.
    pub fn register(&self, id: &str, pid: u32) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), pid);
    }

    /// Start `argv` as the attachable main process of container `id`, in the namespaces of
    /// `target_pid`; exec and attach then use `id`. Returns the host pid of the process.
    pub fn start_main(
        &self,
        id: &str,
        target_pid: u32,
        argv: &[String],
    ) -> Result<u32, RuntimeError> {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "--target",
            &target_pid.to_string(),
            "--all",
            "--root",
            "--wd",
            "--",
        ])
        .args(argv)
        .env_clear()
        .env("PATH", PATH)
        .process_group(0);
        let main = Attachable::spawn(id, cmd)?;
        let pid = main.pid();
        self.register(id, target_pid);
        self.mains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), std::sync::Arc::new(main));
        Ok(pid)
    }

    fn pid(&self, id: &str) -> Result<u32, RuntimeError> {
        if let Some(m) = self.mains.lock().unwrap_or_else(|e| e.into_inner()).get(id)
            && !m.running()
        {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        let pid = *self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        match state {
            None | Some('Z' | 'X') => Err(RuntimeError::NotRunning(id.to_string())),
            Some(_) => Ok(pid),
        }
    }

    async fn run(
        &self,
        id: &str,
        argv: &[String],
        tty: bool,
        io: StreamIo,
    ) -> Result<i32, RuntimeError> {
        let pid = self.pid(id)?;
        if argv.is_empty() {
            return Err(RuntimeError::Io {
                context: format!("exec in {id}"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            });
        }
        let target = pid.to_string();
        let mut cmd = if tty {
            let mut c = Command::new("setsid");
            c.args(["--ctty", "nsenter"]);
            c
        } else {
            let mut c = Command::new("nsenter");
            c.process_group(0);
            c
        };
        cmd.args(["--target", &target, "--all", "--root", "--wd", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", PATH)
            .kill_on_drop(true);
        if tty {
            cmd.env("TERM", "xterm");
            run_tty(id, cmd, io).await
        } else {
            run_pipes(id, cmd, io).await
        }
    }
}

pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn pump_reader<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    tx: mpsc::Sender<Bytes>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

pub(crate) async fn run_pipes(
    id: &str,
    mut cmd: Command,
    io: StreamIo,
) -> Result<i32, RuntimeError> {
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(piped(io.stdin.is_some()))
        .stdout(piped(io.stdout.is_some()))
        .stderr(piped(io.stderr.is_some()));
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("spawn {program} for {id}")))?;
    let mut group = KillGroup(child.id().map(|p| p as i32));
    let mut tasks = Tasks(Vec::new());
    let mut outputs = Vec::new();
    if let (Some(mut rx), Some(mut stdin)) = (io.stdin, child.stdin.take()) {
        tasks.0.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    return;
                }
            }
        }));
    }
    if let (Some(tx), Some(out)) = (io.stdout, child.stdout.take()) {
        outputs.push(pump_reader(out, tx));
    }
    if let (Some(tx), Some(err)) = (io.stderr, child.stderr.take()) {
        outputs.push(pump_reader(err, tx));
    }
    let status = child
        .wait()
        .await
        .map_err(io_err(format!("wait for exec in {id}")))?;
    group.0 = None;
    for o in outputs {
        let _ = o.await;
    }
    Ok(exit_code(status))
}

/// A pseudo-terminal pair with close-on-exec descriptors; the master is non-blocking.
fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))?
        .into();
    fcntl(
        &master,
        FcntlArg::F_SETFL(OFlag::O_RDWR | OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    Ok((master, slave))
}

fn set_size(fd: impl AsFd, s: TermSize) {
    let ws = rustix::termios::Winsize {
        ws_row: s.height,
        ws_col: s.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(e) = rustix::termios::tcsetwinsize(fd, ws) {
        tracing::warn!(error = %e, "resizing terminal");
    }
}

pub(crate) async fn run_tty(
    id: &str,
    mut cmd: Command,
    mut io: StreamIo,
) -> Result<i32, RuntimeError> {
    let (master, slave) = open_pty().map_err(io_err(format!("open a pty for {id}")))?;
    // Apply a size the client already sent before the process starts.
    if let Some(rx) = io.resize.as_mut()
        && let Ok(s) = rx.try_recv()
    {
        set_size(&master, s);
    }
    let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    cmd.stdin(dup(&slave).map_err(io_err("dup pty".into()))?)
        .stdout(dup(&slave).map_err(io_err("dup pty".into()))?)
        .stderr(dup(&slave).map_err(io_err("dup pty".into()))?);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let spawned = cmd.spawn();
    drop(cmd);
    drop(slave);
    let mut child = spawned.map_err(io_err(format!("spawn {program} for {id}")))?;
    let mut group = KillGroup(child.id().map(|p| p as i32));
    let dup_master = || master.try_clone().map_err(io_err("dup pty master".into()));
    let mut tasks = Tasks(Vec::new());
    if let Some(mut rx) = io.resize.take() {
        let m = dup_master()?;
        tasks.0.push(tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                set_size(&m, s);
            }
        }));
    }
    if let Some(mut rx) = io.stdin.take() {
        let mut w = pipe::Sender::from_owned_fd_unchecked(dup_master()?)
            .map_err(io_err("register pty".into()))?;
        tasks.0.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if w.write_all(&b).await.is_err() {
                    return;
                }
            }
            // Stdin closed: send EOF (^D) to the terminal.
            let _ = w.write_all(b"\x04").await;
        }));
    }
    // The reader sees EIO once every slave descriptor is closed: the session ended.
    let output = match io.stdout.take() {
        Some(tx) => {
            let r = pipe::Receiver::from_owned_fd_unchecked(dup_master()?)
                .map_err(io_err("register pty".into()))?;
            Some(pump_reader(r, tx))
        }
        None => None,
    };
    let status = child
        .wait()
        .await
        .map_err(io_err(format!("wait for exec in {id}")))?;
    group.0 = None;
    if let Some(o) = output {
        let _ = o.await;
    }
    Ok(exit_code(status))
}

impl StreamRuntime for NsenterRuntime {
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: &'a [String],
        tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<i32, RuntimeError>> {
        Box::pin(self.run(container_id, cmd, tty, io))
    }

    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        _tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            self.pid(container_id)?;
            let main = self
                .mains
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(container_id)
                .cloned();
            match main {
                Some(m) => m.attach(container_id, io).await,
                None => Err(RuntimeError::Unsupported {
                    op: "attach to a process not started by start_main",
                    backend: BACKEND,
                }),
            }
        })
    }

    fn port_forward_netns<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<PathBuf, RuntimeError>> {
        Box::pin(async move {
            Ok(PathBuf::from(format!(
                "/proc/{}/ns/net",
                self.pid(sandbox_id)?
            )))
        })
    }
}
