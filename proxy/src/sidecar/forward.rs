//! HTTP from the inbound listener to the app: each request on a caller's
//! HTTP/2 connection goes to the app on a pooled connection (HTTP/1.1 for
//! `http`, cleartext HTTP/2 for `grpc`), bodies streamed both ways.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshgw_config::{Access, AppProtocol, SidecarConfig, is_normal_path};
use opentelemetry::KeyValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::body::Coalesce;
use crate::error::{ERROR_HEADER, Hop, Reason};
use crate::metrics::Metrics;
use crate::outbound::TRACEPARENT_NAME;
use crate::sidecar::app_pool::{AppBody, AppError, AppPool};
use crate::sidecar::policy::Policy;
use crate::telemetry::{self, Kind};

#[path = "upgrade.rs"]
mod upgrade;

/// Header naming the caller's verified SPIFFE ID, set by the inbound sidecar.
pub const CALLER_HEADER: &str = "x-meshgw-caller";
/// Header naming the caller's cluster: the cluster whose CA issued the
/// caller's certificate, else what the calling sidecar asserted.
pub const SOURCE_CLUSTER_HEADER: &str = "x-meshgw-source-cluster";

/// [`CALLER_HEADER`], parsed.
const CALLER_NAME: HeaderName = HeaderName::from_static(CALLER_HEADER);

/// [`SOURCE_CLUSTER_HEADER`], parsed.
const SOURCE_CLUSTER_NAME: HeaderName = HeaderName::from_static(SOURCE_CLUSTER_HEADER);

/// Headers some web frameworks take as the request's real method.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// A connection's caller, as its verified certificate shows it, with the
/// header values the app is given (built once per connection).
#[derive(Debug)]
pub struct Caller {
    id: Arc<str>,
    id_value: Option<HeaderValue>,
    cluster: Option<(Arc<str>, HeaderValue)>,
    /// Whether a mismatch with the asserted cluster has been logged.
    warned: Arc<AtomicBool>,
    /// What the caller may do, and the policy generation that said so.
    access: RwLock<(u64, Arc<Access>)>,
    /// The policy to judge the caller by again when it changes; `None`:
    /// the access it was created with holds.
    policy: Option<Arc<Policy>>,
}

impl Caller {
    /// A caller with SPIFFE ID `id`, whose certificate a CA of `cluster`
    /// issued (`None`: not a cluster CA of `meshgw ca`, so the cluster is
    /// what the calling sidecar asserts).
    pub fn new(id: &str, cluster: Option<&str>) -> Self {
        Self {
            id: Arc::from(id),
            id_value: HeaderValue::from_str(id).ok(),
            cluster: cluster.and_then(|c| Some((Arc::from(c), HeaderValue::from_str(c).ok()?))),
            warned: Arc::default(),
            access: RwLock::new((0, Arc::new(Access::All))),
            policy: None,
        }
    }

    /// The caller judged by `policy` (its `access` at `generation`, judged
    /// again at a request once the policy has been replaced).
    pub fn with_policy(mut self, policy: Arc<Policy>, access: Access, generation: u64) -> Self {
        self.access = RwLock::new((generation, Arc::new(access)));
        self.policy = Some(policy);
        self
    }

    /// Whether the policy lets `req` through: `Ok(true)` if the caller is
    /// limited by rules (which let it through), `Ok(false)` if it may make
    /// every request; why not if it may not.
    fn check(&self, req: &Request<Incoming>) -> Result<bool, Refusal> {
        // The lock is held only to read (or, after a reload, replace) the
        // judgement: concurrent streams of the connection do not wait on
        // each other's rule matching. A poisoned lock still holds a whole
        // judgement (it is written in one assignment).
        let (seen, mut access) = {
            let a = self.access.read().unwrap_or_else(PoisonError::into_inner);
            (a.0, a.1.clone())
        };
        if let Some(policy) = &self.policy
            && policy.generation() != seen
        {
            let (now, generation) = policy.access(&self.id);
            tracing::debug!(caller = %self.id, ?now, "[authz] changed: caller judged again");
            access = Arc::new(now);
            *self.access.write().unwrap_or_else(PoisonError::into_inner) =
                (generation, access.clone());
        }
        let rules = match &*access {
            Access::All => return Ok(false),
            Access::Denied => return Err(Refusal::NotListed),
            Access::Limited(rules) => rules,
        };
        // An upgrade (a WebSocket) arrives as an extended CONNECT and
        // reaches the app as the GET it was: rules see that GET.
        let method = match req.extensions().get::<hyper::ext::Protocol>() {
            Some(_) if req.method() == http::Method::CONNECT => "GET",
            _ => req.method().as_str(),
        };
        let path = req.uri().path();
        if !is_normal_path(path) {
            return Err(Refusal::OddPath);
        }
        match rules.iter().any(|r| r.permits(method, path)) {
            true => Ok(true),
            false => Err(Refusal::NoRule),
        }
    }

    /// The caller's verified cluster, if its certificate names one.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_ref().map(|(c, _)| &**c)
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller is in neither `[authz] allow` nor any rule.
    NotListed,
    /// None of the caller's `[[authz.rules]]` permits the method and path.
    NoRule,
    /// The path is not in normal form, and the caller is limited by rules.
    OddPath,
}

/// The body of responses to callers: the app's, streamed, or our own error.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Forwards requests to the app.
pub struct AppForwarder {
    app: SocketAddr,
    protocol: AppProtocol,
    service: String,
    cluster: String,
    request_timeout: Duration,
    /// `timeouts.idle`: how long an upgraded connection may stay silent.
    idle: Duration,
    pool: Arc<AppPool>,
    metrics: Arc<Metrics>,
}

impl AppForwarder {
    /// Creates a forwarder to `cfg.service.app` with a connection pool.
    pub fn new(cfg: &SidecarConfig, service: String, metrics: Arc<Metrics>) -> Self {
        let pool = AppPool::new(
            cfg.service.app,
            cfg.service.protocol == AppProtocol::Grpc,
            cfg.timeouts.connect,
            cfg.timeouts.idle,
        );
        Self {
            app: cfg.service.app,
            protocol: cfg.service.protocol,
            service,
            cluster: cfg.locality.cluster.clone(),
            request_timeout: cfg.timeouts.request,
            idle: cfg.timeouts.idle,
            pool,
            metrics,
        }
    }

    /// Serves HTTP/2 on `io` (a caller's TLS stream) until the caller closes
    /// it; once `shutdown` turns true, sends GOAWAY and lets open streams
    /// finish. Each request is judged by the caller's access (its policy's
    /// if that was replaced since): a caller in neither `[authz] allow` nor
    /// a rule gets every request refused ([`AppForwarder::forbidden`]), a
    /// caller limited by `[[authz.rules]]` those its rules do not permit;
    /// no refused request reaches the app.
    pub async fn serve_h2<S>(
        self: Arc<Self>,
        io: S,
        caller: Caller,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let me = self.clone();
        // One caller per connection, shared by its requests.
        let id = caller.id.clone();
        let who = Arc::new(caller);
        let svc = service_fn(move |req| {
            let (me, who) = (me.clone(), who.clone());
            async move {
                match who.check(&req) {
                    Ok(limited) => me.forward(req, who, limited).await,
                    Err(why) => Ok(me.forbidden(&req, &who, why)),
                }
            }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = crate::sidecar::stopped(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(caller = %id, error = %e, "inbound HTTP/2 connection ended with an error");
        }
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        who: Arc<Caller>,
        limited: bool,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let caller = &who.id;
        let started = Instant::now();
        let src_cluster = self.src_cluster(&req, &who).to_owned();
        let span = telemetry::start(
            Kind::Server,
            || format!("{} {}", req.method(), self.service),
            || crate::outbound::incoming_traceparent(&req),
            || {
                vec![
                    KeyValue::new("http.request.method", req.method().to_string()),
                    KeyValue::new("url.path", req.uri().path().to_string()),
                    KeyValue::new("meshgw.service", self.service.clone()),
                    KeyValue::new("meshgw.caller", caller.to_string()),
                    KeyValue::new("meshgw.src_cluster", src_cluster.clone()),
                    KeyValue::new("meshgw.dst_cluster", self.cluster.clone()),
                ]
            },
        );
        let mut failure = None;
        let answer = if upgrade::requested(&req) {
            self.upgrade(req, &who, limited, span.traceparent()).await
        } else {
            match self.to_app(req, &who, limited, span.traceparent()).await {
                // HEADERS, DATA and END_STREAM of a small response in one write.
                Ok(resp) => {
                    let (head, body) = resp.into_parts();
                    let body = Coalesce::prefetched(body).await;
                    Ok(Response::from_parts(head, body.boxed()))
                }
                Err(e) => Err(e),
            }
        };
        let resp = match answer {
            Ok(resp) => resp,
            Err((status, code, why)) => {
                tracing::warn!(%caller, app = %self.app, %status, "{why}");
                failure = Some(why.clone());
                let mut resp = error_response(status, why);
                let header = format!("{code}; service={}; hop={}", self.service, Hop::App);
                if let Ok(v) = HeaderValue::from_str(&header) {
                    resp.headers_mut().insert(ERROR_HEADER, v);
                }
                resp
            }
        };
        span.finish(resp.status().as_u16(), failure.as_deref());
        self.metrics.request_between(
            &src_cluster,
            &self.cluster,
            &self.service,
            resp.status().as_u16(),
            started.elapsed(),
        );
        Ok(resp)
    }

    /// The caller's cluster: the one its certificate proves, else the one
    /// its sidecar named, else ours.
    fn src_cluster<'a>(&'a self, req: &'a Request<Incoming>, caller: &'a Caller) -> &'a str {
        let asserted = req
            .headers()
            .get(&SOURCE_CLUSTER_NAME)
            .and_then(|v| v.to_str().ok());
        match (caller.cluster(), asserted) {
            (Some(proven), Some(said)) if proven != said => {
                if !caller.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(caller = %caller.id, certificate = %proven, sidecar = %said, "the caller's sidecar says it runs in cluster {said}, but the CA of cluster {proven} issued its certificate: the app is told {proven}; issue the caller's certificate with `meshgw ca workload --cluster {said}` if it runs there");
                }
                proven
            }
            (Some(proven), _) => proven,
            (None, said) => said.unwrap_or(&self.cluster),
        }
    }

    /// The answer to a caller `[authz]` does not allow: HTTP 403, or for a
    /// gRPC call a trailers-only PERMISSION_DENIED, naming the caller, the
    /// service and what to change; counted, and logged at debug (the
    /// connection's refusal is logged once when it is accepted).
    pub fn forbidden(
        &self,
        req: &Request<Incoming>,
        who: &Caller,
        refusal: Refusal,
    ) -> Response<ProxyBody> {
        let caller = &*who.id;
        self.metrics.authz_denied(caller);
        let (method, path) = (req.method(), req.uri().path());
        let service = &self.service;
        tracing::debug!(%caller, %method, path, ?refusal, "refused request");
        let why = match refusal {
            Refusal::NotListed => format!(
                "meshgw inbound: caller {caller} may not call {service}: it is not in [authz] allow nor in any [[authz.rules]] of this workload's sidecar"
            ),
            Refusal::NoRule => format!(
                "meshgw inbound: caller {caller} may not {method} {path} on {service}: no [[authz.rules]] entry of this workload's sidecar allows it"
            ),
            Refusal::OddPath => format!(
                "meshgw inbound: caller {caller} may not {method} {path:?} on {service}: its [[authz.rules]] are matched against normal paths only (no empty, '.' or '..' segment, no backslash, no encoded '/', '.' or '\\')"
            ),
        };
        let mut resp = if crate::grpc::is_grpc(req.headers()) {
            let mut resp = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from_static("7"));
            if let Ok(v) = HeaderValue::from_str(&why) {
                h.insert("grpc-message", v);
            }
            resp
        } else {
            error_response(StatusCode::FORBIDDEN, why)
        };
        let header = format!("forbidden; service={}; caller={caller}", self.service);
        if let Ok(v) = HeaderValue::from_str(&header) {
            resp.headers_mut().insert(ERROR_HEADER, v);
        }
        self.metrics.request_between(
            self.src_cluster(req, who),
            &self.cluster,
            &self.service,
            resp.status().as_u16(),
            Duration::ZERO,
        );
        resp
    }

    /// Rewrites a caller's request head for the app: origin form for
    /// HTTP/1.1 (scheme and authority for gRPC's HTTP/2), `Host` if it had
    /// none, the caller's ID and cluster, and the span's `traceparent`.
    fn app_head(
        &self,
        parts: &mut http::request::Parts,
        caller: &Caller,
        limited: bool,
        traceparent: Option<&str>,
    ) -> Result<(), (StatusCode, &'static str, String)> {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if !parts.headers.contains_key(HOST) {
            // The caller's authority, else the app's address (as an absolute
            // request URI to the app would have given).
            let host = match parts.uri.authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None => HeaderValue::from_str(&self.app.to_string()).ok(),
            };
            if let Some(v) = host {
                parts.headers.insert(HOST, v);
            }
        }
        // HTTP/1.1 in origin form (`GET /path`); HTTP/2 needs scheme and authority.
        let uri = match self.protocol {
            AppProtocol::Grpc => Uri::builder()
                .scheme("http")
                .authority(self.app.to_string())
                .path_and_query(path.clone()),
            _ => Uri::builder().path_and_query(path.clone()),
        };
        parts.uri = uri.build().map_err(|e| {
            let why = format!("meshgw inbound: bad request path {path:?}: {e}");
            (StatusCode::BAD_REQUEST, "bad_path", why)
        })?;
        parts.version = match self.protocol {
            AppProtocol::Grpc => Version::HTTP_2,
            _ => Version::HTTP_11,
        };
        match &caller.id_value {
            Some(v) => parts.headers.insert(CALLER_NAME, v.clone()),
            None => parts.headers.remove(CALLER_NAME),
        };
        let mut said = parts.headers.get_all(&SOURCE_CLUSTER_NAME).iter();
        let (first, more) = (said.next().cloned(), said.next().is_some());
        match (&caller.cluster, first) {
            // Replaced unless it is already the one value, and the right
            // one (`insert` drops every other value).
            (Some((_, v)), first) if more || first.as_ref() != Some(v) => {
                parts.headers.insert(SOURCE_CLUSTER_NAME, v.clone());
            }
            // Unverified: the calling sidecar's value, once.
            (None, Some(first)) if more => {
                parts.headers.insert(SOURCE_CLUSTER_NAME, first);
            }
            _ => {}
        }
        if limited {
            // A framework that honours these would run another method than
            // the one the caller's rules were checked against.
            for name in METHOD_OVERRIDES {
                parts.headers.remove(name);
            }
        }
        if let Some(v) = traceparent.and_then(|tp| HeaderValue::from_str(tp).ok()) {
            parts.headers.insert(TRACEPARENT_NAME, v);
        }
        Ok(())
    }

    /// Sends `req` to the app with the caller's ID and, when this sidecar
    /// records a span of it, the span's `traceparent`.
    async fn to_app(
        &self,
        req: Request<Incoming>,
        caller: &Caller,
        limited: bool,
        traceparent: Option<&str>,
    ) -> Result<Response<AppBody>, (StatusCode, &'static str, String)> {
        let (mut parts, body) = req.into_parts();
        self.app_head(&mut parts, caller, limited, traceparent)?;
        let req = Request::from_parts(parts, body);
        self.timed(self.pool.send(req)).await
    }

    /// Waits for the app's response head for up to `timeouts.request`; a
    /// failure becomes the status, code and text the caller gets.
    async fn timed<T>(
        &self,
        sent: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, (StatusCode, &'static str, String)> {
        match tokio::time::timeout(self.request_timeout, sent).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err((
                StatusCode::BAD_GATEWAY,
                Reason::Refused.code(),
                format!(
                    "meshgw inbound: cannot reach the app at {} ({}): {}; is it listening on service.app?",
                    self.app,
                    self.protocol.as_str(),
                    meshgw_federation::error_text::chain(&e)
                ),
            )),
            Err(_) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                Reason::RequestTimeout.code(),
                format!(
                    "meshgw inbound: the app at {} sent no response headers within {:?} (timeouts.request)",
                    self.app, self.request_timeout
                ),
            )),
        }
    }
}

/// Returns a plain-text error response.
pub fn error_response(status: StatusCode, why: String) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(why + "\n"))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
