//! Attachable processes for the nsenter backend: a "main process" started in a target's
//! namespaces whose stdio the runtime keeps, so clients can attach, detach and re-attach
//! while it runs (the role cri-monitor plays for real containers). Output is broadcast to
//! every attached client; input from any client goes to the process's stdin.

use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::runtime::{RuntimeError, StreamIo};

/// A running main process and its stdio fan-out. Dropping it kills the process.
pub struct Attachable {
    stdin: mpsc::Sender<Bytes>,
    stdout: broadcast::Sender<Bytes>,
    stderr: broadcast::Sender<Bytes>,
    exited: watch::Receiver<Option<i32>>,
    pid: u32,
    supervisor: JoinHandle<()>,
}

impl Drop for Attachable {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

fn fan_out<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    tx: broadcast::Sender<Bytes>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                return;
            }
            // No attached client is fine: output is dropped like an unread terminal's.
            let _ = tx.send(Bytes::copy_from_slice(&buf[..n]));
        }
    })
}

/// Resolves once the process exit is published.
async fn wait_exit(exited: &mut watch::Receiver<Option<i32>>) {
    let _ = exited.wait_for(|e| e.is_some()).await;
}

/// Copy broadcast output to one client until the process exited and everything it wrote
/// was handed over, or the client went away. Only `recv` is ever cancelled, so no message
/// is lost in flight.
async fn forward(
    rx: Option<broadcast::Receiver<Bytes>>,
    tx: Option<mpsc::Sender<Bytes>>,
    mut exited: watch::Receiver<Option<i32>>,
) {
    let (Some(mut rx), Some(tx)) = (rx, tx) else {
        return wait_exit(&mut exited).await;
    };
    loop {
        let got = tokio::select! {
            biased;
            r = rx.recv() => r,
            () = wait_exit(&mut exited) => {
                // All output was broadcast before the exit was published.
                while let Ok(b) = rx.try_recv() {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                return;
            }
        };
        match got {
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "slow attach client missed output");
            }
            Err(broadcast::error::RecvError::Closed) => return wait_exit(&mut exited).await,
        }
    }
}

impl Attachable {
    /// Spawn `cmd` (already pointed at the namespaces) with piped stdio.
    pub fn spawn(id: &str, mut cmd: Command) -> Result<Attachable, RuntimeError> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Io {
            context: format!("start {id}"),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let (stdout, _) = broadcast::channel(256);
        let (stderr, _) = broadcast::channel(256);
        let (stdin, mut stdin_rx) = mpsc::channel::<Bytes>(16);
        let (exit_tx, exited) = watch::channel(None);
        let mut pipe_in = child.stdin.take();
        let out = fan_out(child.stdout.take().expect("piped"), stdout.clone());
        let err = fan_out(child.stderr.take().expect("piped"), stderr.clone());
        let supervisor = tokio::spawn(async move {
            let feed = async {
                while let Some(b) = stdin_rx.recv().await {
                    if let Some(p) = pipe_in.as_mut()
                        && p.write_all(&b).await.is_err()
                    {
                        pipe_in = None;
                    }
                }
                std::future::pending::<()>().await;
            };
            let status = tokio::select! {
                s = child.wait() => s,
                () = feed => unreachable!("feed never ends"),
            };
            let _ = out.await;
            let _ = err.await;
            let code = status.map(super::nsenter::exit_code).unwrap_or(-1);
            let _ = exit_tx.send(Some(code));
        });
        Ok(Attachable {
            stdin,
            stdout,
            stderr,
            exited,
            pid,
            supervisor,
        })
    }

    /// Host pid of the process that was spawned (nsenter).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn running(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Serve one attached client until the process exits or the client goes away.
    pub async fn attach(&self, id: &str, io: StreamIo) -> Result<(), RuntimeError> {
        if !self.running() {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        let out_rx = io.stdout.as_ref().map(|_| self.stdout.subscribe());
        let err_rx = io.stderr.as_ref().map(|_| self.stderr.subscribe());
        let want_out = io.stdout.is_some() || io.stderr.is_some();
        let outputs = async {
            tokio::join!(
                forward(out_rx, io.stdout.clone(), self.exited.clone()),
                forward(err_rx, io.stderr.clone(), self.exited.clone()),
            )
        };
        let stdin = self.stdin.clone();
        let input = async move {
            if let Some(mut rx) = io.stdin {
                while let Some(b) = rx.recv().await {
                    if stdin.send(b).await.is_err() {
                        break;
                    }
                }
            }
            if !want_out {
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = outputs => {}
            () = input => {}
        }
        Ok(())
    }
}
