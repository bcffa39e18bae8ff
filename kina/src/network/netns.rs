//! Running network operations inside a chosen network namespace.
//!
//! Namespace membership is per thread, so every operation runs on a dedicated OS thread that
//! `setns()`es into the target namespace first and then drives its own current-thread tokio
//! runtime. Everything created on that thread talks to that namespace: the rtnetlink socket
//! (opened after `setns`), sockets used to probe free ports, `/proc/sys/net` writes, and child
//! processes such as `nft`, which inherit the namespace of the thread that spawns them.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;

use super::error::NetworkError;

/// Runs `op` on a fresh thread inside `netns` (the caller's namespace when `None`) and returns its
/// result. The thread's runtime is dropped when `op` finishes.
pub(crate) async fn run_in<F, Fut, T>(netns: Option<PathBuf>, op: F) -> Result<T, NetworkError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetworkError>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kina-netns".into())
        .spawn(move || {
            let _ = tx.send(run_here(netns, op));
        })
        .map_err(|e| NetworkError::Worker(format!("cannot spawn thread: {e}")))?;
    rx.await
        .map_err(|_| NetworkError::Worker("network worker thread panicked".into()))?
}

fn run_here<F, Fut, T>(netns: Option<PathBuf>, op: F) -> Result<T, NetworkError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, NetworkError>>,
{
    if let Some(path) = netns {
        let file = File::open(&path).map_err(|source| NetworkError::Netns {
            path: path.clone(),
            source,
        })?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| NetworkError::Netns {
            path,
            source: errno.into(),
        })?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetworkError::Worker(format!("cannot build runtime: {e}")))?;
    runtime.block_on(op())
}

/// Opens an rtnetlink connection in the current thread's namespace and spawns its driver on the
/// current runtime. Must be called from a thread set up by [`run_in`].
pub(crate) fn connect() -> Result<Handle, NetworkError> {
    let (connection, handle, _) = rtnetlink::new_connection()
        .map_err(|e| NetworkError::Worker(format!("cannot open rtnetlink socket: {e}")))?;
    tokio::spawn(connection);
    Ok(handle)
}
