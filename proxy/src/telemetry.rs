//! OpenTelemetry traces of proxied requests, exported over OTLP/gRPC
//! (`[telemetry] otlp_endpoint`). Each HTTP or gRPC request gets one span
//! per sidecar: a client span at the caller's sidecar, a server span at the
//! destination's. A span's parent is the `traceparent` the request arrived
//! with, and the request leaves with the span's own context, so the app's
//! spans, the two sidecars' and the destination app's chain into one trace
//! (W3C Trace Context). New traces are sampled at `sample_percent`; a
//! request with a `traceparent` follows its sampled flag.
//!
//! Without an endpoint nothing is set up and [`start`] costs one atomic
//! load: the `traceparent` is then passed on (or created) unchanged by the
//! proxy, as before.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use meshgw_config::TelemetryConfig;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter,
};

pub use opentelemetry::trace::SpanKind as Kind;

/// The tracer, set once an exporter is running.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// How often finished spans are sent.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Why exporting could not start.
#[derive(Debug, thiserror::Error)]
#[error("[telemetry] otlp_endpoint {endpoint}: {why}")]
pub struct TelemetryError {
    endpoint: String,
    why: String,
}

/// The running exporter; [`Telemetry::shutdown`] sends what is left.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts exporting spans of `service` (`namespace`, `name`) in
    /// `cluster` when `cfg` names an endpoint; `None` otherwise. Call it
    /// inside the tokio runtime the exporter's connection runs on, once.
    pub fn start(
        cfg: &TelemetryConfig,
        namespace: &str,
        name: &str,
        cluster: &str,
    ) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        let err = |why: String| TelemetryError {
            endpoint: endpoint.clone(),
            why,
        };
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let exporter = Reported {
            inner: exporter,
            endpoint: endpoint.clone(),
            failing: AtomicBool::new(false),
        };
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(EXPORT_EVERY)
                    .build(),
            )
            .build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(name.to_string())
            .with_attributes([
                KeyValue::new("service.namespace", namespace.to_string()),
                KeyValue::new("meshgw.cluster", cluster.to_string()),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio(),
            ))))
            .build();
        use opentelemetry::trace::TracerProvider as _;
        TRACER
            .set(provider.tracer("meshgw-sidecar"))
            .map_err(|_| err("telemetry is already running in this process".into()))?;
        tracing::info!(%endpoint, sample_percent = cfg.sample_ratio() * 100.0, "exporting request spans over OTLP");
        Ok(Some(Self { provider }))
    }

    /// Sends the spans still buffered (for up to 5 s) and stops exporting.
    pub async fn shutdown(self) {
        // The export needs this runtime to run while the SDK waits for it.
        let done = tokio::task::spawn_blocking(move || {
            self.provider.shutdown_with_timeout(Duration::from_secs(5))
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "not every span was exported at shutdown");
        }
    }
}

/// The OTLP exporter, reporting in the sidecar's log when exports start
/// failing (once, not every batch) and when they work again: spans are
/// dropped meanwhile, and the operator should know.
#[derive(Debug)]
struct Reported<E> {
    inner: E,
    endpoint: String,
    failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                endpoint = %self.endpoint, spans, error = %e,
                "exporting request spans failed; they are dropped until the collector answers (is it running at [telemetry] otlp_endpoint?)"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!(endpoint = %self.endpoint, "exporting request spans again")
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// One request's span at this sidecar; ends when finished or dropped.
#[derive(Debug)]
pub struct RequestSpan {
    span: Option<Span>,
    traceparent: Option<String>,
}

/// Starts a span `name` of `kind` whose parent is `incoming` (a request's
/// valid `traceparent`, or `None`: a new trace), with `attributes`. Does
/// nothing, and calls none of the closures, when no exporter runs.
pub fn start<'a, N: Into<Cow<'static, str>>>(
    kind: SpanKind,
    name: impl FnOnce() -> N,
    incoming: impl FnOnce() -> Option<&'a str>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> RequestSpan {
    let Some(tracer) = TRACER.get() else {
        return RequestSpan {
            span: None,
            traceparent: None,
        };
    };
    let propagator = TraceContextPropagator::new();
    let parent = match incoming() {
        Some(tp) => propagator.extract(&One(tp)),
        None => Context::new(),
    };
    let span = tracer
        .span_builder(name())
        .with_kind(kind)
        .with_attributes(attributes())
        .start_with_context(tracer, &parent);
    let cx = Context::new().with_remote_span_context(span.span_context().clone());
    let mut out = Out(None);
    propagator.inject_context(&cx, &mut out);
    RequestSpan {
        span: Some(span),
        traceparent: out.0,
    }
}

impl RequestSpan {
    /// The `traceparent` the request leaves with: this span's context;
    /// `None` when no span is recorded (pass the request's own on).
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Records the response status and ends the span; a 5xx marks it failed.
    pub fn finish(mut self, status: u16, error: Option<&str>) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.set_status(Status::error(error.unwrap_or("server error").to_string()));
            }
            span.end();
        }
    }
}

/// Reads one `traceparent` value.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Catches the `traceparent` the propagator writes.
struct Out(Option<String>);

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}
