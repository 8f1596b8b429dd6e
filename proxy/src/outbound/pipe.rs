//! Copying bytes both ways between two streams with an idle timeout,
//! propagating half-closes and counting bytes. Memory is bounded: one
//! fixed buffer per direction.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

const BUF: usize = 16 * 1024;

/// How a pipe ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Both sides closed their writing half: bytes `a → b` and `b → a`.
    Closed(u64, u64),
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Copies `a → b` and `b → a` until both directions reach EOF (each EOF is
/// passed on as a write shutdown), an I/O error, or `idle` without a byte.
/// `count(true, n)` is called for `a → b` bytes, `count(false, n)` for `b → a`.
pub(crate) async fn pipe<A, B>(
    a: A,
    b: B,
    idle: Duration,
    count: impl Fn(bool, u64),
) -> io::Result<End>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let touch = || last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let forward = one_way(&mut ar, &mut bw, &touch, |n| count(true, n));
    let backward = one_way(&mut br, &mut aw, &touch, |n| count(false, n));
    let watchdog = async {
        loop {
            let at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            tokio::time::sleep_until(at).await;
            let quiet = start
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return;
            }
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(forward, backward) } => r.map(|(f, b)| End::Closed(f, b)),
        () = watchdog => Ok(End::Idle),
    }
}

async fn one_way<R, W>(
    r: &mut R,
    w: &mut W,
    touch: &impl Fn(),
    count: impl Fn(u64),
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        touch();
        if n == 0 {
            w.shutdown().await?;
            return Ok(total);
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        total += n as u64;
        count(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_both_ways_and_passes_half_close_on() {
        let (app, a) = tokio::io::duplex(64);
        let (b, mut far) = tokio::io::duplex(64);
        let task = tokio::spawn(pipe(a, b, Duration::from_secs(5), |_, _| {}));
        let (mut app_r, mut app_w) = tokio::io::split(app);
        app_w.write_all(b"hello").await.unwrap();
        app_w.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello", "EOF reached the far side after the bytes");
        // The far side can still answer after the app's half-close.
        far.write_all(b"world!").await.unwrap();
        far.shutdown().await.unwrap();
        let mut back = Vec::new();
        app_r.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"world!");
        assert_eq!(task.await.unwrap().unwrap(), End::Closed(5, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn ends_after_the_idle_timeout() {
        let (_app, a) = tokio::io::duplex(64);
        let (b, _far) = tokio::io::duplex(64);
        let t0 = Instant::now();
        let end = pipe(a, b, Duration::from_secs(30), |_, _| {})
            .await
            .unwrap();
        assert_eq!(end, End::Idle);
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
    }
}
