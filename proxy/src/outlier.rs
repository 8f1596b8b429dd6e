//! Outlier detection, without I/O: what a sidecar remembers of each target
//! (a local instance or a remote cluster) of a service, and when that
//! ejects it. Consecutive failed connection attempts, or consecutive HTTP
//! 5xx responses, eject a target for [`OutlierPolicy::ejection`]; a success
//! of the same kind resets its count. A target whose ejection ended is on
//! probation: its next failure ejects it again at once, for one more
//! ejection time each time (up to [`OutlierPolicy::max_ejection`]), until a
//! success clears its record. The sidecar's `[outlier]` settings set the
//! policy. So an instance that stays broken costs its
//! callers a few failed requests, then one per ever longer ejection (as
//! Envoy's growing ejection time and Linkerd's probation do). The
//! [`crate::balance::Balancer`] holds one [`Health`] per target and skips
//! ejected ones while anything else is left.

use std::time::{Duration, Instant};

use meshgw_config::OutlierConfig;

/// Outlier detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Consecutive connect failures that eject a target.
    pub max_failures: u32,
    /// Consecutive HTTP 5xx responses that eject a target.
    pub max_server_errors: u32,
    /// How long a first ejection lasts (each further one on probation: one more).
    pub ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
}

impl From<&OutlierConfig> for OutlierPolicy {
    fn from(c: &OutlierConfig) -> Self {
        OutlierPolicy {
            max_failures: c.consecutive_connect_failures,
            max_server_errors: c.consecutive_5xx,
            ejection: c.base_ejection_time,
            max_ejection: c.max_ejection_time.max(c.base_ejection_time),
        }
    }
}

impl Default for OutlierPolicy {
    /// The `[outlier]` defaults: 3 connect failures or 5 server errors,
    /// 10 seconds, at most 5 minutes.
    fn default() -> Self {
        Self::from(&OutlierConfig::default())
    }
}

/// One outcome of using a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A connection attempt (or the reuse of a pooled connection) worked.
    Connected,
    /// A connection attempt failed with a retryable reason.
    ConnectFailed,
    /// A response head arrived with a status below 500.
    Answered,
    /// A response head arrived with a 5xx status.
    ServerError,
}

/// Why a target was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejected {
    /// `max_failures` connect failures in a row.
    ConnectFailures,
    /// `max_server_errors` 5xx responses in a row.
    ServerErrors,
}

/// What is remembered of one target.
#[derive(Debug, Default)]
pub(crate) struct Health {
    connect_failures: u32,
    server_errors: u32,
    ejected: Option<(Instant, Ejected)>,
    /// Ejections for connect failures since a connection was made, and for
    /// 5xx since an answer below 500: non-zero puts the target on probation
    /// for that kind of failure (one ejects again, for longer).
    connect_ejections: u32,
    error_ejections: u32,
}

impl Health {
    /// Whether nothing is on record (no count, no ejection).
    pub(crate) fn is_clear(&self) -> bool {
        self.connect_failures == 0
            && self.server_errors == 0
            && self.ejected.is_none()
            && self.connect_ejections == 0
            && self.error_ejections == 0
    }

    /// When the current ejection ends, if the target was ever ejected.
    pub(crate) fn ejected_until(&self) -> Option<Instant> {
        self.ejected.map(|(until, _)| until)
    }

    /// Whether the target is ejected at `now`.
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.ejected.is_some_and(|(until, _)| now < until)
    }

    /// Records `outcome` at `now`; returns the cause when it ejects the target.
    ///
    /// A connect success clears connect failures and an ejection they
    /// caused, not one caused by 5xx responses: every request on a pooled
    /// connection "connects", so only an answer below 500 proves an
    /// instance that answered with errors works again. Failures while the
    /// target is ejected (requests that were in flight, or a last resort)
    /// count for nothing: they neither eject it again nor lengthen it.
    pub(crate) fn record(
        &mut self,
        outcome: Outcome,
        now: Instant,
        policy: &OutlierPolicy,
    ) -> Option<Ejected> {
        match outcome {
            Outcome::Connected => {
                self.connect_failures = 0;
                self.connect_ejections = 0;
                if matches!(self.ejected, Some((_, Ejected::ConnectFailures))) {
                    self.ejected = None;
                }
                None
            }
            Outcome::Answered => {
                *self = Health::default();
                None
            }
            _ if self.is_ejected(now) => None,
            Outcome::ConnectFailed => count(
                &mut self.connect_failures,
                &mut self.connect_ejections,
                policy.max_failures,
            )
            .then(|| self.eject(now, policy, Ejected::ConnectFailures)),
            Outcome::ServerError => count(
                &mut self.server_errors,
                &mut self.error_ejections,
                policy.max_server_errors,
            )
            .then(|| self.eject(now, policy, Ejected::ServerErrors)),
        }
    }

    fn eject(&mut self, now: Instant, policy: &OutlierPolicy, why: Ejected) -> Ejected {
        let factor = self.connect_ejections.saturating_add(self.error_ejections);
        let length = policy
            .ejection
            .saturating_mul(factor)
            .min(policy.max_ejection);
        // The config caps both times at a day; never overflow the clock.
        let until = now
            .checked_add(length)
            .unwrap_or(now + Duration::from_secs(24 * 3600));
        self.ejected = Some((until, why));
        why
    }
}

/// Counts one failure of a kind; returns whether it ejects the target: the
/// `max`-th in a row, or the first on probation (`ejections` > 0). An
/// ejection restarts the count and adds to `ejections`.
fn count(failures: &mut u32, ejections: &mut u32, max: u32) -> bool {
    *failures += 1;
    let limit = if *ejections > 0 { 1 } else { max.max(1) };
    if *failures < limit {
        return false;
    }
    *failures = 0;
    *ejections = ejections.saturating_add(1);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcomes: &[Outcome], now: Instant) -> (Health, Vec<Ejected>) {
        let mut h = Health::default();
        let policy = OutlierPolicy::default();
        let ejections = outcomes
            .iter()
            .filter_map(|&o| h.record(o, now, &policy))
            .collect();
        (h, ejections)
    }

    #[test]
    fn three_connect_failures_or_five_server_errors_in_a_row_eject() {
        let t0 = Instant::now();
        use Outcome::*;
        let (h, e) = run(&[ConnectFailed, ConnectFailed, ConnectFailed], t0);
        assert_eq!(e, [Ejected::ConnectFailures]);
        assert!(h.is_ejected(t0) && h.is_ejected(t0 + Duration::from_millis(9_999)));
        assert!(!h.is_ejected(t0 + Duration::from_secs(10)));
        let (h, e) = run(&[ServerError; 4], t0);
        assert!(e.is_empty() && !h.is_ejected(t0));
        let (h, e) = run(&[ServerError; 5], t0);
        assert_eq!(e, [Ejected::ServerErrors]);
        assert!(h.is_ejected(t0));
    }

    #[test]
    fn a_success_of_the_same_kind_resets_the_count() {
        let t0 = Instant::now();
        use Outcome::*;
        let (h, e) = run(
            &[ConnectFailed, ConnectFailed, Connected, ConnectFailed],
            t0,
        );
        assert!(e.is_empty() && !h.is_ejected(t0));
        let s = ServerError;
        let (h, e) = run(&[s, s, s, s, Answered, s, s, s, s], t0);
        assert!(e.is_empty() && !h.is_ejected(t0));
        // Requests on a pooled connection "connect" each time: that must
        // not hide an instance answering 5xx.
        let (h, e) = run(
            &[s, Connected, s, Connected, s, Connected, s, Connected, s],
            t0,
        );
        assert_eq!(e, [Ejected::ServerErrors]);
        assert!(h.is_ejected(t0));
    }

    #[test]
    fn the_policy_follows_the_outlier_config() {
        let policy = OutlierPolicy::from(&OutlierConfig {
            consecutive_connect_failures: 1,
            consecutive_5xx: 2,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
        });
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.record(Outcome::ServerError, t0, &policy), None);
        assert_eq!(
            h.record(Outcome::ServerError, t0, &policy),
            Some(Ejected::ServerErrors),
            "the second 5xx in a row ejects"
        );
        assert_eq!(h.ejected_until(), Some(t0 + Duration::from_secs(10)));
        // On probation: 20 s, then capped at 25 s instead of 30 s.
        let t1 = t0 + Duration::from_secs(10);
        h.record(Outcome::ServerError, t1, &policy);
        assert_eq!(h.ejected_until(), Some(t1 + Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        h.record(Outcome::ServerError, t2, &policy);
        assert_eq!(h.ejected_until(), Some(t2 + Duration::from_secs(25)));
        // One connect failure ejects a fresh target.
        let mut h = Health::default();
        assert_eq!(
            h.record(Outcome::ConnectFailed, t0, &policy),
            Some(Ejected::ConnectFailures)
        );
        // A max below the base is raised to it.
        let short = OutlierPolicy::from(&OutlierConfig {
            max_ejection_time: Duration::from_secs(1),
            ..OutlierConfig::default()
        });
        assert_eq!(short.max_ejection, short.ejection);
    }

    #[test]
    fn after_an_ejection_one_failure_ejects_again_for_longer_until_a_success() {
        let policy = OutlierPolicy::default();
        let t0 = Instant::now();
        let mut h = Health::default();
        for _ in 0..5 {
            h.record(Outcome::ServerError, t0, &policy);
        }
        let t1 = t0 + Duration::from_secs(10);
        assert!(!h.is_ejected(t1), "the first ejection lasts 10 s");
        // On probation: one more 5xx ejects for 20 s, the next for 30 s.
        assert_eq!(
            h.record(Outcome::ServerError, t1, &policy),
            Some(Ejected::ServerErrors)
        );
        assert!(h.is_ejected(t1 + Duration::from_millis(19_999)));
        let t2 = t1 + Duration::from_secs(20);
        assert!(!h.is_ejected(t2));
        h.record(Outcome::ServerError, t2, &policy);
        assert!(h.is_ejected(t2 + Duration::from_millis(29_999)));
        assert!(!h.is_ejected(t2 + Duration::from_secs(30)));
        // Capped at max_ejection (5 minutes).
        let mut t = t2 + Duration::from_secs(30);
        for _ in 0..40 {
            h.record(Outcome::ServerError, t, &policy);
            t += Duration::from_secs(300);
        }
        assert!(!h.is_ejected(t), "never longer than 5 minutes");
        // A good answer ends probation: five in a row are needed again.
        h.record(Outcome::Answered, t, &policy);
        assert!(h.is_clear());
        for _ in 0..4 {
            assert_eq!(h.record(Outcome::ServerError, t, &policy), None);
        }
    }

    #[test]
    fn failures_while_ejected_neither_eject_again_nor_lengthen_it() {
        let t0 = Instant::now();
        // Twelve 5xx at once, as from requests in flight when the fifth
        // came back: one ejection, of 10 s.
        let (h, e) = run(&[Outcome::ServerError; 12], t0);
        assert_eq!(e, [Ejected::ServerErrors]);
        assert!(!h.is_ejected(t0 + Duration::from_secs(10)));
        let (h, e) = run(&[Outcome::ConnectFailed; 9], t0);
        assert_eq!(e, [Ejected::ConnectFailures]);
        assert!(!h.is_ejected(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn probation_for_5xx_survives_a_connect_failure_and_a_connection() {
        let policy = OutlierPolicy::default();
        let t0 = Instant::now();
        let (mut h, _) = run(&[Outcome::ServerError; 5], t0);
        let t1 = t0 + Duration::from_secs(10);
        // On probation for 5xx: a failed connect, then a working one...
        h.record(Outcome::ConnectFailed, t1, &policy);
        h.record(Outcome::Connected, t1, &policy);
        // ...do not end it: the next 5xx still ejects at once.
        assert_eq!(
            h.record(Outcome::ServerError, t1, &policy),
            Some(Ejected::ServerErrors)
        );
    }

    #[test]
    fn only_an_answer_below_500_lifts_an_ejection_for_server_errors() {
        let t0 = Instant::now();
        use Outcome::*;
        let (mut h, _) = run(&[ServerError; 5], t0);
        let policy = OutlierPolicy::default();
        h.record(Connected, t0, &policy);
        assert!(h.is_ejected(t0), "a pooled connection is no proof");
        h.record(Answered, t0, &policy);
        assert!(!h.is_ejected(t0) && h.is_clear());
        let (mut h, _) = run(&[ConnectFailed; 3], t0);
        h.record(Connected, t0, &policy);
        assert!(!h.is_ejected(t0) && h.is_clear());
    }
}
