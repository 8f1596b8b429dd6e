//! [`AppPool`]: the inbound side's connections to the local app.
//!
//! HTTP/1.1 apps get keep-alive connections used one request at a time: a
//! connection goes back to the idle stack the moment its response body ends
//! (no task per request waits for it), and the most recently used one is
//! taken first. gRPC apps get one shared cleartext HTTP/2 connection. A
//! request that could not even be written on a pooled connection (the app
//! closed it while idle) is sent once more on a new one; nothing is resent
//! once written.

use std::net::SocketAddr;
use std::pin::Pin;
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
    idle: Mutex<Vec<(http1::SendRequest<Incoming>, Instant)>>,
    shared: Mutex<Option<http2::SendRequest<Incoming>>>,
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
    /// closed rather than reused.
    pub fn new(
        addr: SocketAddr,
        h2: bool,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            addr,
            h2,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(None),
        })
    }

    /// Sends `req` to the app and returns its response, whose body hands the
    /// connection back when it ends.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<AppBody>, AppError> {
        if self.h2 {
            let mut sender = self.shared_h2().await?;
            let resp = sender.send_request(req).await?;
            return Ok(resp.map(|body| AppBody::new(body, None)));
        }
        let mut req = req;
        let mut pooled = true;
        loop {
            let mut sender = match self.checkout().await {
                Some(s) => s,
                None => {
                    pooled = false;
                    self.connect_h1().await?
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = Some((sender, Arc::downgrade(self)));
                    return Ok(resp.map(|body| AppBody::new(body, back)));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the idle connection was closed under us.
                    Some(unsent) if pooled => {
                        tracing::debug!(error = %e.error(), "pooled app connection closed; retrying on a new one");
                        req = unsent;
                        pooled = false;
                        self.idle.lock().expect("app pool lock").clear();
                    }
                    _ => return Err(AppError::Http(e.into_error())),
                },
            }
        }
    }

    /// Returns a ready idle connection, dropping closed and expired ones.
    async fn checkout(&self) -> Option<http1::SendRequest<Incoming>> {
        loop {
            let (mut sender, since) = self.idle.lock().expect("app pool lock").pop()?;
            if sender.is_closed() || since.elapsed() > self.idle_timeout {
                continue;
            }
            // Ready at once, or as soon as its connection task has finished
            // reading the previous response; an error means it closed.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, sender: http1::SendRequest<Incoming>) {
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

    async fn connect_h1(&self) -> Result<http1::SendRequest<Incoming>, AppError> {
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
        if let Some(s) = self.shared.lock().expect("app pool lock").as_ref()
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
        *self.shared.lock().expect("app pool lock") = Some(sender.clone());
        Ok(sender)
    }
}

/// The app's response body; an HTTP/1.1 connection goes back to its pool
/// when the body ends (and is closed if the body is dropped before).
pub struct AppBody {
    body: Incoming,
    back: Option<(http1::SendRequest<Incoming>, Weak<AppPool>)>,
}

impl AppBody {
    fn new(body: Incoming, back: Option<(http1::SendRequest<Incoming>, Weak<AppPool>)>) -> Self {
        let mut me = Self { body, back };
        if me.body.is_end_stream() {
            me.give_back();
        }
        me
    }

    fn give_back(&mut self) {
        if let Some((sender, pool)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.checkin(sender);
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
