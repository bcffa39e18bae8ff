//! The seam between the streaming protocols and the container runtime: the runtime runs a
//! command (or attaches) with transport-neutral channels for stdio and terminal resizes,
//! and names the network namespace that port forwarding connects from.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A future the runtime returns; boxed so the trait is usable as `dyn StreamRuntime`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Terminal size as the client sends it (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TermSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Stdio of an exec or attach session. A closed `stdin` channel means the client closed
/// stdin; a closed `stdout`/`stderr` receiver means the client is gone.
#[derive(Debug, Default)]
pub struct StreamIo {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Why the runtime could not run a streaming request.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("{op} is not supported by the {backend} backend")]
    Unsupported {
        op: &'static str,
        backend: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the streaming server needs from the container runtime.
///
/// The futures must stop the process and release everything when dropped: the server drops
/// them when the client disconnects.
pub trait StreamRuntime: Send + Sync + 'static {
    /// Run `cmd` in the container; resolve with its exit code once it exited and its
    /// output was handed to `io`.
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: &'a [String],
        tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<i32, RuntimeError>>;

    /// Attach to the container's main process until it exits or the client detaches.
    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        tty: bool,
        io: StreamIo,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// The network namespace file of the pod sandbox, to connect forwarded ports from.
    fn port_forward_netns<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<PathBuf, RuntimeError>>;
}
