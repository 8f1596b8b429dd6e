//! Drives calls through a sidecar and sums up who served them, how fast.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::apps::Call;

/// What a batch of calls saw.
#[derive(Debug, Default)]
pub struct Stats {
    /// Calls answered 200.
    pub ok: usize,
    /// Calls that failed (error or non-200).
    pub failed: usize,
    /// Calls served, by cluster.
    pub by_cluster: BTreeMap<String, usize>,
    /// Latencies of successful calls.
    pub latencies: Vec<Duration>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Who served the last successful call, and how fast.
    last: Option<(String, Duration)>,
}

impl Stats {
    fn record(&mut self, r: Result<(u16, String, Duration)>) -> Option<String> {
        match r {
            Ok((200, body, lat)) => {
                self.ok += 1;
                self.latencies.push(lat);
                let cluster = body.rsplit(" in ").next().unwrap_or("?").trim().to_string();
                *self.by_cluster.entry(cluster.clone()).or_default() += 1;
                self.last = Some((cluster.clone(), lat));
                Some(cluster)
            }
            Ok((status, body, _)) => {
                self.failed += 1;
                self.last = None;
                self.last_error = Some(format!("{status}: {}", body.lines().next().unwrap_or("")));
                None
            }
            Err(e) => {
                self.failed += 1;
                self.last = None;
                self.last_error = Some(format!("{e:#}"));
                None
            }
        }
    }

    /// Returns whether every successful call was served by one of `clusters`.
    pub fn served_only_by(&self, clusters: &[&str]) -> bool {
        self.by_cluster
            .keys()
            .all(|c| clusters.contains(&c.as_str()))
    }

    /// Returns a one-line summary.
    pub fn line(&self) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let p50 = l.get(l.len() / 2).map_or("-".into(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1000.0)
        });
        let who: Vec<String> = self
            .by_cluster
            .iter()
            .map(|(c, n)| format!("{c} ×{n}"))
            .collect();
        let mut s = format!(
            "{}/{} ok, served by {} (p50 {p50})",
            self.ok,
            self.ok + self.failed,
            who.join(", ")
        );
        if let Some(e) = &self.last_error {
            s += &format!("; last error: {e}");
        }
        s
    }
}

/// Shows each call as it happens, on one line rewritten in place, when
/// stdout is a terminal; prints nothing otherwise (logs and CI get the
/// summary line only).
struct Progress {
    label: String,
    live: bool,
}

impl Progress {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
            live: std::io::stdout().is_terminal(),
        }
    }

    fn show(&self, s: &Stats, of: Option<usize>) {
        if !self.live {
            return;
        }
        let done = s.ok + s.failed;
        let count = of.map_or(format!("{done}"), |n| format!("{done}/{n}"));
        let last = match (&s.last, &s.last_error) {
            (Some((c, lat)), _) => format!("served by {c} in {:.1} ms", ms(*lat)),
            (None, Some(e)) => format!("failed: {e}"),
            (None, None) => String::new(),
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K  {} call {count}: {last}", self.label);
        let _ = out.flush();
    }

    fn done(&self) {
        if self.live {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Makes `n` calls, one after the other, showing each live under `label`.
pub async fn drive(c: &impl Call, label: &str, n: usize) -> Stats {
    let progress = Progress::new(label);
    let mut s = Stats::default();
    for _ in 0..n {
        s.record(c.call().await);
        progress.show(&s, Some(n));
    }
    progress.done();
    s
}

/// Calls every 50 ms until `want` consecutive calls were served by
/// `cluster`; fails after `timeout`.
pub async fn until_served_by(
    c: &impl Call,
    label: &str,
    cluster: &str,
    want: usize,
    timeout: Duration,
) -> Result<Stats> {
    let progress = Progress::new(label);
    let deadline = Instant::now() + timeout;
    let mut s = Stats::default();
    let mut streak = 0;
    while streak < want {
        if Instant::now() > deadline {
            progress.done();
            bail!(
                "step failed: {}: calls not served by {cluster} within {timeout:?} (saw: {})",
                label.trim_end(),
                s.line()
            );
        }
        match s.record(c.call().await) {
            Some(by) if by == cluster => streak += 1,
            _ => streak = 0,
        }
        progress.show(&s, None);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.done();
    Ok(s)
}
