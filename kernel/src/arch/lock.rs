//! The kernel's one lock type: a spin lock that counts how many locks this
//! CPU holds, as Linux's preempt count does for `in_atomic()`.
//!
//! The count answers one question that a list of subsystems could not: may
//! the frames running now be abandoned? A fault in module code is contained
//! by never resuming the frames between the module's entry and the fault
//! (`arch::recovery`); if one of them holds a lock, it stays held for good
//! and the next taker spins forever. So a fault is contained only when the
//! count is zero, and code never enters a module holding a lock. A new lock
//! counts without being registered anywhere: `clippy.toml` forbids the raw
//! `spin` locks outside this file, and the kernel heap's lock is one of these
//! (`mm::frames`).
//!
//! The count is per CPU (indexed by `percpu::id`): a lock another CPU
//! holds says nothing about whether this CPU's frames may be abandoned.
// The one place the raw spin lock may be named.
#![allow(clippy::disallowed_types)]

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Locks each CPU holds (or is taking) right now.
#[cfg(not(test))]
static HELD: [AtomicUsize; super::percpu::MAX_CPUS] = [const { AtomicUsize::new(0) }; super::percpu::MAX_CPUS];

#[cfg(not(test))]
fn count<R>(f: impl FnOnce(&AtomicUsize) -> R) -> R {
    f(&HELD[super::percpu::id()])
}

// On the host each test thread plays a CPU of its own, as a per-CPU count
// would make it.
#[cfg(test)]
std::thread_local! {
    static HELD: AtomicUsize = const { AtomicUsize::new(0) };
}

#[cfg(test)]
fn count<R>(f: impl FnOnce(&AtomicUsize) -> R) -> R {
    HELD.with(f)
}

/// How many kernel locks this CPU holds right now.
pub fn held() -> usize {
    count(|held| held.load(Ordering::SeqCst))
}

/// One lock counted in [`HELD`] for as long as it lives.
struct Counted;

impl Counted {
    /// Counted before the lock is taken, so no instant holds an uncounted lock.
    fn new() -> Self {
        count(|held| held.fetch_add(1, Ordering::SeqCst));
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        count(|held| held.fetch_sub(1, Ordering::SeqCst));
    }
}

/// A spin lock whose holders are counted (see the module comment).
pub struct Mutex<T: ?Sized>(spin::Mutex<T>);

/// The lock held: derefs to the data; dropping it unlocks, then uncounts.
pub struct MutexGuard<'a, T: ?Sized> {
    // Fields drop in order: the lock is released before it stops counting.
    inner: spin::MutexGuard<'a, T>,
    _counted: Counted,
}

impl<T> Mutex<T> {
    /// A free lock around `value`.
    pub const fn new(value: T) -> Self {
        Mutex(spin::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock, spinning until it is free. Out of line: one copy per
    /// lock type, not the counting and the exclusive-load/store loop at
    /// every call site (translated blocks, boot to poweroff: 1,455 -> 1,448).
    #[inline(never)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let counted = Counted::new();
        MutexGuard {
            inner: self.0.lock(),
            _counted: counted,
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let counted = Counted::new();
        let inner = self.0.try_lock()?;
        Some(MutexGuard {
            inner,
            _counted: counted,
        })
    }

    /// Whether someone holds it.
    pub fn is_locked(&self) -> bool {
        self.0.is_locked()
    }

    /// Frees a lock whose holder will never run again, and uncounts it.
    ///
    /// # Safety
    /// The holder's guard must never be used or dropped: only the panic
    /// path, which stops the machine, may call this.
    pub unsafe fn force_unlock(&self) {
        if self.0.is_locked() {
            // SAFETY: the caller's contract: the guard is gone for good.
            unsafe { self.0.force_unlock() };
            count(|held| held.fetch_sub(1, Ordering::SeqCst));
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_counted_until_their_guards_drop() {
        let (a, b) = (Mutex::new(1), Mutex::new(2));
        let base = held();
        let ga = a.lock();
        assert_eq!(held(), base + 1);
        {
            let gb = b.try_lock().expect("free");
            assert_eq!(*gb + *ga, 3);
            assert_eq!(held(), base + 2);
            // Taken already: refused, and not counted.
            assert!(b.try_lock().is_none());
            assert_eq!(held(), base + 2);
        }
        assert_eq!(held(), base + 1);
        assert!(a.is_locked() && !b.is_locked());
        core::mem::forget(ga);
        // SAFETY: the guard was forgotten: it is never used or dropped.
        unsafe { a.force_unlock() };
        assert_eq!(held(), base);
        assert!(!a.is_locked());
    }
}
