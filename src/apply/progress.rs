//! Progress of a running job: an indicatif bar with an ETA on a terminal, plain log lines
//! every few seconds otherwise (cron, CI, `| tee`), so an unattended run's log still
//! shows it is alive and how far it got. Only counts are shown, never item data — and the
//! tenant's pace: the rate its gate runs at now, the limit it learned and the 429s so
//! far, since a throttled tenant is the usual reason a job is slower than planned.

use crate::connector::gate::GateStats;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Interval of the log lines when there is no bar.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Interval of the bar's message refresh (the tenant's pace).
const BAR_EVERY: Duration = Duration::from_secs(1);

/// Where the tenant's pace is read from (its gate), if the connector has one.
pub(crate) type PaceSource = Arc<dyn Fn() -> Option<GateStats> + Send + Sync>;

/// The tenant's pace for a progress line: "rate 28.5 req/s (learned 28.5, 3 throttled)".
fn pace(s: Option<GateStats>) -> String {
    let Some(s) = s else { return String::new() };
    let now = match s.current {
        Some(r) => format!("rate {r:.1} req/s"),
        None => "rate unpaced".into(),
    };
    match (s.learned, s.throttles) {
        (None, 0) => now,
        (Some(w), n) => format!("{now} (learned {w:.1}, {n} throttled)"),
        (None, n) => format!("{now} ({n} throttled)"),
    }
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    counters: Arc<Counters>,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    /// `want_bar`: the caller asked for a bar; it is shown only when stderr is a terminal.
    /// `pace` reads the tenant's gate for the rate shown beside the counts.
    pub(crate) fn start(total: u64, want_bar: bool, pace_of: Option<PaceSource>) -> Progress {
        let counters = Arc::new(Counters::default());
        if want_bar && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} users, {per_sec}, ETA {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            let (b, c) = (bar.clone(), counters.clone());
            let ticker = tokio::spawn(async move {
                let mut tick = tokio::time::interval(BAR_EVERY);
                loop {
                    tick.tick().await;
                    let errors = c.errors.load(Ordering::Relaxed);
                    let failed = (errors > 0).then(|| format!("{errors} failed"));
                    let rate = pace_of
                        .as_ref()
                        .map(|p| pace(p()))
                        .filter(|p| !p.is_empty())
                        .map(|p| format!("tenant {p}"));
                    let msg: Vec<String> = failed.into_iter().chain(rate).collect();
                    b.set_message(msg.join(", "));
                }
            });
            return Progress {
                bar: Some(bar),
                counters,
                ticker: Mutex::new(Some(ticker)),
            };
        }
        let c = counters.clone();
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(LOG_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = c.done.load(Ordering::Relaxed);
                let errors = c.errors.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let rate = done as f64 / secs;
                let eta = if rate > 0.0 {
                    format!("{:.0}s", total.saturating_sub(done) as f64 / rate)
                } else {
                    "unknown".into()
                };
                let tenant = pace_of
                    .as_ref()
                    .map(|p| pace(p()))
                    .filter(|p| !p.is_empty())
                    .map(|p| format!(", tenant {p}"))
                    .unwrap_or_default();
                tracing::info!("apply: {done}/{total} users done, {errors} failed, {rate:.1} users/s, ETA {eta}{tenant}");
            }
        });
        Progress {
            bar: None,
            counters,
            ticker: Mutex::new(Some(ticker)),
        }
    }

    pub(crate) fn item_done(&self, ok: bool) {
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(t) = self
            .ticker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.finish_and_clear();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_line_names_the_rate_the_limit_and_the_429s() {
        assert_eq!(pace(None), "");
        let s = GateStats {
            throttles: 0,
            learned: None,
            current: Some(16.0),
        };
        assert_eq!(pace(Some(s)), "rate 16.0 req/s");
        let s = GateStats {
            throttles: 3,
            learned: Some(28.5),
            current: Some(22.84),
        };
        assert_eq!(pace(Some(s)), "rate 22.8 req/s (learned 28.5, 3 throttled)");
        let s = GateStats {
            throttles: 2,
            learned: None,
            current: None,
        };
        assert_eq!(pace(Some(s)), "rate unpaced (2 throttled)");
    }
}
