//! A multiplexed SPDY/3.1 connection: one reader task demultiplexes frames into per-stream
//! channels and answers pings; one writer task owns the socket's write half and the header
//! compressor. Streams opened by the peer are auto-accepted with SYN_REPLY, as
//! k8s.io/apimachinery's spdy connection does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::SpdyError;
use super::frame::{FLAG_FIN, Frame, FrameCodec, RST_CANCEL};
use super::headers::Headers;

/// Largest DATA payload written in one frame.
const CHUNK: usize = 32 * 1024;

pub(super) enum Out {
    Frame(Frame),
    Shutdown,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) data: Option<mpsc::Sender<Bytes>>,
    pub(super) reply: Option<oneshot::Sender<()>>,
    /// We sent FIN; the slot goes once the peer's FIN arrives too.
    pub(super) local_closed: bool,
}

pub(super) struct Shared {
    pub(super) out: mpsc::Sender<Out>,
    pub(super) streams: Mutex<HashMap<u32, Slot>>,
    pub(super) next_id: AtomicU32,
    pub(super) server: bool,
}

impl Shared {
    pub(super) async fn send(&self, f: Frame) -> Result<(), SpdyError> {
        self.out
            .send(Out::Frame(f))
            .await
            .map_err(|_| SpdyError::Closed)
    }
}

/// One SPDY connection. Dropping it aborts its tasks and closes the socket.
pub struct Connection {
    shared: Arc<Shared>,
    incoming: Option<mpsc::Receiver<Stream>>,
    closed: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

/// One SPDY stream: its headers, the data the peer sent, and a handle to send data.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

/// Receiving half of a stream; `read` returns `None` once the peer half-closed or reset.
pub struct StreamReader(pub(super) mpsc::Receiver<Bytes>);

impl StreamReader {
    pub async fn read(&mut self) -> Option<Bytes> {
        self.0.recv().await
    }

    /// Read until the peer closes its side.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(b) = self.read().await {
            v.extend_from_slice(&b);
        }
        v
    }
}

/// Sending half of a stream (cloneable).
#[derive(Clone)]
pub struct StreamWriter {
    pub(super) id: u32,
    pub(super) shared: Arc<Shared>,
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub async fn write(&self, data: &[u8]) -> Result<(), SpdyError> {
        for chunk in data.chunks(CHUNK) {
            self.shared
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await?;
        }
        Ok(())
    }

    /// Half-close: an empty DATA frame with FIN.
    pub async fn close(&self) -> Result<(), SpdyError> {
        {
            let mut streams = self
                .shared
                .streams
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = streams.get_mut(&self.id) {
                slot.local_closed = true;
                if slot.data.is_none() && slot.reply.is_none() {
                    streams.remove(&self.id);
                }
            }
        }
        self.shared
            .send(Frame::Data {
                stream_id: self.id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await
    }

    /// Abort the stream with RST_STREAM(CANCEL).
    pub async fn reset(&self) -> Result<(), SpdyError> {
        self.shared
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status: RST_CANCEL,
            })
            .await
    }
}

impl Connection {
    /// Serve SPDY on an upgraded server-side connection.
    pub fn server<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Self {
        Self::start(io, true)
    }

    /// Speak SPDY as the client on an upgraded connection.
    pub fn client<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Self {
        Self::start(io, false)
    }

    fn start<T: AsyncRead + AsyncWrite + Send + 'static>(io: T, server: bool) -> Self {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel(16);
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            out: out_tx,
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(if server { 2 } else { 1 }),
            server,
        });
        let writer = tokio::spawn(write_loop(wr, out_rx));
        let reader = tokio::spawn(super::reader::read_loop(
            rd,
            shared.clone(),
            in_tx,
            closed_tx,
        ));
        Connection {
            shared,
            incoming: Some(in_rx),
            closed: closed_rx,
            reader,
            writer: Some(writer),
        }
    }

    /// Next stream opened by the peer (already replied to); `None` once the connection ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.as_mut()?.recv().await
    }

    /// Hand the incoming-stream receiver to another task.
    pub fn take_incoming(&mut self) -> Option<mpsc::Receiver<Stream>> {
        self.incoming.take()
    }

    /// Resolves when the peer closed the connection or it failed.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.clone();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Open a stream and wait for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers, timeout: Duration) -> Result<Stream, SpdyError> {
        let id = self.shared.next_id.fetch_add(2, Ordering::SeqCst);
        let (data_tx, data_rx) = mpsc::channel(32);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.shared
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Slot {
                    data: Some(data_tx),
                    reply: Some(reply_tx),
                    local_closed: false,
                },
            );
        self.shared
            .send(Frame::SynStream {
                stream_id: id,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: headers.clone(),
            })
            .await?;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(SpdyError::Reset(id)),
            Err(_) => {
                return Err(SpdyError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no SYN_REPLY for stream {id}"),
                )));
            }
        }
        Ok(Stream {
            id,
            headers,
            reader: StreamReader(data_rx),
            writer: StreamWriter {
                id,
                shared: self.shared.clone(),
            },
        })
    }

    /// Streams not yet closed by both sides.
    pub fn open_streams(&self) -> usize {
        self.shared
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Send GOAWAY, flush everything queued, and close the socket.
    pub async fn close(mut self) {
        let _ = self
            .shared
            .send(Frame::GoAway {
                last_good: 0,
                status: 0,
            })
            .await;
        let _ = self.shared.out.send(Out::Shutdown).await;
        if let Some(w) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        self.reader.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Out>) {
    let mut codec = FrameCodec::new();
    let mut buf = Vec::with_capacity(CHUNK + 64);
    while let Some(msg) = rx.recv().await {
        buf.clear();
        let mut shutdown = false;
        let mut next = Some(msg);
        // Coalesce whatever is already queued into one write.
        while let Some(m) = next.take() {
            match m {
                Out::Frame(f) => codec.encode(&f, &mut buf),
                Out::Shutdown => shutdown = true,
            }
            if shutdown || buf.len() > CHUNK {
                break;
            }
            next = rx.try_recv().ok();
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        if shutdown {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_carry_data_both_ways_and_are_forgotten_when_closed() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let client = Connection::client(a);
        let mut server = Connection::server(b);
        let t = Duration::from_secs(5);
        let big = vec![7u8; 300_000];
        let (opened, accepted) = tokio::join!(
            client.open(Headers::from_pairs([("streamtype", "data")]), t),
            server.accept()
        );
        let (mut c, mut s) = (opened.unwrap(), accepted.unwrap());
        assert_eq!(s.headers.get("streamType"), Some("data"));
        assert_eq!(c.id % 2, 1);
        let send = async {
            c.writer.write(&big).await.unwrap();
            c.writer.close().await.unwrap();
        };
        let (_, got) = tokio::join!(send, s.reader.read_to_end());
        assert_eq!(got, big);
        s.writer.write(b"back").await.unwrap();
        s.writer.close().await.unwrap();
        assert_eq!(c.reader.read_to_end().await, b"back");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(client.open_streams(), 0);
        assert_eq!(server.open_streams(), 0);
        // Closing the client is seen by the server.
        let closed = server.closed();
        client.close().await;
        tokio::time::timeout(t, closed).await.unwrap();
        assert!(server.accept().await.is_none());
    }

    #[tokio::test]
    async fn wrong_parity_streams_are_refused() {
        let (a, b) = tokio::io::duplex(1 << 16);
        // Two "servers": each one's streams have the parity the other refuses.
        let left = Connection::server(a);
        let _right = Connection::server(b);
        let err = left
            .open(Headers::default(), Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SpdyError::Reset(_)), "{err}");
    }
}
