//! Single-use request tokens, as kubelet's streaming `requestCache`: 8 random bytes in
//! URL-safe base64, valid for one minute, at most 1000 in flight; consuming removes the entry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};

/// Kubelet's `CacheTTL`.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Kubelet's `maxInFlight`.
pub const MAX_IN_FLIGHT: usize = 1000;
const TOKEN_LEN: usize = 8;

/// The request a token stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum CachedRequest {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("maximum number of in-flight streaming requests ({0}) exceeded")]
    Full(usize),
    #[error("generating a streaming token: {0}")]
    Random(std::io::Error),
}

struct Inner {
    entries: HashMap<String, (CachedRequest, Instant)>,
    order: VecDeque<String>,
}

/// Tokens for pending streaming requests.
pub struct RequestCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    max: usize,
}

impl RequestCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        RequestCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            max,
        }
    }

    /// Store `req` and return its token.
    pub fn insert(&self, req: CachedRequest) -> Result<String, CacheError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        Self::gc(&mut inner, now);
        if inner.entries.len() >= self.max {
            return Err(CacheError::Full(self.max));
        }
        let token = loop {
            let mut raw = [0u8; TOKEN_LEN];
            rustix::rand::getrandom(&mut raw, rustix::rand::GetRandomFlags::empty())
                .map_err(|e| CacheError::Random(e.into()))?;
            let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            if !inner.entries.contains_key(&t) {
                break t;
            }
        };
        inner.entries.insert(token.clone(), (req, now + self.ttl));
        inner.order.push_back(token.clone());
        Ok(token)
    }

    /// Take the request for `token`; `None` if unknown, already used, or expired.
    pub fn consume(&self, token: &str) -> Option<CachedRequest> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (req, expires) = inner.entries.remove(token)?;
        (Instant::now() < expires).then_some(req)
    }

    /// Number of live tokens.
    pub fn len(&self) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::gc(&mut inner, Instant::now());
        inner.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop expired entries (oldest first) and stale order slots of consumed tokens.
    fn gc(inner: &mut Inner, now: Instant) {
        while let Some(front) = inner.order.front() {
            match inner.entries.get(front) {
                Some((_, exp)) if *exp > now => break,
                Some(_) => {
                    let t = inner.order.pop_front().expect("front exists");
                    inner.entries.remove(&t);
                }
                None => {
                    inner.order.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> CachedRequest {
        CachedRequest::Exec(ExecRequest {
            container_id: "c1".into(),
            ..Default::default()
        })
    }

    #[test]
    fn tokens_are_single_use_and_url_safe() {
        let c = RequestCache::new(TOKEN_TTL, MAX_IN_FLIGHT);
        let t = c.insert(exec()).unwrap();
        assert_eq!(t.len(), 11);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(c.consume(&t), Some(exec()));
        assert_eq!(c.consume(&t), None);
        assert_eq!(c.consume("nope"), None);
    }

    #[test]
    fn expired_tokens_are_refused_and_collected() {
        let c = RequestCache::new(Duration::from_millis(30), 10);
        let t = c.insert(exec()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.consume(&t), None);
        let _t2 = c.insert(exec()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn cache_is_bounded() {
        let c = RequestCache::new(TOKEN_TTL, 2);
        let a = c.insert(exec()).unwrap();
        c.insert(exec()).unwrap();
        assert!(matches!(c.insert(exec()), Err(CacheError::Full(2))));
        c.consume(&a);
        c.insert(exec()).unwrap();
    }
}
