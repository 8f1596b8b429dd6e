//! Reading a route frame off a stream, and splicing two streams.

use std::time::Duration;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use meshgw_proxy::route::RouteError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Why a route frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The stream failed or ended early.
    #[error("stream ended before the route header was complete: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing complete arrived in time.
    #[error("no complete route header within {0:?}")]
    Timeout(Duration),
}

/// A route frame decoder: [`route::decode_header`](meshgw_proxy::route::decode_header) or `decode_answer`.
pub type Decode<T> = fn(&[u8]) -> Result<Option<(T, usize)>, RouteError>;

/// Reads one frame with `decode` from `io`, byte-exact (nothing after the frame is consumed).
pub async fn read_frame<T, R>(
    io: &mut R,
    decode: Decode<T>,
    timeout: Duration,
) -> Result<T, ReadError>
where
    R: AsyncRead + Unpin,
{
    let read = async {
        // Header first (6 bytes), then exactly the body it announces.
        let mut buf = vec![0u8; 6];
        io.read_exact(&mut buf).await?;
        if let Some((v, _)) = decode(&buf)? {
            return Ok(v);
        }
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        buf.resize(6 + len, 0);
        io.read_exact(&mut buf[6..]).await?;
        match decode(&buf)? {
            Some((v, _)) => Ok(v),
            None => Err(ReadError::Route(RouteError::Malformed(
                "incomplete frame".into(),
            ))),
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ReadError::Timeout(timeout))?
}

/// Marks activity on a shared clock whenever bytes are read.
struct Activity<'a, T> {
    inner: &'a mut T,
    last: &'a AtomicU64,
    start: Instant,
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.last
                .store(this.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Copies both ways until both sides are done, one fails, or `idle` passes
/// with no byte moving. Half-closes propagate (EOF on one side shuts down the
/// other's write half); memory is bounded by the copy buffers. Returns
/// (bytes a→b, bytes b→a).
pub async fn splice<A, B>(a: &mut A, b: &mut B, idle: Duration) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = AtomicU64::new(0);
    let start = Instant::now();
    let mut a = Activity {
        inner: a,
        last: &last,
        start,
    };
    let mut b = Activity {
        inner: b,
        last: &last,
        start,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 64 * 1024, 64 * 1024);
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = start
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::select! {
        r = copy => r,
        _ = watchdog => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("idle for {idle:?}"))),
    }
}
