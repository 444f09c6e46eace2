//! How many threads a message gets: the thread policy (a share of at least 256 KiB per
//! thread, at most the machine's cores, at most the caller's limit), the batch sizes of
//! streams, and the one place work is handed to rayon's pool.

use crate::error::Error;
use crate::secret::scrub_stack;
use crate::suite::TAG_LEN;

/// Most worker threads one message uses when the caller sets no limit.
pub(crate) const DEFAULT_MAX_THREADS: usize = 16;

/// Smallest share of a message worth a thread of its own. Measured with
/// `benches/probes/envelope_loop.rs` (BENCHMARKS.md): two threads gain nothing at 128 KiB each, 1.3x
/// (aws-lc AES-GCM, ~20 GB/s on one core) to 1.5x (ChaCha20-Poly1305) at 256 KiB each.
pub(crate) const MIN_BYTES_PER_THREAD: usize = 256 << 10;

/// Worker threads for a message of `len` bytes in `frames` frames: as many as give each at
/// least [`MIN_BYTES_PER_THREAD`], at most the machine's parallelism, at most `max` (the
/// caller's limit, or [`DEFAULT_MAX_THREADS`]) and at most one per frame.
pub(crate) fn threads_for(len: usize, frames: usize, max: Option<usize>) -> usize {
    let by_size = len / MIN_BYTES_PER_THREAD;
    let max = max.unwrap_or(DEFAULT_MAX_THREADS);
    cores().min(frames).min(max).min(by_size).max(1)
}

/// The machine's available parallelism, read once: `available_parallelism` reads cgroup
/// files on Linux (~24 µs here), too slow to ask per message.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether rayon's global pool has workers in this process: false in the child of a `fork()`
/// made after the pool started (threads are not inherited). The first use records the fork
/// generation it happened in.
fn rayon_usable() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED_IN: AtomicU64 = AtomicU64::new(u64::MAX);
    let now = crate::secret::fork_generation();
    match STARTED_IN.compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => true,
        Err(started) => started == now,
    }
}

/// Runs `job` over `items` split into `threads` contiguous groups: the first on the calling
/// thread, the others on rayon's pool (persistent workers: handing a group over costs a few
/// microseconds, where spawning a thread cost ~25). Each group scrubs its thread's stack when
/// done; the first error wins.
pub(crate) fn in_parallel<T: Send>(
    items: Vec<T>,
    threads: usize,
    job: impl Fn(T) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per).collect());
    }
    let run = |group: Vec<T>| -> Result<(), Error> {
        let r = group.into_iter().try_for_each(&job);
        scrub_stack();
        r
    };
    if !rayon_usable() {
        // A forked child: rayon's workers were threads of the parent and do not exist here;
        // handing them work would wait forever. Run every group on this thread.
        return groups.into_iter().try_for_each(run);
    }
    let mut results: Vec<Result<(), Error>> = groups.iter().map(|_| Ok(())).collect();
    let mut groups = groups.into_iter();
    if let (Some(first), Some((mine, theirs))) = (groups.next(), results.split_first_mut()) {
        let run = &run;
        rayon_core::in_place_scope(|scope| {
            for (group, slot) in groups.zip(theirs.iter_mut()) {
                scope.spawn(move |_| *slot = run(group));
            }
            *mine = run(first);
        });
    }
    results.into_iter().collect()
}

/// Most plaintext one stream holds for its frame batch (read-ahead when decrypting, frames
/// awaiting encryption when encrypting): peak memory of a stream stays bounded whatever the
/// input size or core count.
pub(crate) const STREAM_BATCH_MAX: usize = 8 << 20;

/// Smallest share of a stream batch per worker thread: a stream hands out work once per batch
/// and copies between batches, so larger shares than a one-shot message's pay off.
const STREAM_MIN_PER_WORKER: usize = 1 << 20;

/// Frames a stream batches so that its `max_threads` workers each get a worthwhile share
/// (see [`threads_for`]); 1 (one frame at a time, no read-ahead) on one thread.
pub(crate) fn stream_batch(frame_size: usize, max_threads: Option<usize>) -> usize {
    let threads = cores().min(max_threads.unwrap_or(DEFAULT_MAX_THREADS));
    if threads <= 1 {
        return 1;
    }
    let per_worker = STREAM_MIN_PER_WORKER.div_ceil(frame_size).max(1);
    let cap = (STREAM_BATCH_MAX / (frame_size + TAG_LEN)).max(1);
    threads.saturating_mul(per_worker).min(cap)
}

/// The next batch size: doubling after each full batch up to `max`, so a short stream never
/// pays for (or locks) a large buffer.
pub(crate) fn next_batch_size(batch: usize, max: usize) -> usize {
    batch.saturating_mul(2).min(max).max(batch)
}
