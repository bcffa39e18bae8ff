//! The reading side of a SPDY connection: decode frames, route DATA to stream channels,
//! accept peer streams with SYN_REPLY, complete our streams on SYN_REPLY, echo pings.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use super::SpdyError;
use super::conn::{Shared, Slot, Stream, StreamReader, StreamWriter};
use super::frame::{FLAG_FIN, Frame, FrameCodec, RST_PROTOCOL_ERROR};
use super::headers::Headers;

/// Record the peer's FIN; forget the stream when both sides are done.
pub(super) fn peer_finished(streams: &mut HashMap<u32, Slot>, id: u32) {
    if let Some(slot) = streams.get_mut(&id) {
        slot.data = None;
        if slot.local_closed {
            streams.remove(&id);
        }
    }
}

pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Stream>,
    closed: watch::Sender<bool>,
) {
    if let Err(e) = read_frames(&mut rd, &shared, &incoming).await {
        tracing::debug!(error = %e, "SPDY connection ended");
    }
    // Wake every reader with EOF and tell the owner the peer is gone.
    shared
        .streams
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let _ = closed.send(true);
}

async fn read_frames<R: AsyncRead + Unpin>(
    rd: &mut R,
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut going_away = false;
    loop {
        while let Some(frame) = codec.decode(&mut buf)? {
            handle(frame, shared, incoming, &mut going_away).await?;
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn handle(
    frame: Frame,
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<Stream>,
    going_away: &mut bool,
) -> Result<(), SpdyError> {
    let lock = || shared.streams.lock().unwrap_or_else(|e| e.into_inner());
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            // Peer-initiated ids have the other parity; refuse ours, duplicates and post-GOAWAY.
            let wrong_parity = (stream_id % 2 == 0) == shared.server;
            if *going_away || wrong_parity || lock().contains_key(&stream_id) {
                shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: RST_PROTOCOL_ERROR,
                    })
                    .await?;
                return Ok(());
            }
            let (tx, rx) = mpsc::channel(32);
            let data = if flags & FLAG_FIN != 0 {
                None
            } else {
                Some(tx)
            };
            lock().insert(
                stream_id,
                Slot {
                    data,
                    reply: None,
                    local_closed: false,
                },
            );
            shared
                .send(Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Headers::default(),
                })
                .await?;
            let stream = Stream {
                id: stream_id,
                headers,
                reader: StreamReader(rx),
                writer: StreamWriter {
                    id: stream_id,
                    shared: shared.clone(),
                },
            };
            if incoming.send(stream).await.is_err() {
                lock().remove(&stream_id);
            }
        }
        Frame::SynReply {
            stream_id, flags, ..
        } => {
            let mut streams = lock();
            if let Some(slot) = streams.get_mut(&stream_id) {
                if let Some(r) = slot.reply.take() {
                    let _ = r.send(());
                }
                if flags & FLAG_FIN != 0 {
                    slot.data = None;
                }
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let tx = lock().get(&stream_id).and_then(|s| s.data.clone());
            if let Some(tx) = tx {
                if !data.is_empty() {
                    let _ = tx.send(data).await;
                }
                if flags & FLAG_FIN != 0 {
                    peer_finished(&mut lock(), stream_id);
                }
            }
        }
        Frame::Headers {
            stream_id, flags, ..
        } => {
            if flags & FLAG_FIN != 0 {
                peer_finished(&mut lock(), stream_id);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            lock().remove(&stream_id);
        }
        Frame::Ping { id } => {
            // Echo the peer's pings (odd ids from clients, even from servers).
            if (id % 2 == 1) == shared.server {
                shared.send(Frame::Ping { id }).await?;
            }
        }
        Frame::GoAway { .. } => *going_away = true,
        Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
    }
    Ok(())
}
