//! Kubernetes channel framing over WebSocket (k8s.io/apimachinery wsstream): every message
//! starts with a channel number; binary protocols carry raw bytes, the `base64.` variants
//! carry text messages with an ASCII digit channel and base64 payload. With
//! `v5.channel.k8s.io` the client closes one of its channels by sending `[255, channel]`.

use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The v5 "close this channel" signal channel.
pub const CLOSE_CHANNEL: u8 = 255;

/// Whether a negotiated subprotocol uses the base64 text encoding.
pub fn is_base64(protocol: &str) -> bool {
    protocol.contains("base64.")
}

/// Encode one channel message.
pub fn encode(channel: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        s.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut v = Vec::with_capacity(1 + data.len());
        v.push(channel);
        v.extend_from_slice(data);
        Message::binary(v)
    }
}

/// Decode one channel message into (channel, payload); `None` for control or malformed ones.
pub fn decode(msg: &Message, base64: bool) -> Option<(u8, Bytes)> {
    match msg {
        Message::Binary(b) if !base64 && !b.is_empty() => Some((b[0], b.slice(1..))),
        Message::Text(t) if base64 && !t.is_empty() => {
            let s = t.as_str();
            let ch = s.as_bytes()[0].checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&s[1..])
                .ok()?;
            Some((ch, Bytes::from(data)))
        }
        _ => None,
    }
}

/// Sends channel messages to the peer (cloneable).
#[derive(Clone)]
pub struct WsSender {
    out: mpsc::Sender<Message>,
    base64: bool,
}

impl WsSender {
    pub async fn send(&self, channel: u8, data: &[u8]) -> bool {
        self.out
            .send(encode(channel, data, self.base64))
            .await
            .is_ok()
    }
}

/// A WebSocket demultiplexed into per-channel receivers and one sender.
pub struct WsMux {
    pub inbound: Vec<Option<mpsc::Receiver<Bytes>>>,
    pub sender: WsSender,
    closed: watch::Receiver<bool>,
    writer: JoinHandle<()>,
    _reader: AbortOnDrop,
}

impl WsMux {
    /// Start the reader and writer tasks for `channels` channels.
    pub fn start<S>(ws: WebSocketStream<S>, channels: usize, base64: bool, v5: bool) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let mut senders: Vec<Option<mpsc::Sender<Bytes>>> = Vec::new();
        let mut inbound = Vec::new();
        for _ in 0..channels {
            let (tx, rx) = mpsc::channel(16);
            senders.push(Some(tx));
            inbound.push(Some(rx));
        }
        let (closed_tx, closed_rx) = watch::channel(false);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                let Some((ch, data)) = decode(&msg, base64) else {
                    continue;
                };
                if v5 && ch == CLOSE_CHANNEL {
                    if let Some(&target) = data.first()
                        && let Some(slot) = senders.get_mut(usize::from(target))
                    {
                        *slot = None;
                    }
                    continue;
                }
                let tx = senders.get(usize::from(ch)).and_then(|s| s.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(data).await;
                }
            }
            drop(senders);
            let _ = closed_tx.send(true);
        });
        WsMux {
            inbound,
            sender: WsSender {
                out: out_tx,
                base64,
            },
            closed: closed_rx,
            writer,
            _reader: AbortOnDrop(reader),
        }
    }

    /// Resolves when the client closed the socket or it failed.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.clone();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Send a normal close frame after everything queued, and wait for the writer.
    pub async fn close(self) {
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        let _ = self.sender.out.send(close).await;
        drop(self.sender);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.writer).await;
    }
}

/// Turn a WebSocket into a byte stream: every binary message's payload is read in order,
/// every write becomes one binary message (client-go's `TunnelingConnection`). Returns the
/// byte stream and the pump task's guard; the pump ends when either side closes.
pub fn tunnel<S>(ws: WebSocketStream<S>) -> (tokio::io::DuplexStream, AbortOnDrop)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let pump = tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let inbound = async {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
        };
        tokio::select! {
            () = inbound => {}
            () = outbound => {}
        }
    });
    (theirs, AbortOnDrop(pump))
}

/// Aborts the task when dropped.
pub struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_framing() {
        let m = encode(1, b"hi", false);
        assert_eq!(m, Message::binary(vec![1, b'h', b'i']));
        assert_eq!(decode(&m, false), Some((1, Bytes::from_static(b"hi"))));
        let t = encode(2, b"hi", true);
        assert_eq!(t, Message::text("2aGk="));
        assert_eq!(decode(&t, true), Some((2, Bytes::from_static(b"hi"))));
        assert_eq!(decode(&Message::text("x!!"), true), None);
        assert_eq!(decode(&Message::binary(Vec::new()), false), None);
    }
}
