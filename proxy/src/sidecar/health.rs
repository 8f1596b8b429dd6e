//! Health checks of the local app: an HTTP GET expecting 2xx, or a TCP
//! connect, every `health.interval`; the verdict flips only after
//! `unhealthy_after` failures or `healthy_after` successes in a row.

use std::net::SocketAddr;

use meshgw_config::{HealthConfig, HealthKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Counts consecutive results and decides the health (sans-IO).
#[derive(Debug, Clone)]
pub struct Verdict {
    healthy: bool,
    streak: u32,
    unhealthy_after: u32,
    healthy_after: u32,
}

impl Verdict {
    /// Starts unhealthy (nothing passed yet) with the configured thresholds.
    pub fn new(cfg: &HealthConfig) -> Self {
        Self {
            healthy: cfg.kind == HealthKind::None,
            streak: 0,
            unhealthy_after: cfg.unhealthy_after.max(1),
            healthy_after: cfg.healthy_after.max(1),
        }
    }

    /// Returns the current verdict.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one check result; returns the verdict after it.
    pub fn record(&mut self, passed: bool) -> bool {
        if passed == self.healthy {
            self.streak = 0;
            return self.healthy;
        }
        self.streak += 1;
        let needed = if passed {
            self.healthy_after
        } else {
            self.unhealthy_after
        };
        if self.streak >= needed {
            self.healthy = passed;
            self.streak = 0;
        }
        self.healthy
    }
}

/// Checks `app` forever, publishing the verdict on `tx` (and logging flips).
pub async fn run(app: SocketAddr, cfg: HealthConfig, tx: watch::Sender<bool>) {
    if cfg.kind == HealthKind::None {
        tx.send_replace(true);
        return std::future::pending().await;
    }
    let mut verdict = Verdict::new(&cfg);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(cfg.timeout, check(app, &cfg.kind)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {:?} (health.timeout)",
                cfg.timeout
            )),
        };
        let before = verdict.healthy();
        let now = verdict.record(result.is_ok());
        if now != before {
            match &result {
                Ok(()) => tracing::info!(%app, "app is healthy"),
                Err(why) => tracing::warn!(%app, reason = %why, "app is unhealthy"),
            }
        } else if let Err(why) = &result {
            tracing::debug!(%app, reason = %why, "health check failed");
        }
        tx.send_if_modified(|h| std::mem::replace(h, now) != now);
    }
}

/// Runs one check.
async fn check(app: SocketAddr, kind: &HealthKind) -> Result<(), String> {
    let mut tcp = TcpStream::connect(app)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let HealthKind::Http { path } = kind else {
        return Ok(());
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {app}\r\nUser-Agent: meshgw-sidecar\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head)
        .await
        .map_err(|e| format!("no HTTP status line: {e}"))?;
    let line = String::from_utf8_lossy(&head);
    match line.strip_prefix("HTTP/1.").and_then(|r| r.get(2..5)) {
        Some(code) if code.starts_with('2') => Ok(()),
        Some(code) => Err(format!("GET {path} answered {code}")),
        None => Err(format!("not an HTTP response: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(unhealthy_after: u32, healthy_after: u32) -> HealthConfig {
        HealthConfig {
            kind: HealthKind::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            unhealthy_after,
            healthy_after,
        }
    }

    #[test]
    fn thresholds_need_streaks() {
        let mut v = Verdict::new(&cfg(2, 3));
        assert!(!v.healthy(), "starts unhealthy");
        assert!(!v.record(true) && !v.record(true));
        assert!(!v.record(false), "a failure resets the streak");
        assert!(!v.record(true) && !v.record(true));
        assert!(v.record(true), "three passes in a row");
        assert!(v.record(false), "one failure is not enough");
        assert!(v.record(true));
        assert!(v.record(false));
        assert!(!v.record(false), "two failures in a row");
    }

    #[tokio::test]
    async fn http_and_tcp_checks_against_real_sockets() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = if req.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "503 Nope"
                    };
                    let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        assert_eq!(check(addr, &HealthKind::Tcp).await, Ok(()));
        let ok = HealthKind::Http { path: "/ok".into() };
        assert_eq!(check(addr, &ok).await, Ok(()));
        let bad = HealthKind::Http {
            path: "/bad".into(),
        };
        let err = check(addr, &bad).await.unwrap_err();
        assert!(err.contains("answered 503"), "{err}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        assert!(
            check(gone, &HealthKind::Tcp)
                .await
                .unwrap_err()
                .contains("cannot connect")
        );
    }
}
