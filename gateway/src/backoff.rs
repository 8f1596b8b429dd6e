//! Exponential backoff with jitter ("equal jitter": each delay random in
//! the upper half of the current bound), for reconnects and store retries.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: each delay is random in `[d/2, d]`, with `d` doubling
/// from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Creates a backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// Returns the next delay and doubles the bound.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Starts again from the initial delay.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_in_range() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bounds = [100, 200, 400, 800, 800];
        for hi in bounds {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(hi / 2) && d <= Duration::from_millis(hi),
                "{d:?} not in [{}, {hi}]",
                hi / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
