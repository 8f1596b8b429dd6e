//! An open-loop, fixed-rate HTTP/1.1 load generator, corrected for
//! coordinated omission.
//!
//! A scheduler thread releases request `i` at its *intended* time
//! `start + i / rate` (an OS thread sleeping with a 1 ns timer slack, not the
//! tokio timer and its 1 ms wheel). Released requests go into one queue that
//! `connections` workers drain, each over its own keep-alive HTTP/1.1
//! connection (hyper). Latency is measured from the intended time to the
//! last byte of the body, so a request that waited behind a stall (every
//! connection busy, or the scheduler itself late) is charged for the wait:
//! a stall counts against every request it delayed, not only the one that
//! was on the wire.
//!
//! The run is bounded in count (`rate * (warmup + duration)` requests) and
//! in time: whatever has not completed `grace` after the last intended send
//! is counted as timed out. Requests intended during the warm-up open the
//! connections and fill the proxies' pools; they are not recorded.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use http::Request;
use http::header::HOST;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Where to connect.
    pub target: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Body length every response must have.
    pub expect_len: usize,
    /// Requests per second.
    pub rate: u32,
    /// Measured time.
    pub duration: Duration,
    /// Unrecorded time before it, at the same rate.
    pub warmup: Duration,
    /// Keep-alive connections.
    pub connections: usize,
    /// How long after the last intended send to wait for stragglers.
    pub grace: Duration,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// Recorded latencies (intended send to last body byte), µs, sorted.
    pub latencies_us: Vec<u64>,
    /// Measured requests scheduled.
    pub scheduled: usize,
    /// Measured requests that failed (connection error, bad status or length).
    pub errors: usize,
    /// Measured requests not done by the deadline.
    pub timeouts: usize,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// How late the scheduler released each request, µs, sorted (its own jitter).
    pub release_late_us: Vec<u64>,
    /// Wall time from the first measured intended send to the last completion.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Adds another run's measurements (one round of the same path).
    pub fn merge(&mut self, other: LoadResult) {
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self.release_late_us.extend(other.release_late_us);
        self.release_late_us.sort_unstable();
        self.scheduled += other.scheduled;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
    }

    /// Returns the `p`-quantile (0..=1) of the latencies, nearest rank, µs.
    pub fn pct(&self, p: f64) -> Option<u64> {
        pct(&self.latencies_us, p)
    }
}

/// Returns the `p`-quantile of sorted values, nearest rank.
pub fn pct(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

type Sender = SendRequest<Empty<Bytes>>;

/// One released request: its intended time and whether it is measured.
#[derive(Clone, Copy)]
struct Job {
    intended: Instant,
    measured: bool,
}

#[derive(Default)]
struct WorkerOut {
    lat: Vec<u64>,
    errors: usize,
    timeouts: usize,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

/// Runs the load on threads of its own (a scheduler thread and a
/// single-threaded tokio runtime for the connections) and returns what it
/// measured. Blocking: call it from a blocking context.
pub fn run(spec: &LoadSpec) -> Result<LoadResult> {
    ensure!(
        spec.rate > 0 && spec.connections > 0,
        "rate and connections must be positive"
    );
    let nanos_per = 1e9 / spec.rate as f64;
    let warm_n = (spec.warmup.as_secs_f64() * spec.rate as f64).round() as u64;
    let meas_n = (spec.duration.as_secs_f64() * spec.rate as f64).round() as u64;
    let total = warm_n + meas_n;
    let start = Instant::now() + Duration::from_millis(50);
    let at = move |i: u64| start + Duration::from_nanos((i as f64 * nanos_per) as u64);
    let deadline = at(total) + spec.grace;
    let measured_from = at(warm_n);

    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let scheduler = std::thread::Builder::new()
        .name("loadgen-scheduler".into())
        .spawn(move || {
            // Precise wake-ups: the default 50 µs slack would show as latency.
            let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
            let mut late = Vec::with_capacity(meas_n as usize);
            for i in 0..total {
                let t = at(i);
                let now = Instant::now();
                if t > now {
                    std::thread::sleep(t - now);
                }
                let measured = i >= warm_n;
                if measured {
                    late.push(Instant::now().saturating_duration_since(t).as_micros() as u64);
                }
                if tx
                    .send(Job {
                        intended: t,
                        measured,
                    })
                    .is_err()
                {
                    break;
                }
            }
            late
        })
        .context("starting the scheduler thread")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the load generator's runtime")?;
    let spec2 = Arc::new(spec.clone());
    let outs: Vec<WorkerOut> = rt.block_on(async move {
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = Vec::new();
        for _ in 0..spec2.connections {
            tasks.push(tokio::spawn(worker(spec2.clone(), rx.clone(), deadline)));
        }
        let mut outs = Vec::new();
        for t in tasks {
            outs.push(t.await.unwrap_or_default());
        }
        outs
    });
    let mut release_late_us = scheduler
        .join()
        .map_err(|_| anyhow!("scheduler thread panicked"))?;
    release_late_us.sort_unstable();

    let mut r = LoadResult {
        scheduled: meas_n as usize,
        release_late_us,
        ..Default::default()
    };
    let mut last = measured_from;
    for o in outs {
        r.latencies_us.extend(o.lat);
        r.errors += o.errors;
        r.timeouts += o.timeouts;
        if r.first_error.is_none() {
            r.first_error = o.first_error;
        }
        if let Some(d) = o.last_done {
            last = last.max(d);
        }
    }
    // Whatever the scheduler never released (it stops only if every worker is gone).
    let accounted = r.latencies_us.len() + r.errors + r.timeouts;
    r.timeouts += r.scheduled.saturating_sub(accounted);
    r.latencies_us.sort_unstable();
    r.elapsed = last.saturating_duration_since(measured_from);
    Ok(r)
}

async fn worker(
    spec: Arc<LoadSpec>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    deadline: Instant,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut conn: Option<Sender> = None;
    loop {
        let job = {
            let mut q = rx.lock().await;
            match q.recv().await {
                Some(j) => j,
                None => break,
            }
        };
        if Instant::now() >= deadline {
            if job.measured {
                out.timeouts += 1;
            }
            continue;
        }
        let r = tokio::time::timeout_at(deadline.into(), one(&mut conn, &spec)).await;
        let done = Instant::now();
        match r {
            Ok(Ok(())) => {
                if job.measured {
                    out.lat
                        .push(done.saturating_duration_since(job.intended).as_micros() as u64);
                    out.last_done = Some(done);
                }
            }
            Ok(Err(e)) => {
                conn = None;
                if job.measured {
                    out.errors += 1;
                    out.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
            Err(_) => {
                conn = None;
                if job.measured {
                    out.timeouts += 1;
                }
            }
        }
    }
    out
}

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(s)
}

async fn one(conn: &mut Option<Sender>, spec: &LoadSpec) -> Result<()> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = Some(connect(spec.target).await?);
    }
    let c = conn.as_mut().expect("connected");
    c.ready().await.context("connection not ready")?;
    let req = Request::get(spec.path.as_str())
        .header(HOST, spec.host.as_str())
        .body(Empty::new())?;
    let resp = c.send_request(req).await.context("sending the request")?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the body")?
        .to_bytes();
    ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    ensure!(
        body.len() == spec.expect_len,
        "body of {} bytes, expected {}",
        body.len(),
        spec.expect_len
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rounds_keep_every_sample_sorted_and_add_counts() {
        let mut a = LoadResult {
            latencies_us: vec![10, 30],
            scheduled: 2,
            errors: 1,
            release_late_us: vec![5],
            elapsed: Duration::from_secs(1),
            ..Default::default()
        };
        a.merge(LoadResult {
            latencies_us: vec![20, 40],
            scheduled: 3,
            timeouts: 1,
            first_error: Some("x".into()),
            release_late_us: vec![1],
            elapsed: Duration::from_secs(2),
            ..Default::default()
        });
        assert_eq!(a.latencies_us, vec![10, 20, 30, 40]);
        assert_eq!(a.release_late_us, vec![1, 5]);
        assert_eq!((a.scheduled, a.errors, a.timeouts), (5, 1, 1));
        assert_eq!(a.first_error.as_deref(), Some("x"));
        assert_eq!(a.elapsed, Duration::from_secs(3));
        assert_eq!(a.pct(0.5), Some(20));
    }
}
