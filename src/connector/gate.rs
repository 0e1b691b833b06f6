//! The per-tenant gate every request passes: a governor limiter plus a tenant-wide pause
//! that a 429's Retry-After sets.
//!
//! Why a pause on top of the limiter: a throttled tenant keeps counting requests sent while
//! it throttles (and throttles longer), so after a 429 nothing at all may go out until the
//! Retry-After has passed — not only the request that got it.
//!
//! The governor limiter is a GCRA: over any window `w` it admits at most
//! `burst + rate × w` requests, unlike a fixed per-minute quota that can let two quotas
//! through across a minute boundary.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct Gate {
    limiter: Option<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
}

impl Gate {
    /// `rate_per_second` of 0 means unlimited (tests, read-only audits of local files).
    pub fn new(rate_per_second: f64, burst: u32) -> Gate {
        let limiter = if rate_per_second > 0.0 {
            let period = Duration::from_secs_f64(1.0 / rate_per_second);
            let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
        } else {
            None
        };
        Gate {
            limiter,
            paused_until: Mutex::new(None),
        }
    }

    pub fn unlimited() -> Gate {
        Gate::new(0.0, 1)
    }

    /// Waits until a request may be sent: past any tenant-wide pause, then a limiter cell.
    pub async fn ready(&self) {
        loop {
            self.wait_pause().await;
            if let Some(l) = &self.limiter {
                l.until_ready().await;
            }
            // A 429 may have arrived while we waited for the limiter.
            if self.pause_remaining().is_none() {
                return;
            }
        }
    }

    /// Pauses every request through this gate for `d` (extends, never shortens).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    pub fn pause_remaining(&self) -> Option<Duration> {
        let p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    async fn wait_pause(&self) {
        while let Some(d) = self.pause_remaining() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_holds_every_caller() {
        let g = Gate::unlimited();
        g.pause(Duration::from_millis(120));
        let t0 = std::time::Instant::now();
        g.ready().await;
        assert!(t0.elapsed() >= Duration::from_millis(110));
    }

    #[tokio::test]
    async fn limiter_never_exceeds_burst_plus_rate() {
        let g = Gate::new(50.0, 5);
        let t0 = std::time::Instant::now();
        for _ in 0..30 {
            g.ready().await;
        }
        // 5 immediately, then 25 at 50/s = 0.5 s at least.
        assert!(
            t0.elapsed() >= Duration::from_millis(480),
            "{:?}",
            t0.elapsed()
        );
    }
}
