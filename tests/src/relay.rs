//! User-space relays on loopback that record every byte they carry: a TCP
//! relay and a UDP relay (one client), so a test can check what crossed a
//! hop — for example that an application's bytes never appear in clear.
//! [`udp_link`] is a narrow WAN link instead: a rate and a bounded queue.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// A running relay; stops when dropped.
pub struct Relay {
    /// Where clients connect (or send).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Returns every byte carried so far, both directions, in arrival order.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().expect("relay log").clone()
    }

    /// Returns how many datagrams a [`udp_link`] dropped (its queue full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns how many bytes were carried.
    pub fn carried(&self) -> usize {
        self.seen.lock().expect("relay log").len()
    }
}

/// Returns whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Relays TCP connections to `target`, recording the bytes.
pub async fn tcp(target: SocketAddr) -> Result<Relay> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(pump(cr, sw, log.clone()), pump(sr, cw, log));
            });
        }
    });
    Ok(Relay {
        addr,
        seen,
        dropped: Arc::default(),
        task,
    })
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = w.shutdown().await;
                return;
            }
            Ok(n) => {
                log.lock().expect("relay log").extend_from_slice(&buf[..n]);
                if w.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Relays UDP datagrams between one client and `target`, recording them.
pub async fn udp(target: SocketAddr) -> Result<Relay> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    back.connect(target).await?;
    let addr = front.local_addr()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (log, log2, c1, c2, f1, f2, b1, b2) = (
        seen.clone(),
        seen.clone(),
        client.clone(),
        client,
        front.clone(),
        front,
        back.clone(),
        back,
    );
    let task = tokio::spawn(async move {
        let up = async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = f1.recv_from(&mut buf).await {
                *c1.lock().expect("client") = Some(from);
                log.lock().expect("relay log").extend_from_slice(&buf[..n]);
                let _ = b1.send(&buf[..n]).await;
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = b2.recv(&mut buf).await {
                log2.lock().expect("relay log").extend_from_slice(&buf[..n]);
                let to = *c2.lock().expect("client");
                if let Some(to) = to {
                    let _ = f2.send_to(&buf[..n], to).await;
                }
            }
        };
        tokio::join!(up, down);
    });
    Ok(Relay {
        addr,
        seen,
        dropped: Arc::default(),
        task,
    })
}

/// A narrow WAN link: relays UDP datagrams between one client and `target`
/// at `rate` bytes per second each way, each direction queueing up to
/// `max_queue` of delay and dropping what would wait longer, as a router's
/// full queue does. Records nothing.
pub async fn udp_link(target: SocketAddr, rate: u64, max_queue: Duration) -> Result<Relay> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    back.connect(target).await?;
    let addr = front.local_addr()?;
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let dropped: Arc<std::sync::atomic::AtomicU64> = Arc::default();
    let counter = dropped.clone();
    let task = tokio::spawn(async move {
        let b = back.clone();
        let mut up = Shaper::new(rate, max_queue, counter.clone(), move |d| {
            let b = b.clone();
            async move {
                let _ = b.send(&d).await;
            }
        });
        let (f, c) = (front.clone(), client.clone());
        let mut down = Shaper::new(rate, max_queue, counter, move |d| {
            let (f, c) = (f.clone(), c.clone());
            async move {
                let to = *c.lock().expect("client");
                if let Some(to) = to {
                    let _ = f.send_to(&d, to).await;
                }
            }
        });
        let up = async {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().expect("client") = Some(from);
                up.push(&buf[..n]);
            }
        };
        let down = async {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                down.push(&buf[..n]);
            }
        };
        tokio::join!(up, down);
    });
    Ok(Relay {
        addr,
        seen: Arc::default(),
        dropped,
        task,
    })
}

/// One direction of [`udp_link`]: each datagram leaves when the link has
/// sent the ones before it at `rate`, or is dropped if that is more than
/// `max_queue` away.
struct Shaper {
    rate: f64,
    max_queue: Duration,
    free_at: tokio::time::Instant,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    queue: tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, Vec<u8>)>,
    sender: JoinHandle<()>,
}

impl Shaper {
    fn new<S, F>(
        rate: u64,
        max_queue: Duration,
        dropped: Arc<std::sync::atomic::AtomicU64>,
        send: S,
    ) -> Self
    where
        S: Fn(Vec<u8>) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send,
    {
        let (queue, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let sender = tokio::spawn(async move {
            while let Some((at, d)) = rx.recv().await {
                tokio::time::sleep_until(at).await;
                send(d).await;
            }
        });
        Shaper {
            rate: rate as f64,
            max_queue,
            free_at: tokio::time::Instant::now(),
            dropped,
            queue,
            sender,
        }
    }

    fn push(&mut self, d: &[u8]) {
        let now = tokio::time::Instant::now();
        let start = self.free_at.max(now);
        if start - now > self.max_queue {
            // The queue is full: dropped.
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        self.free_at = start + Duration::from_secs_f64(d.len() as f64 / self.rate);
        let _ = self.queue.send((self.free_at, d.to_vec()));
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.sender.abort();
    }
}
