//! SPDY/3.1 as Kubernetes speaks it (moby/spdystream over an HTTP `Upgrade: SPDY/3.1`):
//! framing with zlib-compressed header blocks, and a multiplexed connection.
//!
//! Like spdystream, the connection does not enforce flow control: Go peers never send
//! WINDOW_UPDATE, so a sender that waited for window would stall them.

pub mod conn;
pub mod frame;
pub mod headers;
mod reader;

pub use conn::{Connection, Stream};
pub use frame::{Frame, FrameCodec};
pub use headers::Headers;

/// Errors of the SPDY layer, naming the frame or stream at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY: unsupported version {0} in control frame (want 3)")]
    Version(u16),
    #[error("SPDY: {kind} frame too short ({len} bytes)")]
    Short { kind: &'static str, len: usize },
    #[error("SPDY: frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("SPDY: header block: {0}")]
    Headers(String),
    #[error("SPDY: stream id 0 in {0} frame")]
    ZeroStream(&'static str),
    #[error("SPDY: connection closed")]
    Closed,
    #[error("SPDY: stream {0} was reset by the peer")]
    Reset(u32),
    #[error("SPDY I/O: {0}")]
    Io(#[from] std::io::Error),
}
