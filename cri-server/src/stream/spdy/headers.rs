//! SPDY/3 name/value header blocks: a 32-bit count, then length-prefixed lowercase names
//! and NUL-joined values, compressed with one zlib stream per direction that is primed
//! with the SPDY/3 dictionary and sync-flushed after every block (as Go's spdy framer does).

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// Upper bound on one decompressed header block, against zlib bombs.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Header names and values in wire order. Names are lowercase; a name appears once and
/// multiple values are kept as separate entries only until encoding joins them with NUL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// Build from pairs; names are lowercased.
    pub fn from_pairs<N: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }

    /// First value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialize to the uncompressed block layout; repeated names are joined with NUL.
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.0 {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(names.len() as u32).to_be_bytes());
        for name in names {
            let joined = self
                .0
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join("\0");
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(joined.len() as u32).to_be_bytes());
            out.extend_from_slice(joined.as_bytes());
        }
        out
    }

    /// Parse the uncompressed block layout, splitting NUL-joined values.
    pub fn decode_plain(block: &[u8]) -> Result<Headers, SpdyError> {
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8], SpdyError> {
            let end = pos
                .checked_add(n)
                .filter(|e| *e <= block.len())
                .ok_or_else(|| SpdyError::Headers(format!("block truncated at byte {pos}")))?;
            let s = &block[pos..end];
            pos = end;
            Ok(s)
        };
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let count = be32(take(4)?);
        let mut out = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..count {
            let nlen = be32(take(4)?);
            let name = String::from_utf8(take(nlen)?.to_vec())
                .map_err(|_| SpdyError::Headers("header name is not UTF-8".into()))?;
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(SpdyError::Headers(format!(
                    "header name {name:?} was not lowercased"
                )));
            }
            if seen.contains(&name) {
                return Err(SpdyError::Headers(format!(
                    "multiple headers named {name:?}"
                )));
            }
            seen.push(name.clone());
            let vlen = be32(take(4)?);
            let value = String::from_utf8(take(vlen)?.to_vec()).map_err(|_| {
                SpdyError::Headers(format!("value of header {name:?} is not UTF-8"))
            })?;
            for v in value.split('\0') {
                out.push((name.clone(), v.to_string()));
            }
        }
        Ok(Headers(out))
    }
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0."
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Compresses outgoing header blocks (one zlib stream for the whole connection).
pub struct HeaderCompressor(Compress);

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::best(), true);
        c.set_dictionary(dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        HeaderCompressor(c)
    }

    /// Compress one block and sync-flush, so the peer can decode it on its own.
    pub fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let input = headers.encode_plain();
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.0.total_in();
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("zlib compression of an in-memory block cannot fail");
            consumed += (self.0.total_in() - before) as usize;
            if consumed == input.len() && out.capacity() > out.len() {
                return out;
            }
        }
    }
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// Decompresses incoming header blocks; primes the dictionary when zlib asks for it.
pub struct HeaderDecompressor(Decompress);

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor(Decompress::new(true))
    }

    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Headers(format!(
                    "decompressed block exceeds {MAX_HEADER_BLOCK} bytes"
                )));
            }
            let (before_in, before_out) = (self.0.total_in(), self.0.total_out());
            let res = self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.0.total_in() - before_in) as usize;
            let stalled = self.0.total_in() == before_in && self.0.total_out() == before_out;
            match res {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    if consumed == block.len() && out.capacity() > out.len() {
                        break;
                    }
                    if stalled && out.capacity() > out.len() {
                        return Err(SpdyError::Headers("zlib made no progress".into()));
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Headers(format!("dictionary mismatch: {e}")))?;
                }
                Err(e) => return Err(SpdyError::Headers(format!("zlib: {e}"))),
            }
        }
        Headers::decode_plain(&out)
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_matches_the_spec_layout() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[test]
    fn plain_block_layout_is_go_compatible() {
        let h = Headers::from_pairs([("streamType", "error"), ("x-a", "1"), ("x-a", "2")]);
        let b = h.encode_plain();
        let mut want = vec![0, 0, 0, 2, 0, 0, 0, 10];
        want.extend_from_slice(b"streamtype");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"error");
        want.extend_from_slice(&[0, 0, 0, 3]);
        want.extend_from_slice(b"x-a");
        want.extend_from_slice(&[0, 0, 0, 3]);
        want.extend_from_slice(b"1\x002");
        assert_eq!(b, want);
        assert_eq!(Headers::decode_plain(&b).unwrap().0.len(), 3);
    }

    #[test]
    fn compressed_blocks_round_trip_across_one_stream() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        for i in 0..5 {
            let h = Headers::from_pairs([("streamtype", "stdout"), ("port", &*i.to_string())]);
            let block = c.compress(&h);
            // zlib header with FDICT set, as Go's NewWriterLevelDict writes it.
            if i == 0 {
                assert_eq!(block[0], 0x78);
                assert_ne!(block[1] & 0x20, 0);
            }
            assert_eq!(d.decompress(&block).unwrap(), h);
        }
    }

    #[test]
    fn hostile_blocks_are_refused() {
        assert!(Headers::decode_plain(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        let upper = [0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0];
        assert!(Headers::decode_plain(&upper).is_err());
        assert!(HeaderDecompressor::new().decompress(b"garbage!").is_err());
    }
}
