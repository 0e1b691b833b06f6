//! The single writer: one OS thread owns the write connection and commits whatever has
//! queued up in one transaction.
//!
//! Why: SQLite allows one writer at a time, and a commit costs far more than a row. With
//! `concurrency` workers each recording items, funnelling every write through one thread
//! turns N small commits into one, and no worker ever sees SQLITE_BUSY from a sibling.
//! Each queued operation runs inside its own savepoint, so one failing write (a constraint)
//! is reported to its caller without rolling back the others of the batch. A caller is
//! answered only after the commit, so "written" means durable.

use super::HistoryError;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most operations one transaction takes; bounds the latency of the first in a burst.
const MAX_BATCH: usize = 2048;

pub(crate) trait WriteOp: Send {
    /// Runs the write; false when it failed (its savepoint is rolled back).
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn complete(self: Box<Self>, committed: Result<(), HistoryError>);
}

struct Op<R, F> {
    f: Option<F>,
    out: Option<Result<R, HistoryError>>,
    reply: Option<oneshot::Sender<Result<R, HistoryError>>>,
}

impl<R, F> WriteOp for Op<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, HistoryError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let r = f(conn);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn complete(self: Box<Self>, committed: Result<(), HistoryError>) {
        let Op { out, reply, .. } = *self;
        let answer = match (committed, out) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(HistoryError::Writer("write was never run".into())),
        };
        if let Some(tx) = reply {
            // The caller may have gone away (cancelled); nothing to do then.
            let _ = tx.send(answer);
        } else if let Err(e) = answer {
            tracing::error!("history write failed: {e}");
        }
    }
}

pub(crate) type Sender = mpsc::Sender<Box<dyn WriteOp>>;

/// Boxes a write with an answer channel.
pub(crate) fn op<R, F>(f: F) -> (Box<dyn WriteOp>, oneshot::Receiver<Result<R, HistoryError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, HistoryError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    (
        Box::new(Op {
            f: Some(f),
            out: None,
            reply: Some(tx),
        }),
        rx,
    )
}

/// Boxes a write nobody waits for (lock release from `Drop`); failures are logged.
pub(crate) fn detached<F>(f: F) -> Box<dyn WriteOp>
where
    F: FnOnce(&Connection) -> Result<(), HistoryError> + Send + 'static,
{
    Box::new(Op {
        f: Some(f),
        out: None,
        reply: None,
    })
}

pub(crate) fn spawn(
    mut conn: Connection,
) -> std::io::Result<(Sender, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Box<dyn WriteOp>>();
    let handle = std::thread::Builder::new()
        .name("teamsync-history".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                run_batch(&mut conn, batch);
            }
        })?;
    Ok((tx, handle))
}

fn run_batch(conn: &mut Connection, mut batch: Vec<Box<dyn WriteOp>>) {
    let committed = (|| -> Result<(), HistoryError> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in &mut batch {
            let sp = tx.savepoint()?;
            if op.apply(&sp) {
                sp.commit()?;
            }
            // Dropping an uncommitted savepoint rolls it back.
        }
        tx.commit()?;
        Ok(())
    })();
    for op in batch {
        op.complete(committed.clone());
    }
}
