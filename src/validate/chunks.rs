//! Rows validated on every core: each worker thread reads a batch of rows and drafts it,
//! and the batches are finished in sheet order.
//!
//! Validating a row is mostly parsing its phone number with libphonenumber, and that is a
//! pure function of the row (see [`super::row`]). So the workers (the calling thread is
//! one) take turns at the reader (a numbered batch of [`BATCH_ROWS`] under a lock), draft
//! their batch unlocked, and leave it in a queue. What only earlier rows decide (a UPN or
//! number given twice) must go row after row: whichever worker leaves the batch that is
//! next finishes it, and any drafted ones after it, while the others read on. A worker
//! drafts the rows it read itself, while they are in its core's cache, then gives them
//! back to the reader to be refilled; and there are never more threads than cores, so
//! none waits for a preempted lock holder. The outcome is the sequential one for any
//! number of threads (a unit test compares them).
//!
//! Measured on two cores, 100,000 rows (BENCHMARKS.md, "validate on every core"): a
//! reader thread handing chunks to the workers and a separate finishing thread reached
//! 1.5–1.7× one core; this layout, with rows refilled rather than allocated (see
//! `SheetReader::recycle`), reaches 1.84–1.87×, within a few percent of two independent
//! processes on half the file each.
//!
//! Memory: at most `2 × workers` batches are read and not yet finished; a worker waits
//! past that.

use super::row::Draft;
use crate::sheet::Row;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, PoisonError};

/// Rows a worker reads at a time: enough that taking turns costs nothing beside the
/// batch's work (1,024 rows validate in about 4 ms), few enough that the last batch,
/// finished alone, is short. Measured: 256 and 512 were 3–7 % slower, 4,096 no faster.
pub(super) const BATCH_ROWS: usize = 1024;

/// Most threads that draft rows. Each thread compiles its own copies of the number
/// patterns it meets (at most 100 kept; see `vendor/README.md`), so threads cost memory;
/// past eight, the in-order finish and the turns at the reader are the limit anyway.
const MAX_WORKERS: usize = 8;

/// Threads that draft rows: the cores this process may use, as the standard library
/// reads them (the CPU affinity mask and the cgroup's CPU quota), at most [`MAX_WORKERS`].
/// `taskset -c 0 teamsync validate` therefore validates on the calling thread alone.
pub(super) fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// How reading the rows ended.
pub(super) enum Ended<E> {
    /// Every row was read and finished.
    Read,
    /// `finish` asked to stop.
    Stopped,
    /// A row could not be read; the rows before it were finished.
    Failed(E),
}

/// The sheet's rows in order, as `workers` threads take turns reading them, and where
/// drafted rows go back to be refilled (a reader that refills them allocates no cell).
pub(super) trait Source<E>: Send {
    fn next_row(&mut self) -> Option<Result<Row, E>>;
    fn recycle(&mut self, rows: &mut Vec<Row>);
}

type Rows<'r, E> = dyn Source<E> + 'r;

/// What the workers share, under one lock.
struct Turns<'r, E> {
    rows: &'r mut Rows<'r, E>,
    /// The next batch's number.
    next: usize,
    /// Batches read and not yet finished.
    in_flight: usize,
    /// No more batches: the rows ended, one failed, or the finisher stopped.
    done: bool,
    /// Emptied draft buffers, back from finishing (a batch's drafts are about 400 KB;
    /// reusing them spares the allocator mapping and faulting that much per batch).
    spares: Vec<Vec<Draft>>,
}

/// A worker's batch: its drafts, and the read error that ended it, if any.
struct Batch<E> {
    drafts: Vec<Draft>,
    failed: Option<E>,
}

/// Drafted batches waiting to be finished in number order.
struct Queue<E> {
    waiting: BTreeMap<usize, Batch<E>>,
    /// The next batch to finish.
    next: usize,
    /// A worker is finishing batches (the others leave theirs and go on reading).
    busy: bool,
}

/// The finishing side: the caller's `finish`, and how the run ended when it ended early.
struct Finisher<F, E> {
    finish: F,
    ended: Option<Ended<E>>,
}

/// Drafts every row of `rows` with `draft` on `workers` threads (this one among them),
/// and hands the drafts to `finish` in sheet order, one row at a time, until a row
/// cannot be read or `finish` returns false. Whichever worker leaves the batch that is
/// next to finish finishes it (and any that follow it, already drafted), so no thread
/// waits for another's turn to be scheduled. With one worker everything runs here, as a
/// plain loop.
pub(super) fn validate_rows<'r, E, D, F>(
    rows: &'r mut Rows<'r, E>,
    workers: usize,
    draft: &D,
    mut finish: F,
) -> Ended<E>
where
    E: Send,
    D: Fn(&Row) -> Draft + Sync,
    F: FnMut(&mut Draft) -> bool + Send,
{
    if workers <= 1 {
        let mut done = Vec::with_capacity(1);
        while let Some(row) = rows.next_row() {
            match row {
                Ok(row) => {
                    if !finish(&mut draft(&row)) {
                        return Ended::Stopped;
                    }
                    done.push(row);
                    rows.recycle(&mut done);
                }
                Err(e) => return Ended::Failed(e),
            }
        }
        return Ended::Read;
    }
    let turns = Mutex::new(Turns {
        rows,
        next: 0,
        in_flight: 0,
        done: false,
        spares: Vec::new(),
    });
    let queue = Mutex::new(Queue {
        waiting: BTreeMap::new(),
        next: 0,
        busy: false,
    });
    let finisher = Mutex::new(Finisher {
        finish,
        ended: None,
    });
    let turn = Condvar::new();
    let limit = 2 * workers;
    let work = || {
        let lock = || turns.lock().unwrap_or_else(PoisonError::into_inner);
        // However this worker ends (a panic included), the others stop too rather than
        // wait for a batch that will never be finished.
        let _quit = OnDrop(|| {
            lock().done = true;
            turn.notify_all();
        });
        let mut read: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
        loop {
            let mut t = lock();
            while !t.done && t.in_flight >= limit {
                t = turn.wait(t).unwrap_or_else(PoisonError::into_inner);
            }
            if t.done {
                return;
            }
            let number = t.next;
            t.next += 1;
            t.in_flight += 1;
            // Last batch's rows go back to the reader, which refills them.
            t.rows.recycle(&mut read);
            let mut failed = None;
            while read.len() < BATCH_ROWS {
                match t.rows.next_row() {
                    Some(Ok(row)) => read.push(row),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let last = failed.is_some() || read.len() < BATCH_ROWS;
            t.done |= last;
            let mut drafts = t.spares.pop().unwrap_or_default();
            drop(t);
            if last {
                turn.notify_all();
            }
            drafts.extend(read.iter().map(draft));
            let batch = Batch { drafts, failed };
            // Leave the batch; finish it and those after it when it is the next one
            // and no other worker is finishing.
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.waiting.insert(number, batch);
            if q.busy {
                continue;
            }
            q.busy = true;
            loop {
                let next = q.next;
                let Some(mut batch) = q.waiting.remove(&next) else {
                    q.busy = false;
                    break;
                };
                q.next += 1;
                drop(q);
                let stop = {
                    let mut f = finisher.lock().unwrap_or_else(PoisonError::into_inner);
                    let f = &mut *f;
                    let stopped = !batch.drafts.iter_mut().all(|d| (f.finish)(d));
                    if stopped {
                        f.ended = Some(Ended::Stopped);
                    } else if let Some(e) = batch.failed.take() {
                        f.ended = Some(Ended::Failed(e));
                    }
                    f.ended.is_some()
                };
                // What the finish left of the drafts is freed here, outside the locks.
                batch.drafts.clear();
                {
                    let mut t = lock();
                    t.in_flight -= 1;
                    t.spares.push(batch.drafts);
                    t.done |= stop;
                }
                turn.notify_all();
                q = queue.lock().unwrap_or_else(PoisonError::into_inner);
                if stop {
                    // Later batches are never finished; the workers stop at their turn.
                    q.waiting.clear();
                    q.busy = false;
                    return;
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    let f = finisher
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    f.ended.unwrap_or(Ended::Read)
}

/// Runs its closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
