//! Progress of a running job: an indicatif bar with an ETA on a terminal, plain log lines
//! every few seconds otherwise (cron, CI, `| tee`), so an unattended run's log still
//! shows it is alive and how far it got. Only counts are shown, never item data.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Interval of the log lines when there is no bar.
const LOG_EVERY: Duration = Duration::from_secs(5);

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
    pub(crate) fn start(total: u64, want_bar: bool) -> Progress {
        let counters = Arc::new(Counters::default());
        if want_bar && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} users, {per_sec}, ETA {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            return Progress {
                bar: Some(bar),
                counters,
                ticker: Mutex::new(None),
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
                tracing::info!("apply: {done}/{total} users done, {errors} failed, {rate:.1} users/s, ETA {eta}");
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
            let e = self.counters.errors.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(b) = &self.bar {
                b.set_message(format!("{e} failed"));
            }
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(t) = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
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
