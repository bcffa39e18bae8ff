//! Streaming server for CRI Exec, Attach and PortForward, as the kubelet's streaming library
//! serves them: the gRPC calls return a URL carrying a single-use token; the client then speaks
//! the remote-command or port-forward protocol over SPDY/3.1 or WebSocket on that URL.

pub mod attachable;
pub mod cache;
pub mod handshake;
pub mod idle;
pub mod netns;
pub mod nsenter;
pub mod portforward;
pub mod remotecommand;
pub mod runtime;
pub mod server;
pub mod session;
pub mod spdy;
pub mod status;
pub mod websocket;

pub use cache::{CachedRequest, RequestCache};
pub use runtime::{RuntimeError, StreamIo, StreamRuntime, TermSize};
pub use server::{StreamConfig, StreamServer};
