//! SPDY/3 frame layout (control frames: version 3, type, flags, 24-bit length; data frames:
//! 31-bit stream id, flags, 24-bit length) and a codec that owns the per-direction header
//! compression state.

use bytes::{Buf, BytesMut};

use super::SpdyError;
use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

/// Largest frame payload accepted (SPDY's 24-bit length field allows 16 MiB).
pub const MAX_FRAME: usize = (1 << 24) - 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: bytes::Bytes,
    },
    /// A control frame of a type this implementation ignores (e.g. CREDENTIAL).
    Unknown {
        kind: u16,
    },
}

/// Encodes and decodes frames for one direction pair of a connection.
#[derive(Default)]
pub struct FrameCodec {
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]) {
    out.extend_from_slice(&(0x8000u16 | 3).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    let len = payload.len() as u32;
    out.push(flags);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl FrameCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        match frame {
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                p.push((priority & 0x7) << 5);
                p.push(0); // slot
                p.extend_from_slice(&self.compressor.compress(headers));
                control(out, TYPE_SYN_STREAM, *flags, &p);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&self.compressor.compress(headers));
                control(out, kind, *flags, &p);
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_RST_STREAM, 0, &p);
            }
            Frame::Settings { flags, entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (f, id, v) in entries {
                    p.push(*f);
                    p.extend_from_slice(&id.to_be_bytes()[1..]);
                    p.extend_from_slice(&v.to_be_bytes());
                }
                control(out, TYPE_SETTINGS, *flags, &p);
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut p = last_good.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, TYPE_GOAWAY, 0, &p);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&delta.to_be_bytes());
                control(out, TYPE_WINDOW_UPDATE, 0, &p);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Unknown { .. } => {}
        }
    }

    /// Take one complete frame off the front of `buf`, or `None` if more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (be32(&buf[4..8]) & 0x00ff_ffff) as usize;
        if len > MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let head = buf.split_to(8);
        let payload = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = be32(&head[..4]) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(SpdyError::ZeroStream("DATA"));
            }
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != 3 {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize, name: &'static str| {
            if payload.len() < n {
                Err(SpdyError::Short {
                    kind: name,
                    len: payload.len(),
                })
            } else {
                Ok(())
            }
        };
        let p = &payload[..];
        Ok(Some(match kind {
            TYPE_SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                let stream_id = be32(p) & 0x7fff_ffff;
                if stream_id == 0 {
                    return Err(SpdyError::ZeroStream("SYN_STREAM"));
                }
                let headers = self.decompressor.decompress(&p[10..])?;
                Frame::SynStream {
                    stream_id,
                    associated: be32(&p[4..]) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(4, "SYN_REPLY/HEADERS")?;
                let stream_id = be32(p) & 0x7fff_ffff;
                let headers = self.decompressor.decompress(&p[4..])?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: be32(p) & 0x7fff_ffff,
                    status: be32(&p[4..]),
                }
            }
            TYPE_SETTINGS => {
                need(4, "SETTINGS")?;
                let n = be32(p) as usize;
                need(4 + n.saturating_mul(8), "SETTINGS")?;
                let mut entries = Vec::with_capacity(n);
                let mut rest = &p[4..];
                for _ in 0..n {
                    entries.push((rest[0], be32(rest) & 0x00ff_ffff, be32(&rest[4..])));
                    rest.advance(8);
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(4, "PING")?;
                Frame::Ping { id: be32(p) }
            }
            TYPE_GOAWAY => {
                need(8, "GOAWAY")?;
                Frame::GoAway {
                    last_good: be32(p) & 0x7fff_ffff,
                    status: be32(&p[4..]),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: be32(p) & 0x7fff_ffff,
                    delta: be32(&p[4..]) & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { kind: other },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame) -> Vec<u8> {
        let mut v = Vec::new();
        FrameCodec::new().encode(f, &mut v);
        v
    }

    #[test]
    fn golden_control_and_data_frames() {
        // Byte layouts as Go's spdy framer writes them (spdystream spdy/write.go).
        assert_eq!(
            enc(&Frame::Ping { id: 7 }),
            [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]
        );
        assert_eq!(
            enc(&Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL
            }),
            [0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5]
        );
        assert_eq!(
            enc(&Frame::GoAway {
                last_good: 3,
                status: 0
            }),
            [0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(&Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: bytes::Bytes::from_static(b"hi")
            }),
            [0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            enc(&Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)]
            }),
            [
                0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0
            ]
        );
    }

    #[test]
    fn syn_stream_layout_and_round_trip() {
        let f = Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: Headers::from_pairs([("streamtype", "error")]),
        };
        let mut tx = FrameCodec::new();
        let mut wire = Vec::new();
        tx.encode(&f, &mut wire);
        assert_eq!(&wire[..4], &[0x80, 3, 0, 1]);
        assert_eq!(&wire[8..18], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let ping = Frame::Ping { id: 2 };
        tx.encode(&ping, &mut wire);
        let mut rx = FrameCodec::new();
        let mut buf = BytesMut::from(&wire[..5]);
        assert_eq!(rx.decode(&mut buf).unwrap(), None);
        buf = BytesMut::from(&wire[..]);
        assert_eq!(rx.decode(&mut buf).unwrap(), Some(f));
        assert_eq!(rx.decode(&mut buf).unwrap(), Some(ping));
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut rx = FrameCodec::new();
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(rx.decode(&mut v2), Err(SpdyError::Version(2))));
        let mut short = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            rx.decode(&mut short),
            Err(SpdyError::Short { .. })
        ));
        let mut zero = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            rx.decode(&mut zero),
            Err(SpdyError::ZeroStream(_))
        ));
    }
}
