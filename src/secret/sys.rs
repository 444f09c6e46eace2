//! Locked, guard-paged, zeroize-on-drop memory: the only module of the crate allowed to say
//! `unsafe`.
//!
//! Two kinds of backing store, both handed out through the safe [`Buf`] type:
//!
//! * **Regions** for buffers larger than [`MAX_SLOT`]: an anonymous private mapping laid out
//!   as `guard page | data pages | guard page`. The guard pages are `PROT_NONE`, so a linear
//!   overflow or underflow faults instead of reading a neighbour. The data pages are excluded
//!   from core dumps (`MADV_DONTDUMP`), zero-filled in a forked child (`MADV_WIPEONFORK`) and
//!   locked in RAM (`mlock`, through `memsec`).
//! * **Slots** for small secrets (32-byte keys and the like): fixed-size cells carved out of
//!   shared one-page regions (same guards, same locking), so ten thousand cached data keys take
//!   about eighty locked pages, not ten thousand. `RLIMIT_MEMLOCK` is often 64 KiB to 8 MiB.
//!
//! Everything exported here is safe to call. The invariants that make the `unsafe` blocks sound
//! are stated next to them; the central one is that a slot is owned by exactly one [`Buf`]
//! (the pool's free bitmap is only changed under its mutex), so `&mut` access to a slot never
//! aliases another slot or another owner.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use zeroize::Zeroize;

use super::LockPolicy;

/// Largest secret stored in a shared pool slot; anything larger gets its own region.
pub(crate) const MAX_SLOT: usize = 2048;
/// Smallest slot: one 256-bit key.
const MIN_SLOT: usize = 32;
/// Size classes 32, 64, ..., 2048.
const CLASSES: usize = (MAX_SLOT / MIN_SLOT).trailing_zeros() as usize + 1;

/// Why a buffer could not be created.
#[derive(Debug)]
pub(crate) enum AllocError {
    /// `mmap` failed (address space or memory exhausted).
    Map(std::io::Error),
    /// `mlock` failed and the policy is [`LockPolicy::Strict`].
    Lock(std::io::Error),
}

/// Buffers from this size on ask for transparent huge pages: faulting in a fresh 64 MiB buffer
/// page by page (16,384 faults) cost more than encrypting it with aws-lc.
pub(crate) const HUGE_MIN: usize = 4 << 20;

/// Asks the kernel to back the whole pages inside `buf` with transparent huge pages, when
/// `buf` is at least [`HUGE_MIN`] bytes and not yet touched (a fresh `calloc`ed output).
/// Advisory: where unsupported or disabled it does nothing.
pub(crate) fn advise_huge_pages(buf: &mut [u8]) {
    if buf.len() < HUGE_MIN {
        return;
    }
    let page = page_size();
    let start = buf.as_mut_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + buf.len()) / page * page;
    if end > first {
        // SAFETY: `first..end` is whole pages inside `buf`, which the caller borrows
        // exclusively, so no other object lives there. MADV_HUGEPAGE only changes how the
        // kernel backs the range, never its contents or protection; failure is harmless and
        // ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// Bumped in the child of every `fork()` (a `pthread_atfork` handler), so memory made before
/// the fork can be told apart from memory made after it. The kernel zero-fills secret pages in
/// the child (`MADV_WIPEONFORK`) and does not carry `mlock` over, so a secret from an older
/// generation reads as zeros and is no longer locked: it must never be used.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Only an atomic increment: async-signal-safe, as a handler running right after fork()
    // in a possibly multi-threaded parent must be.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The current fork generation of this process (0 in a process that never forked from one
/// holding kmseal secrets). The first call registers the fork handler; every secret
/// allocation calls this, so the handler is in place before any secret can cross a fork.
pub fn fork_generation() -> u64 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: pthread_atfork only records the handler pointers; the child handler is a
        // plain `extern "C" fn` with no captured state that does one atomic increment, which
        // is async-signal-safe. A failure (ENOMEM) is reported in the return value, and then
        // the generation never changes: logged, since fork detection is then off.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        if rc != 0 {
            tracing::error!(rc, "kmseal: pthread_atfork failed; fork detection is off");
        }
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// A value of which every fork generation has its own. In the child of a `fork()` the
/// parent's value, and any lock inside it that a thread of the parent (which does not exist
/// in the child) may have held at the fork, is left behind (leaked, once per fork) and a fresh
/// one is built on first use. Locks shared by all threads of kmseal (the secret pool, the
/// region cache, the data-key caches' maps) live in one, so a child never blocks on them.
pub(crate) struct ForkLocal<T> {
    /// Null, or a pointer from `Box::into_raw` to (generation, value).
    current: AtomicPtr<(u64, T)>,
    /// Send and Sync exactly when a `Box<T>` would be.
    _owns: PhantomData<Box<T>>,
}

impl<T> ForkLocal<T> {
    pub(crate) const fn new() -> Self {
        ForkLocal {
            current: AtomicPtr::new(std::ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// This generation's value, made by `init` on first use in this process.
    pub(crate) fn get(&self, init: impl Fn() -> T) -> &T {
        let generation = fork_generation();
        loop {
            let p = self.current.load(Ordering::Acquire);
            // SAFETY: a non-null pointer stored here came from Box::into_raw below and is
            // never freed while `self` lives (replaced values are leaked, the current one is
            // freed only by Drop, which has `&mut self`), so it points to a live pair that is
            // never mutated.
            if let Some(cell) = unsafe { p.as_ref() }
                && cell.0 == generation
            {
                return &cell.1;
            }
            let fresh = Box::into_raw(Box::new((generation, init())));
            match self
                .current
                .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The old value (another generation's) is leaked on purpose: a thread of this
                // process may still hold a reference obtained before the swap.
                // SAFETY: `fresh` was just published and is never freed while `self` lives.
                Ok(_) => return unsafe { &(*fresh).1 },
                Err(_) => {
                    // SAFETY: `fresh` was never published, so this is its only owner.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        let p = *self.current.get_mut();
        if !p.is_null() {
            // SAFETY: the pointer came from Box::into_raw and `&mut self` means no reference
            // handed out by `get` is alive any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Ends the process: a secret made before `fork()` was about to be read in the child, where
/// its bytes are zeros. Called only from [`super::SecretBytes::expose_secret`], which cannot
/// return an error.
#[cold]
pub(crate) fn abort_inherited_secret() -> ! {
    tracing::error!(
        "kmseal: a secret created before fork() was used in the child process, where its \
         memory reads as zeros; aborting instead of using an all-zero key. Create keys, KEKs, \
         encryptors and caches after forking (for example in a post-fork hook)."
    );
    const MSG: &[u8] = b"kmseal: a secret created before fork() was used in the child; aborting (create keys after fork)\n";
    // SAFETY: write(2) to fd 2 from a valid static buffer of the stated length; the result is
    // ignored (there is nothing better to do while aborting).
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
    }
    std::process::abort()
}

/// The effective user id (for the local key file's owner check; here because this is the one
/// module allowed FFI calls).
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Emits the best-effort warning once per process.
fn warn_unlocked_once(err: &std::io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = %err,
            "kmseal: could not lock secret memory in RAM (mlock failed); continuing with \
             unlocked but zeroized memory because the lock policy is BestEffort. Raise \
             RLIMIT_MEMLOCK (ulimit -l) or grant CAP_IPC_LOCK, or use LockPolicy::Strict to \
             make this an error. This warning is shown once."
        );
    }
}

/// One mapping: `guard | data | guard`, data pages locked when possible.
pub(crate) struct Region {
    /// First data byte (one page after the start of the mapping).
    data: NonNull<u8>,
    /// Data bytes, a multiple of the page size.
    len: usize,
    locked: bool,
    /// The [`fork_generation`] the region was made in.
    generation: u64,
}

// SAFETY: a Region exclusively owns its mapping; the raw pointer is never shared outside the
// borrow rules enforced by `Buf` (slots of one region are disjoint, see `Pool`).
unsafe impl Send for Region {}
// SAFETY: shared references only hand out `&[u8]` views of memory nobody mutates concurrently
// (mutation goes through `&mut Buf`, which owns a disjoint slot or the whole region).
unsafe impl Sync for Region {}

impl Region {
    fn new(min_len: usize, policy: LockPolicy) -> Result<Region, AllocError> {
        let generation = fork_generation();
        let page = page_size();
        let len = min_len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| AllocError::Map(std::io::Error::from_raw_os_error(libc::ENOMEM)))?;
        let total = len
            .checked_add(2 * page)
            .ok_or_else(|| AllocError::Map(std::io::Error::from_raw_os_error(libc::ENOMEM)))?;
        // SAFETY: an anonymous private mapping with a null hint has no preconditions; the result
        // is checked against MAP_FAILED before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(AllocError::Map(std::io::Error::last_os_error()));
        }
        let base = base.cast::<u8>();
        // SAFETY: `base + page` lies inside the `total`-byte mapping just created (total > page).
        let data = unsafe { base.add(page) };
        // SAFETY: both guard ranges are whole pages inside the mapping we own; making them
        // PROT_NONE cannot affect memory outside it.
        let guards_ok = unsafe {
            libc::mprotect(base.cast(), page, libc::PROT_NONE) == 0
                && libc::mprotect(data.add(len).cast(), page, libc::PROT_NONE) == 0
        };
        // SAFETY: `data..data+len` is inside the mapping. MADV_WIPEONFORK is advisory (the child
        // of a fork sees zeroes); failure on old kernels is harmless, so the result is ignored.
        unsafe {
            libc::madvise(data.cast(), len, libc::MADV_WIPEONFORK);
        }
        if len >= HUGE_MIN {
            // SAFETY: as above; MADV_HUGEPAGE only changes how the kernel backs the range (fewer,
            // larger page faults, here taken by mlock), never its contents or protection.
            unsafe {
                libc::madvise(data.cast(), len, libc::MADV_HUGEPAGE);
            }
        }
        // SAFETY: `data..data+len` is inside the mapping. memsec::mlock first sets MADV_DONTDUMP
        // on the range (even if locking then fails), then calls mlock(2).
        let locked = unsafe { memsec::mlock(data, len) };
        let lock_err = (!locked).then(std::io::Error::last_os_error);
        let region = Region {
            // SAFETY: mmap succeeded, so base is non-null, and data = base + page is too.
            data: unsafe { NonNull::new_unchecked(data) },
            len,
            locked,
            generation,
        };
        if !guards_ok {
            return Err(AllocError::Map(std::io::Error::last_os_error()));
        }
        if let Some(err) = lock_err {
            match policy {
                LockPolicy::Strict => return Err(AllocError::Lock(err)),
                LockPolicy::BestEffort => warn_unlocked_once(&err),
            }
        }
        Ok(region)
    }

    /// Whether the region was made in this process (not inherited through `fork()`).
    fn is_current(&self) -> bool {
        self.generation == fork_generation()
    }

    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(
            offset <= self.len && len <= self.len - offset,
            "slot out of region bounds"
        );
        // SAFETY: the range is inside the data pages (checked above), which stay mapped
        // readable and writable for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(offset), len) }
    }

    /// Interior mutability in the manner of `UnsafeCell::get`: the region is shared (`Arc`)
    /// by the slots carved from it, each of which mutates only its own disjoint cell.
    ///
    /// # Safety
    /// The caller must own `offset..offset+len` exclusively: no other live reference into
    /// that range may exist for the lifetime of the returned slice.
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        assert!(
            offset <= self.len && len <= self.len - offset,
            "slot out of region bounds"
        );
        // SAFETY: in bounds (checked above); exclusivity is the caller's obligation.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().add(offset), len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we hold the last reference to the region (Drop), so no slice into it lives.
        let all = unsafe { self.bytes_mut(0, self.len) };
        all.zeroize();
        let page = page_size();
        // SAFETY: `data..data+len` is our locked range; munlock (memsec) zeroes it again and
        // restores dumpability before unlocking. Then the whole mapping, guards included
        // (`data - page`, `len + 2 pages`), is unmapped; nothing refers to it any more.
        unsafe {
            if self.locked {
                memsec::munlock(self.data.as_ptr(), self.len);
            }
            libc::munmap(self.data.as_ptr().sub(page).cast(), self.len + 2 * page);
        }
    }
}

/// A page of equally sized slots.
struct Chunk {
    region: Arc<Region>,
    /// Bit i set = slot i is free.
    free: u128,
    slots: usize,
}

struct Pool {
    classes: [Vec<Chunk>; CLASSES],
}

/// The small-secret pool of this process (a forked child starts a new one: the parent's
/// pages are wiped and unlocked there, and its lock may be held by a thread that is gone).
fn pool() -> &'static Mutex<Pool> {
    static POOL: ForkLocal<Mutex<Pool>> = ForkLocal::new();
    POOL.get(|| {
        Mutex::new(Pool {
            classes: std::array::from_fn(|_| Vec::new()),
        })
    })
}

fn class_of(len: usize) -> (usize, usize) {
    let size = len.max(MIN_SLOT).next_power_of_two();
    ((size / MIN_SLOT).trailing_zeros() as usize, size)
}

/// A cell in a shared pool page; returned to the pool (zeroized) on drop.
pub(crate) struct Slot {
    region: Arc<Region>,
    offset: usize,
    size: usize,
    class: usize,
}

impl Slot {
    fn alloc(len: usize, policy: LockPolicy) -> Result<Slot, AllocError> {
        let (class, size) = class_of(len);
        let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
        let chunks = &mut pool.classes[class];
        // Pages inherited through fork() are no longer locked (mlock is not inherited):
        // never hand out their slots again.
        let usable = |c: &Chunk| {
            c.free != 0
                && c.region.is_current()
                && (c.region.locked || policy == LockPolicy::BestEffort)
        };
        let idx = match chunks.iter().position(usable) {
            Some(i) => i,
            None => {
                let region = Arc::new(Region::new(page_size(), policy)?);
                let slots = (region.len / size).min(128);
                let free = if slots == 128 {
                    u128::MAX
                } else {
                    (1u128 << slots) - 1
                };
                chunks.push(Chunk {
                    region,
                    free,
                    slots,
                });
                chunks.len() - 1
            }
        };
        let chunk = &mut chunks[idx];
        let bit = chunk.free.trailing_zeros() as usize;
        chunk.free &= !(1u128 << bit);
        Ok(Slot {
            region: Arc::clone(&chunk.region),
            offset: bit * size,
            size,
            class,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: this Slot owns its cell exclusively until the bit is set free below.
        unsafe { self.region.bytes_mut(self.offset, self.size) }.zeroize();
        let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
        let chunks = &mut pool.classes[self.class];
        let Some(i) = chunks
            .iter()
            .position(|c| Arc::ptr_eq(&c.region, &self.region))
        else {
            return;
        };
        chunks[i].free |= 1u128 << (self.offset / self.size);
        let full_mask = if chunks[i].slots == 128 {
            u128::MAX
        } else {
            (1u128 << chunks[i].slots) - 1
        };
        // Give an empty page back to the OS, but keep one per class to avoid churn.
        let empty = chunks.iter().filter(|c| c.free == full_mask).count();
        if chunks[i].free == full_mask && empty > 1 {
            chunks.swap_remove(i);
        }
    }
}

/// Backing store of a secret buffer: nothing, a pool slot, or a guarded region.
pub(crate) enum Buf {
    Empty,
    Slot(Slot),
    /// Always `Some` until dropped (the `Option` lets `Drop` move the region to the cache).
    Region(Option<Region>),
}

impl Buf {
    /// A zero-filled buffer of at least `capacity` bytes.
    pub(crate) fn alloc(capacity: usize, policy: LockPolicy) -> Result<Buf, AllocError> {
        Ok(if capacity == 0 {
            Buf::Empty
        } else if capacity <= MAX_SLOT {
            Buf::Slot(Slot::alloc(capacity, policy)?)
        } else {
            Buf::Region(Some(take_region(capacity, policy)?))
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        match self {
            Buf::Empty => 0,
            Buf::Slot(s) => s.size,
            Buf::Region(r) => r.as_ref().map_or(0, |r| r.len),
        }
    }

    /// Whether the memory is locked in RAM (false for an empty buffer, and for memory
    /// inherited through `fork()`, which the child does not have locked).
    pub(crate) fn is_locked(&self) -> bool {
        match self {
            Buf::Empty => false,
            Buf::Slot(s) => s.region.locked && s.region.is_current(),
            Buf::Region(r) => r.as_ref().is_some_and(|r| r.locked && r.is_current()),
        }
    }

    /// Whether the buffer was made in this process: `false` in the child of a `fork()` for
    /// a buffer made in the parent, whose contents the kernel replaced with zeros.
    pub(crate) fn is_current(&self) -> bool {
        match self {
            Buf::Empty => true,
            Buf::Slot(s) => s.region.is_current(),
            Buf::Region(r) => r.as_ref().is_none_or(Region::is_current),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Empty => &[],
            Buf::Slot(s) => s.region.bytes(s.offset, s.size),
            Buf::Region(r) => r.as_ref().map_or(&[], |r| r.bytes(0, r.len)),
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Buf::Empty => &mut [],
            // SAFETY: the slot is owned by this Buf alone (the pool hands each cell out once
            // until it is dropped) and `&mut self` guarantees no other borrow of it exists.
            Buf::Slot(s) => unsafe { s.region.bytes_mut(s.offset, s.size) },
            // SAFETY: the region is owned by this Buf and borrowed mutably through `&mut self`.
            Buf::Region(Some(r)) => unsafe { r.bytes_mut(0, r.len) },
            Buf::Region(None) => &mut [],
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Buf::Region(slot) = self
            && let Some(region) = slot.take()
        {
            recycle_region(region);
        }
    }
}

/// Zeroized, still-locked regions kept for reuse.
///
/// Creating a locked region costs far more than using it: `mlock` faults in and pins every
/// page, and `munlock` + `munmap` undo it (measured: ~380 µs for 1 MiB, against ~14 µs for a
/// `Vec`). A service that decrypts many messages would pay that on every call. Dropped regions
/// are therefore wiped and parked here, up to a byte budget of a quarter of `RLIMIT_MEMLOCK`
/// (at most 16 MiB), and handed out again for requests of at least half their size. Before an
/// allocation gives up on locking, the cache is emptied and locking is tried once more, so the
/// cache never turns a success into a failure.
struct RegionCache {
    regions: Vec<Region>,
    bytes: usize,
}

/// The region cache of this process (per fork generation, like [`pool`]).
fn region_cache() -> &'static Mutex<RegionCache> {
    static CACHE: ForkLocal<Mutex<RegionCache>> = ForkLocal::new();
    CACHE.get(|| {
        Mutex::new(RegionCache {
            regions: Vec::new(),
            bytes: 0,
        })
    })
}

fn cache_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        const MAX: usize = 16 << 20;
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` struct through a valid, exclusive pointer.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
        if !ok {
            return 0;
        }
        if lim.rlim_cur == libc::RLIM_INFINITY {
            MAX
        } else {
            usize::try_from(lim.rlim_cur / 4).unwrap_or(MAX).min(MAX)
        }
    })
}

fn take_region(min_len: usize, policy: LockPolicy) -> Result<Region, AllocError> {
    {
        let mut cache = region_cache().lock().unwrap_or_else(|p| p.into_inner());
        let fits = |r: &Region| r.len >= min_len && r.len / 2 <= min_len;
        if let Some(i) = cache.regions.iter().position(fits) {
            let region = cache.regions.swap_remove(i);
            cache.bytes -= region.len;
            return Ok(region);
        }
    }
    match Region::new(min_len, LockPolicy::Strict) {
        Ok(region) => Ok(region),
        Err(AllocError::Lock(_)) => {
            // Locked memory is short: give back what the cache holds and try again.
            let drained = {
                let mut cache = region_cache().lock().unwrap_or_else(|p| p.into_inner());
                cache.bytes = 0;
                std::mem::take(&mut cache.regions)
            };
            drop(drained);
            Region::new(min_len, policy)
        }
        Err(other) => Err(other),
    }
}

fn recycle_region(region: Region) {
    if !region.locked || !region.is_current() || region.len > cache_budget() / 2 {
        return; // dropped: wiped, unlocked and unmapped
    }
    // SAFETY: we own the region (moved in), so no other reference into it exists.
    unsafe { region.bytes_mut(0, region.len) }.zeroize();
    let mut cache = region_cache().lock().unwrap_or_else(|p| p.into_inner());
    if cache.bytes + region.len <= cache_budget() {
        cache.bytes += region.len;
        cache.regions.push(region);
    }
}

/// Number of pages currently held by the small-secret pool (for tests and stats).
pub(crate) fn pool_pages() -> usize {
    let pool = pool().lock().unwrap_or_else(|p| p.into_inner());
    pool.classes.iter().map(Vec::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_disjoint_and_zeroed() {
        let mut a = Buf::alloc(32, LockPolicy::BestEffort).unwrap();
        let mut b = Buf::alloc(32, LockPolicy::BestEffort).unwrap();
        assert!(a.as_slice().iter().all(|&x| x == 0));
        a.as_mut_slice().fill(0xAA);
        b.as_mut_slice().fill(0xBB);
        assert!(a.as_slice().iter().all(|&x| x == 0xAA));
        assert!(b.as_slice().iter().all(|&x| x == 0xBB));
    }

    #[test]
    fn size_classes() {
        assert_eq!(class_of(1), (0, 32));
        assert_eq!(class_of(32), (0, 32));
        assert_eq!(class_of(33), (1, 64));
        assert_eq!(class_of(MAX_SLOT), (CLASSES - 1, MAX_SLOT));
    }

    #[test]
    fn dropped_regions_are_wiped_and_reused() {
        let mut a = Buf::alloc(64 << 10, LockPolicy::BestEffort).unwrap();
        a.as_mut_slice().fill(0x5A);
        let addr = a.as_slice().as_ptr() as usize;
        drop(a);
        // Other tests allocate concurrently; try a few times to get our region back.
        let reused = (0..64)
            .map(|_| Buf::alloc(64 << 10, LockPolicy::BestEffort).unwrap())
            .collect::<Vec<_>>();
        for b in &reused {
            assert!(
                b.as_slice().iter().all(|&x| x == 0),
                "a reused region must be zeroed"
            );
        }
        if cache_budget() >= 128 << 10 && reused.iter().any(|b| b.is_locked()) {
            assert!(
                reused
                    .iter()
                    .any(|b| b.as_slice().as_ptr() as usize == addr)
            );
        }
    }

    #[test]
    fn region_rounds_to_pages() {
        let r = Buf::alloc(MAX_SLOT + 1, LockPolicy::BestEffort).unwrap();
        assert_eq!(r.capacity() % page_size(), 0);
        assert!(r.capacity() > MAX_SLOT);
    }
}
