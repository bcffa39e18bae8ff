//! Streaming server for CRI Exec, Attach and PortForward, as the kubelet's streaming library
//! serves them: the gRPC calls return a URL carrying a single-use token; the client then speaks
//! the remote-command or port-forward protocol over SPDY/3.1 or WebSocket on that URL.
//!
//! Wiring into the RuntimeService:
//! - start one [`StreamServer`] with [`StreamConfig::new`] (listen address from the config)
//!   and an `Arc<dyn StreamRuntime>` backed by the container runtime;
//! - `Exec`/`Attach`/`PortForward` answer with `url: server.get_exec_url(&req)?` (and the
//!   attach/port-forward twins); `StreamServerError` converts into a `tonic::Status`.
//!
//! Protocols served: remote command over SPDY (`v5`..`v2.channel.k8s.io`, `channel.k8s.io`)
//! and WebSocket (`v5`/`v4.channel.k8s.io`, `v4.base64.`, `channel.k8s.io`, `base64.`);
//! port forwarding over SPDY (`portforward.k8s.io`), SPDY tunnelled in WebSocket
//! (`SPDY/3.1+portforward.k8s.io`) and WebSocket channels (`v4.channel.k8s.io`).
//! [`nsenter::NsenterRuntime`] is a runtime-independent backend for debugging and tests.

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
