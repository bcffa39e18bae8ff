//! Idle detection for upgraded streaming connections, like kubelet's `StreamIdleTimeout`:
//! the wrapper stamps every successful read or write, and the clock resolves once neither
//! happened for the timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// An I/O object that records when it last moved bytes.
pub struct IdleIo<T> {
    inner: T,
    clock: IdleClock,
}

/// Shared view of an [`IdleIo`]'s last activity.
#[derive(Clone)]
pub struct IdleClock {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl IdleClock {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle for `timeout`.
    pub async fn expired(&self, timeout: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl<T> IdleIo<T> {
    pub fn new(inner: T) -> (Self, IdleClock) {
        let clock = IdleClock {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        (
            IdleIo {
                inner,
                clock: clock.clone(),
            },
            clock,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn traffic_postpones_expiry() {
        let (a, mut b) = tokio::io::duplex(64);
        let (mut io, clock) = IdleIo::new(a);
        let t = Duration::from_millis(400);
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        io.read_exact(&mut buf).await.unwrap();
        let read_at = Instant::now();
        clock.expired(t).await;
        // Expiry counts from the read, not from the start.
        assert!(read_at.elapsed() >= t - Duration::from_millis(5));
    }
}
