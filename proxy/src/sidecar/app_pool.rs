//! [`AppPool`]: the inbound side's connections to the local app.
//!
//! HTTP/1.1 apps get keep-alive connections used one request at a time: a
//! connection goes back to the idle stack the moment its response body ends
//! (no task per request waits for it) if its request body was sent in full,
//! and the most recently used one is taken first. A connection whose app
//! answered before the upload was sent (an early 413, say) is not reused:
//! its upload would hold up the next request. Idle connections older than
//! `timeouts.idle` are closed by a sweep. gRPC apps share one cleartext
//! HTTP/2 connection, opened once however many requests wait for it. A
//! request that could not even be written on a pooled connection (the app
//! closed it while idle) is sent once more on a new one; nothing is resent
//! once written.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// Idle HTTP/1.1 connections kept at most.
const MAX_IDLE: usize = 256;

/// Why a request could not be sent to the app.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// TCP connect did not finish within `timeouts.connect`.
    #[error("connect timed out after {0:?} (timeouts.connect)")]
    ConnectTimeout(Duration),
    /// The HTTP handshake or the exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Connections to one app.
pub struct AppPool {
    addr: SocketAddr,
    h2: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<(http1::SendRequest<ReqBody>, Instant)>>,
    /// The gRPC app's connection; the async lock makes concurrent first
    /// requests wait for one connect instead of each opening its own.
    shared: tokio::sync::Mutex<Option<http2::SendRequest<Incoming>>>,
}

impl std::fmt::Debug for AppPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPool")
            .field("addr", &self.addr)
            .field("h2", &self.h2)
            .finish_non_exhaustive()
    }
}

impl AppPool {
    /// Creates a pool for the app at `addr`, speaking cleartext HTTP/2 if
    /// `h2`, else HTTP/1.1; idle connections older than `idle_timeout` are
    /// closed (by a sweep every half of it, which ends with the pool).
    /// Needs a tokio runtime.
    pub fn new(
        addr: SocketAddr,
        h2: bool,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            addr,
            h2,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            shared: tokio::sync::Mutex::new(None),
        });
        if !h2 {
            tokio::spawn(sweep(Arc::downgrade(&pool), idle_timeout / 2));
        }
        pool
    }

    /// Sends `req` to the app and returns its response, whose body hands the
    /// connection back when it ends.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<AppBody>, AppError> {
        if self.h2 {
            let mut sender = Box::pin(self.shared_h2()).await?;
            let resp = sender.send_request(req).await?;
            return Ok(resp.map(|body| AppBody::new(body, None)));
        }
        let (head, body) = req.into_parts();
        let body = ReqBody::new(body);
        let sent_all = body.done.clone();
        let req = Request::from_parts(head, body);
        // Connecting is boxed so that its state does not enlarge every
        // request's future.
        let (mut sender, pooled) = match self.checkout() {
            Some(s) => (s, true),
            None => (Box::pin(self.connect_h1()).await?, false),
        };
        let mut sent = sender.try_send_request(req).await;
        if pooled
            && let Err(e) = &mut sent
            && let Some(unsent) = e.take_message()
        {
            // Never written: the idle connection was closed under us.
            tracing::debug!(error = %e.error(), "pooled app connection closed; retrying on a new one");
            sender = Box::pin(self.connect_h1()).await?;
            sent = sender.try_send_request(unsent).await;
        }
        let resp = sent.map_err(|e| AppError::Http(e.into_error()))?;
        let back = Some(Back {
            sender,
            pool: Arc::downgrade(self),
            sent_all,
        });
        Ok(resp.map(|body| AppBody::new(body, back)))
    }

    /// Sends an HTTP/1.1 upgrade request to the app on a connection of its
    /// own (an upgraded connection is never pooled) and returns the answer;
    /// after a `101`, `hyper::upgrade::on` yields the app's side.
    pub async fn upgrade(
        &self,
        req: Request<http_body_util::Empty<Bytes>>,
    ) -> Result<Response<Incoming>, AppError> {
        let io = TokioIo::new(self.tcp().await?);
        let (mut sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "app upgrade connection ended with an error");
            }
        });
        Ok(sender.send_request(req).await?)
    }

    /// Returns the most recent idle connection that is ready for a request
    /// now, dropping closed and expired ones on the way; one still busy
    /// with a previous request's upload stays idle.
    fn checkout(&self) -> Option<http1::SendRequest<ReqBody>> {
        let mut idle = self.idle.lock().expect("app pool lock");
        let now = Instant::now();
        idle.retain(|(s, since)| !s.is_closed() && now.duration_since(*since) <= self.idle_timeout);
        let i = idle.iter().rposition(|(s, _)| s.is_ready())?;
        Some(idle.remove(i).0)
    }

    fn checkin(&self, sender: http1::SendRequest<ReqBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("app pool lock");
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    async fn tcp(&self) -> Result<TcpStream, AppError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| AppError::ConnectTimeout(self.connect_timeout))?
            .map_err(AppError::Connect)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<ReqBody>, AppError> {
        let io = TokioIo::new(self.tcp().await?);
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "app HTTP/1.1 connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn shared_h2(&self) -> Result<http2::SendRequest<Incoming>, AppError> {
        let mut shared = self.shared.lock().await;
        if let Some(s) = shared.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let io = TokioIo::new(self.tcp().await?);
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "app HTTP/2 connection ended with an error");
            }
        });
        sender.ready().await?;
        *shared = Some(sender.clone());
        Ok(sender)
    }

    /// Closes idle connections older than the idle timeout.
    fn expire(&self) {
        let now = Instant::now();
        self.idle
            .lock()
            .expect("app pool lock")
            .retain(|(s, since)| !s.is_closed() && now.duration_since(*since) <= self.idle_timeout);
    }
}

/// Expires `pool`'s idle connections every `every` until the pool is gone.
async fn sweep(pool: Weak<AppPool>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.expire(),
            None => return,
        }
    }
}

/// A request body that records when it has been taken to its end, i.e.
/// the whole upload was handed to the connection.
pub struct ReqBody {
    body: Incoming,
    done: Arc<AtomicBool>,
}

impl ReqBody {
    fn new(body: Incoming) -> Self {
        let done = Arc::new(AtomicBool::new(body.is_end_stream()));
        Self { body, done }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.body.is_end_stream(),
            _ => false,
        };
        if ended {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What a response body needs to hand its connection back.
struct Back {
    sender: http1::SendRequest<ReqBody>,
    pool: Weak<AppPool>,
    /// Whether the request body was sent in full.
    sent_all: Arc<AtomicBool>,
}

/// The app's response body; an HTTP/1.1 connection goes back to its pool
/// when the body ends and the request was sent in full (and is closed if
/// the body is dropped before).
pub struct AppBody {
    body: Incoming,
    back: Option<Back>,
}

impl AppBody {
    fn new(body: Incoming, back: Option<Back>) -> Self {
        let mut me = Self { body, back };
        if me.body.is_end_stream() {
            me.give_back();
        }
        me
    }

    fn give_back(&mut self) {
        let Some(back) = self.back.take() else {
            return;
        };
        if back.sent_all.load(Ordering::Acquire)
            && let Some(pool) = back.pool.upgrade()
        {
            pool.checkin(back.sender);
        }
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            // An error leaves the connection unusable: drop it.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
