//! A remote-command session independent of transport: the stdio channels handed to the
//! runtime, a future that resolves when the client disconnects, and a finisher that drains
//! output, writes the error-channel status and closes the transport. Also builds sessions
//! from SPDY streams (one stream per stdio kind, as client-go's `streamProtocolV4` opens them).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::runtime::{BoxFuture, StreamIo, TermSize};
use super::spdy::conn::{StreamReader, StreamWriter};
use super::spdy::{Connection, Stream};
use super::websocket::WsMux;

/// Which streams the request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub struct Session {
    pub io: StreamIo,
    pub disconnected: BoxFuture<'static, ()>,
    /// Drain output, write the given error-channel bytes (if any), close everything.
    pub finish: Box<dyn FnOnce(Option<Vec<u8>>) -> BoxFuture<'static, ()> + Send>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("timed out waiting for the client to create streams ({got} of {want})")]
    Timeout { got: usize, want: usize },
    #[error("connection closed before the client created its streams")]
    Closed,
}

/// Parse a stream of concatenated JSON `TermSize` objects, forwarding each complete one.
pub(crate) struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    pub(crate) fn new() -> Self {
        ResizeDecoder { buf: Vec::new() }
    }

    /// Feed bytes; returns the sizes completed so far. Garbage is dropped with a warning.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TermSize>();
        let mut used = 0;
        loop {
            match iter.next() {
                Some(Ok(s)) => {
                    used = iter.byte_offset();
                    out.push(s);
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "dropping malformed terminal resize event");
                    used = self.buf.len();
                    break;
                }
                None => {
                    used = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..used);
        out
    }
}

fn pump_in(mut r: StreamReader, tx: mpsc::Sender<Bytes>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(b) = r.read().await {
            if tx.send(b).await.is_err() {
                break;
            }
        }
    })
}

fn pump_resize(mut r: StreamReader, tx: mpsc::Sender<TermSize>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut dec = ResizeDecoder::new();
        while let Some(b) = r.read().await {
            for s in dec.feed(&b) {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    })
}

fn pump_out(w: StreamWriter) -> (mpsc::Sender<Bytes>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let h = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if w.write(&b).await.is_err() {
                return;
            }
        }
    });
    (tx, h)
}

/// Wait for the client's streams (error, then the requested stdio and resize), as kubelet's
/// `waitForStreams`, and wire them into a [`Session`].
pub async fn spdy_session(
    mut conn: Connection,
    want: Wanted,
    resize: bool,
    timeout: Duration,
) -> Result<Session, SessionError> {
    let expected = 1
        + usize::from(want.stdin)
        + usize::from(want.stdout)
        + usize::from(want.stderr && !want.tty)
        + usize::from(want.tty && resize);
    let mut streams: Vec<Stream> = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while streams.len() < expected {
        match tokio::time::timeout_at(deadline, conn.accept()).await {
            Err(_) => {
                return Err(SessionError::Timeout {
                    got: streams.len(),
                    want: expected,
                });
            }
            Ok(None) => return Err(SessionError::Closed),
            Ok(Some(s)) => match s.headers.get("streamtype") {
                Some("error" | "stdin" | "stdout" | "stderr" | "resize") => streams.push(s),
                other => tracing::warn!(stream_type = ?other, "ignoring stream of unexpected type"),
            },
        }
    }
    let mut io = StreamIo::default();
    let mut outs = Vec::new();
    let mut error: Option<StreamWriter> = None;
    let mut writers = Vec::new();
    for s in streams {
        writers.push(s.writer.clone());
        match s.headers.get("streamtype").unwrap_or_default() {
            "error" => {
                // The error stream is server-to-client; discard anything the client sends.
                let mut r = s.reader;
                tokio::spawn(async move { while r.read().await.is_some() {} });
                error = Some(s.writer);
            }
            "stdin" => {
                let (tx, rx) = mpsc::channel(16);
                pump_in(s.reader, tx);
                io.stdin = Some(rx);
            }
            "resize" => {
                let (tx, rx) = mpsc::channel(4);
                pump_resize(s.reader, tx);
                io.resize = Some(rx);
            }
            kind => {
                let (tx, h) = pump_out(s.writer);
                outs.push(h);
                if kind == "stdout" {
                    io.stdout = Some(tx);
                } else {
                    io.stderr = Some(tx);
                }
            }
        }
    }
    // Streams opened after the session started are refused, never left unread.
    if let Some(mut late) = conn.take_incoming() {
        tokio::spawn(async move {
            while let Some(s) = late.recv().await {
                tracing::warn!(
                    stream = s.id,
                    "refusing a stream opened after the session started"
                );
                let _ = s.writer.reset().await;
            }
        });
    }
    let disconnected = Box::pin(conn.closed());
    let finish = Box::new(move |status: Option<Vec<u8>>| -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for h in outs {
                let _ = h.await;
            }
            if let (Some(e), Some(bytes)) = (&error, status) {
                let _ = e.write(&bytes).await;
            }
            for w in writers {
                let _ = w.close().await;
            }
            conn.close().await;
        })
    });
    Ok(Session {
        io,
        disconnected,
        finish,
    })
}

/// Remote-command channel numbers on WebSocket.
pub const WS_STDIN: usize = 0;
pub const WS_STDOUT: u8 = 1;
pub const WS_STDERR: u8 = 2;
pub const WS_ERROR: u8 = 3;
pub const WS_RESIZE: usize = 4;

/// Wire a WebSocket channel mux into a [`Session`] (kubelet opens all five channels).
pub fn ws_session(mut mux: WsMux, want: Wanted) -> Session {
    let mut io = StreamIo::default();
    let stdin_rx = mux.inbound[WS_STDIN].take();
    if want.stdin
        && let Some(mut rx) = stdin_rx
    {
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
        io.stdin = Some(out);
    }
    if want.tty
        && let Some(mut rx) = mux.inbound[WS_RESIZE].take()
    {
        let (tx, out) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut dec = ResizeDecoder::new();
            while let Some(b) = rx.recv().await {
                for s in dec.feed(&b) {
                    if tx.send(s).await.is_err() {
                        return;
                    }
                }
            }
        });
        io.resize = Some(out);
    }
    // Drop what nobody reads, so stray client messages are discarded instead of filling a
    // channel and stalling the socket.
    mux.inbound.iter_mut().for_each(|rx| *rx = None);
    let mut outs = Vec::new();
    for (on, ch) in [
        (want.stdout, WS_STDOUT),
        (want.stderr && !want.tty, WS_STDERR),
    ] {
        if !on {
            continue;
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let sender = mux.sender.clone();
        outs.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if !sender.send(ch, &b).await {
                    return;
                }
            }
        }));
        if ch == WS_STDOUT {
            io.stdout = Some(tx);
        } else {
            io.stderr = Some(tx);
        }
    }
    let disconnected = Box::pin(mux.closed());
    let finish = Box::new(move |status: Option<Vec<u8>>| -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for h in outs {
                let _ = h.await;
            }
            if let Some(bytes) = status {
                mux.sender.send(WS_ERROR, &bytes).await;
            }
            mux.close().await;
        })
    });
    Session {
        io,
        disconnected,
        finish,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_events_split_across_reads() {
        let mut d = ResizeDecoder::new();
        assert!(d.feed(br#"{"Width":80,"Hei"#).is_empty());
        let got = d.feed(br#"ght":24}{"Width":100,"Height":30}"#);
        assert_eq!(
            got,
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert!(d.feed(b"not json").is_empty());
        assert_eq!(
            d.feed(br#"{"Width":1,"Height":2}"#),
            vec![TermSize {
                width: 1,
                height: 2
            }]
        );
    }
}
