//! A request to stop a run from outside it: the first SIGTERM/SIGINT (see
//! `run::signals`), or a caller that wants the job to end early.
//!
//! Why not the executor's own abort: an abort is the job deciding to stop (fail-fast,
//! authentication); a stop comes from the operator. The job ends `interrupted`, not
//! `aborted`, and both the pipeline (before the job exists) and the executor (while it
//! runs) watch the same token.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Cheap to clone; every clone sees the same stop. The first reason wins.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<String>>>,
    grace: Duration,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    /// A stop that gives requests under way [`super::STOP_GRACE`] to finish.
    pub fn new() -> Stop {
        Stop::with_grace(super::STOP_GRACE)
    }

    /// A stop with another grace for requests under way (tests use a short one).
    pub fn with_grace(grace: Duration) -> Stop {
        Stop {
            tx: Arc::new(watch::channel(None).0),
            grace,
        }
    }

    /// How long requests under way may take to finish once the job stops or aborts.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Asks the run to stop; `reason` is what the job records (e.g. "stopped by SIGTERM").
    pub fn trigger(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Completes once a stop was asked for.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this only ends on a stop.
        let _ = rx.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_waiters_wake() {
        let s = Stop::new();
        assert!(!s.is_stopped());
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait().await })
        };
        s.trigger("SIGTERM");
        s.trigger("SIGINT");
        waiter.await.unwrap();
        assert_eq!(s.reason().as_deref(), Some("SIGTERM"));
        // Waiting after the fact returns at once.
        tokio::time::timeout(std::time::Duration::from_millis(100), s.wait())
            .await
            .unwrap();
    }
}
