//! An ordered parallel pipeline: one feeder thread, N worker threads, results consumed in
//! input order on the calling thread.
//!
//! Item `n` goes to worker `n % N` through a bounded channel, and its result comes back
//! through that worker's own bounded channel, which the consumer reads round-robin. So
//! results arrive in input order without a reorder buffer, and at most `4 * N + 1` items
//! are in flight (memory stays bounded however slow the consumer is): per worker one
//! queued input, one being worked on, two finished results; plus the one the feeder holds.
//! A backup with 4 MiB chunks on 2 CPUs (4 workers; results are small) holds about 40 MiB
//! of chunk buffers; a restore (2 workers; results carry the data) about 45 MiB.
//!
//! Stopping: an `Err` input or result reaches the consumer in order and ends the run with
//! that error; when the consumer fails it drops its receivers, so the workers' sends fail
//! and every thread winds down before [`run_ordered`] returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::thread;

use crate::error::Result;

/// Number of workers for CPU-bound stages: the CPUs available, at least 2, at most 8.
pub(crate) fn default_workers() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Number of workers for stages that also wait on I/O (a backup's workers fsync every new
/// chunk): twice [`default_workers`], so that the CPUs stay busy while some workers wait.
pub(crate) fn io_workers() -> usize {
    default_workers() * 2
}

/// Runs `work` over `inputs` on `workers` threads and hands the results to `consume` in
/// input order. `inputs` is iterated on its own thread (so it may do blocking reads).
pub(crate) fn run_ordered<I, O, It, W, C>(
    workers: usize,
    inputs: It,
    work: W,
    mut consume: C,
) -> Result<()>
where
    I: Send,
    O: Send,
    It: Iterator<Item = Result<I>> + Send,
    W: Fn(I) -> Result<O> + Sync,
    C: FnMut(O) -> Result<()>,
{
    let workers = workers.max(1);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let mut in_txs = Vec::with_capacity(workers);
        let mut out_rxs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (in_tx, in_rx) = sync_channel::<Result<I>>(1);
            let (out_tx, out_rx) = sync_channel::<Result<O>>(2);
            in_txs.push(in_tx);
            out_rxs.push(out_rx);
            let work = &work;
            s.spawn(move || {
                for item in in_rx {
                    if out_tx.send(item.and_then(work)).is_err() {
                        break;
                    }
                }
            });
        }
        let stop_ref = &stop;
        s.spawn(move || {
            for (n, item) in inputs.enumerate() {
                if stop_ref.load(Ordering::Relaxed) {
                    break;
                }
                let last = item.is_err();
                if in_txs[n % workers].send(item).is_err() || last {
                    break;
                }
            }
            // Dropping the senders tells the workers there is nothing more.
        });

        let result = {
            let mut n = 0usize;
            loop {
                match out_rxs[n % workers].recv() {
                    Ok(Ok(o)) => {
                        if let Err(e) = consume(o) {
                            break Err(e);
                        }
                    }
                    Ok(Err(e)) => break Err(e),
                    // Worker n % N is done and has no item n: every input was consumed.
                    Err(_) => break Ok(()),
                }
                n += 1;
            }
        };
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(out_rxs);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RepoError;

    #[test]
    fn results_arrive_in_order() {
        let mut seen = Vec::new();
        run_ordered(
            3,
            (0..100u32).map(Ok),
            |i| {
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                Ok(i * 2)
            },
            |o| {
                seen.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..100u32).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn errors_stop_the_run() {
        let mut seen = 0;
        let r = run_ordered(
            2,
            (0..1000u32).map(Ok),
            |i| {
                if i == 10 {
                    Err(RepoError::Cancelled)
                } else {
                    Ok(i)
                }
            },
            |_| {
                seen += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(RepoError::Cancelled)));
        assert_eq!(seen, 10);

        let r = run_ordered(2, (0..1000u32).map(Ok), Ok, |i| {
            if i == 5 {
                Err(RepoError::Cancelled)
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(RepoError::Cancelled)));

        let r = run_ordered(
            2,
            (0..10u32).map(|i| {
                if i == 3 {
                    Err(RepoError::Cancelled)
                } else {
                    Ok(i)
                }
            }),
            Ok,
            |_| Ok(()),
        );
        assert!(matches!(r, Err(RepoError::Cancelled)));
    }
}
