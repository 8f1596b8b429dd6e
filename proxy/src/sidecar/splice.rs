//! Splicing two byte streams together with an idle timeout: the TCP path
//! of the inbound listener, and the gateways' forwarded connections (TCP or
//! TLS on one side, a QUIC stream on the other).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Copies bytes both ways between `a` and `b` through a `buf`-byte buffer
/// per direction until both sides are done (each EOF passed on as a write
/// shutdown), one fails, or no byte moved either way for `idle`. Returns
/// the bytes copied `a → b` and `b → a`; an idle timeout is an
/// `io::ErrorKind::TimedOut` error.
pub async fn splice<A, B>(a: A, b: B, idle: Duration, buf: usize) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Watched {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = b;
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, buf, buf);
    tokio::pin!(copy);
    loop {
        let quiet_since = start + Duration::from_millis(last.load(Ordering::Relaxed));
        tokio::select! {
            r = &mut copy => return r,
            _ = tokio::time::sleep_until(quiet_since + idle) => {
                let now_last = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if now_last == quiet_since {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no bytes either way for {idle:?} (timeouts.idle)"),
                    ));
                }
            }
        }
    }
}

/// A stream that records when bytes last moved through it.
struct Watched<S> {
    inner: S,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_and_counts() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(splice(a, b, Duration::from_secs(5), 64));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong!").await.unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
        drop(client);
        drop(server);
        assert_eq!(task.await.unwrap().unwrap(), (4, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_pipes_are_closed_and_busy_ones_are_not() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(splice(a, b, Duration::from_secs(10), 64));
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            server.read_exact(&mut one).await.unwrap();
        }
        assert!(
            !task.is_finished(),
            "a byte every 6 s keeps a 10 s idle pipe open"
        );
        tokio::time::sleep(Duration::from_secs(11)).await;
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
