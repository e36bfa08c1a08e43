//! A value boot writes once, in place, and then only reads: the kernel's
//! replacement for `spin::Once` on the boot path.
//!
//! `spin::Once` takes its value by return, so a value of kilobytes (the
//! boot info, the reservations) is built on the stack and copied on its way
//! in, and each `Once<T>` brings a slow path of its own for waiting on a
//! racing initialiser, which boot never has. Measured under `--icount` at
//! the switch: the reservations' three copies were 4,000 instructions of the
//! `frames` phase, and the nine `Once`s boot reached 52 translated blocks.
//! This cell starts as a constant value and is filled where it lies; a
//! second fill is a bug, and panics rather than waits.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

/// A value written once in place (see the module comment).
pub struct WriteOnce<T> {
    /// [`EMPTY`], [`FILLING`] or [`FILLED`]; only ever goes up.
    state: AtomicU8,
    value: UnsafeCell<T>,
}

const EMPTY: u8 = 0;
const FILLING: u8 = 1;
const FILLED: u8 = 2;

// SAFETY: the value is written only by the one `fill` that moved `state`
// from EMPTY to FILLING, before any reference to it is handed out (`get`
// hands out none until FILLED, published with Release and seen with
// Acquire); after that it is only read, from any CPU (so `T: Sync`), and it
// may have been written on another CPU than the one that reads or drops it
// (so `T: Send`).
unsafe impl<T: Send + Sync> Sync for WriteOnce<T> {}

impl<T> WriteOnce<T> {
    /// Not filled yet; `empty` is what [`WriteOnce::fill`] starts from.
    ///
    /// A cell filled before the KASLR move must have an `empty` that holds
    /// no address in the image: the move adds its offset to every word that
    /// held one at link time (the RELR list), and would add it to whatever
    /// boot wrote over that word (a pointer into the device tree, say).
    /// `spin::Once` had no such words, being uninitialised until filled.
    /// No cell's `empty` holds one (an empty `&str` points nowhere):
    /// `tests/write_once.rs` reads each cell's words against the RELR list.
    pub const fn new(empty: T) -> Self {
        WriteOnce {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(empty),
        }
    }

    /// Fills the value in place with `fill`, which starts from the value
    /// given to [`WriteOnce::new`], and hands it out for reading.
    ///
    /// # Panics
    /// On a second call: what boot writes once, it writes once. If `fill`
    /// panics, the value is never handed out.
    pub fn fill(&self, fill: impl FnOnce(&mut T)) -> &T {
        claim(&self.state);
        // SAFETY: this call alone moved `state` off EMPTY, and no reference
        // to the value exists before FILLED (see `Sync` above).
        fill(unsafe { &mut *self.value.get() });
        self.state.store(FILLED, Ordering::Release);
        // SAFETY: filled; nothing writes it again.
        unsafe { &*self.value.get() }
    }

    /// [`WriteOnce::fill`] with `value` (for values of a few words, where
    /// building in place saves nothing). The value it replaces is forgotten,
    /// not dropped: a constant's (as every static's is) owns nothing to free,
    /// and dropping it would be code run for nothing (a `String`'s check and
    /// call to free, in `boot::gic`).
    ///
    /// # Panics
    /// As [`WriteOnce::fill`].
    pub fn set(&self, value: T) -> &T {
        self.fill(|slot| core::mem::forget(core::mem::replace(slot, value)))
    }

    /// The value, once [`WriteOnce::fill`] has filled it.
    pub fn get(&self) -> Option<&T> {
        // SAFETY: filled (seen with Acquire); nothing writes it again.
        (self.state.load(Ordering::Acquire) == FILLED).then(|| unsafe { &*self.value.get() })
    }
}

impl<T> WriteOnce<Option<T>> {
    /// What a cell that starts as `None` was set to: `None` before it is,
    /// as after it was set to `None`. (A cell whose "not yet" and "set to
    /// nothing" differ reads [`WriteOnce::get`].)
    pub fn some(&self) -> Option<&T> {
        self.get().and_then(Option::as_ref)
    }
}

/// Moves a cell's `state` from EMPTY to FILLING, or panics. Out of line
/// and not generic: one copy of the exclusive-load/store loop serves every
/// cell, where inlined into each `fill` it split each cell's filling into
/// blocks of its own (translated blocks, boot to poweroff: 1,464 -> 1,461).
#[inline(never)]
fn claim(state: &AtomicU8) {
    let first = state.compare_exchange(EMPTY, FILLING, Ordering::Acquire, Ordering::Relaxed);
    assert!(first.is_ok(), "a write-once value is written once");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_in_place_once_and_only_then_read() {
        let cell = WriteOnce::new([1u64; 4]);
        assert!(cell.get().is_none(), "nothing before it is filled");
        let filled = cell.fill(|v| {
            assert_eq!(*v, [1; 4], "filled from the empty value");
            v[3] = 7;
        });
        assert_eq!(*filled, [1, 1, 1, 7]);
        assert_eq!(cell.get(), Some(&[1, 1, 1, 7]));
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cell.set([0; 4])));
        assert!(again.is_err(), "a second fill is refused");
        assert_eq!(cell.get(), Some(&[1, 1, 1, 7]), "and changes nothing");
    }

    #[test]
    fn an_optional_cell_reads_some_only_once_set_to_some() {
        let unset: WriteOnce<Option<u8>> = WriteOnce::new(None);
        assert_eq!(unset.some(), None);
        let none = WriteOnce::new(Some(1u8));
        none.set(None);
        assert_eq!((none.get(), none.some()), (Some(&None), None));
        let set = WriteOnce::new(None);
        set.set(Some(3u8));
        assert_eq!(set.some(), Some(&3));
    }

    #[test]
    fn a_fill_that_panics_hands_nothing_out() {
        let cell = WriteOnce::new(0u32);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.fill(|v| {
                *v = 1;
                panic!("half-filled");
            })
        }));
        assert!(failed.is_err());
        assert!(cell.get().is_none(), "a half-filled value is never read");
    }
}
