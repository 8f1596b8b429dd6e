//! Drives calls through a sidecar and sums up who served them, how fast.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::apps::Caller;

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
}

impl Stats {
    fn record(&mut self, r: Result<(u16, String, Duration)>) -> Option<String> {
        match r {
            Ok((200, body, lat)) => {
                self.ok += 1;
                self.latencies.push(lat);
                let cluster = body.rsplit(" in ").next().unwrap_or("?").trim().to_string();
                *self.by_cluster.entry(cluster.clone()).or_default() += 1;
                Some(cluster)
            }
            Ok((status, body, _)) => {
                self.failed += 1;
                self.last_error = Some(format!("{status}: {}", body.lines().next().unwrap_or("")));
                None
            }
            Err(e) => {
                self.failed += 1;
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

/// Makes `n` calls to `host`, one after the other.
pub async fn drive(c: &Caller, host: &str, n: usize) -> Stats {
    let mut s = Stats::default();
    for _ in 0..n {
        s.record(c.call(host).await);
    }
    s
}

/// Calls `host` every 50 ms until `want` consecutive calls were served by
/// `cluster`; fails after `timeout`.
pub async fn until_served_by(
    c: &Caller,
    host: &str,
    cluster: &str,
    want: usize,
    timeout: Duration,
) -> Result<Stats> {
    let deadline = Instant::now() + timeout;
    let mut s = Stats::default();
    let mut streak = 0;
    while streak < want {
        if Instant::now() > deadline {
            bail!(
                "step failed: calls to {host} not served by {cluster} within {timeout:?} (saw: {})",
                s.line()
            );
        }
        match s.record(c.call(host).await) {
            Some(by) if by == cluster => streak += 1,
            _ => streak = 0,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(s)
}
