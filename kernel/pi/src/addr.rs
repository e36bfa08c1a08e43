//! Three kinds of address, three types.
//!
//! A physical address, an address in the linear map and an address in the
//! kernel image mapping are different things once the image no longer lives in
//! the linear map. Mixing them up is the bug class the split invites, so each
//! conversion goes through exactly one function:
//!
//! - [`PhysAddr::to_linear`] / [`LinearVirt::to_phys`]: `va = pa - PHYS_OFFSET + PAGE_OFFSET`
//! - [`PhysAddr::to_kimg`] / [`KimgVirt::to_phys`]: `va = pa + kimage_voffset`,
//!   valid only inside the image.
//!
//! Each conversion is explicit (compiled, not run: the offsets are set at boot):
//!
//! ```no_run
//! use pi::addr::{KimgVirt, LinearVirt, PhysAddr};
//! fn wants_linear(_: LinearVirt) {}
//! let pa: PhysAddr = KimgVirt::new(0xffff_8000_8000_0000).to_phys();
//! wants_linear(pa.to_linear());
//! ```
//!
//! Passing a kernel-image address where a linear one is expected does not compile:
//!
//! ```compile_fail
//! use pi::addr::{KimgVirt, LinearVirt};
//! fn wants_linear(_: LinearVirt) {}
//! wants_linear(KimgVirt::new(0xffff_8000_8000_0000));
//! ```
//!
//! ```compile_fail
//! use pi::addr::{PhysAddr, LinearVirt};
//! fn wants_phys(_: PhysAddr) {}
//! wants_phys(LinearVirt::new(0xffff_0000_0000_0000));
//! ```

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{LINEAR_END, PAGE_OFFSET};

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw address.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }
            /// The raw address.
            pub const fn raw(self) -> u64 {
                self.0
            }
            /// This address plus `bytes`.
            pub const fn add(self, bytes: u64) -> Self {
                Self(self.0 + bytes)
            }
            /// Rounds down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A physical address.
    PhysAddr
);
address_type!(
    /// A virtual address inside the linear map of RAM.
    LinearVirt
);
address_type!(
    /// A virtual address inside the kernel image mapping.
    KimgVirt
);

/// Lowest RAM address rounded down to 1 GiB (so the linear map can use the
/// granule's largest blocks), or below that with `kaslr.linear=on`; set once,
/// before the linear map exists.
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
/// `image VA - image PA`; set once, right after the MMU is on.
static KIMAGE_VOFFSET: AtomicU64 = AtomicU64::new(0);
/// Image bounds `[start, end)` as physical addresses, for the validity check of
/// [`PhysAddr::to_kimg`].
static KIMAGE_PA_START: AtomicU64 = AtomicU64::new(0);
static KIMAGE_PA_END: AtomicU64 = AtomicU64::new(0);

/// Records where the image is and where it is mapped. Called once at boot.
pub fn set_kimage(pa_start: PhysAddr, pa_end: PhysAddr, voffset: u64) {
    KIMAGE_PA_START.store(pa_start.0, Ordering::Relaxed);
    KIMAGE_PA_END.store(pa_end.0, Ordering::Relaxed);
    KIMAGE_VOFFSET.store(voffset, Ordering::Relaxed);
}

/// Records the base of RAM for the linear map. Called once at boot.
pub fn set_phys_offset(phys_offset: PhysAddr) {
    PHYS_OFFSET.store(phys_offset.0, Ordering::Relaxed);
}

/// The physical address the linear map starts at.
pub fn phys_offset() -> PhysAddr {
    PhysAddr(PHYS_OFFSET.load(Ordering::Relaxed))
}

/// `image VA - image PA`.
pub fn kimage_voffset() -> u64 {
    KIMAGE_VOFFSET.load(Ordering::Relaxed)
}

impl PhysAddr {
    /// The linear-map address of this physical address.
    pub fn to_linear(self) -> LinearVirt {
        let va = self.0.wrapping_sub(phys_offset().0).wrapping_add(PAGE_OFFSET);
        debug_assert!(
            (PAGE_OFFSET..LINEAR_END).contains(&va),
            "{self:?} outside the linear map"
        );
        LinearVirt(va)
    }

    /// The kernel-image address of this physical address. Only addresses inside
    /// the loaded image have one.
    pub fn to_kimg(self) -> Option<KimgVirt> {
        let inside = (KIMAGE_PA_START.load(Ordering::Relaxed)..KIMAGE_PA_END.load(Ordering::Relaxed)).contains(&self.0);
        inside.then(|| KimgVirt(self.0.wrapping_add(kimage_voffset())))
    }
}

impl LinearVirt {
    /// The physical address behind this linear-map address.
    pub fn to_phys(self) -> PhysAddr {
        PhysAddr(self.0.wrapping_sub(PAGE_OFFSET).wrapping_add(phys_offset().0))
    }

    /// This address as a pointer.
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

impl KimgVirt {
    /// The physical address behind this kernel-image address.
    pub fn to_phys(self) -> PhysAddr {
        PhysAddr(self.0.wrapping_sub(kimage_voffset()))
    }

    /// This address as a pointer.
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// The image address of a kernel object.
    pub fn of<T: ?Sized>(object: &T) -> Self {
        KimgVirt(object as *const T as *const u8 as u64)
    }
}

/// A half-open virtual address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Span {
    /// Bytes in the span.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    /// Whether `other` lies inside.
    pub fn contains(&self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        set_phys_offset(PhysAddr::new(0x4000_0000));
        set_kimage(
            PhysAddr::new(0x4020_0000),
            PhysAddr::new(0x4040_0000),
            0xffff_8000_8000_0000 - 0x4020_0000,
        );
        let pa = PhysAddr::new(0x4123_4567);
        assert_eq!(pa.to_linear().raw(), 0xffff_0000_0123_4567);
        assert_eq!(pa.to_linear().to_phys(), pa);
        assert_eq!(pa.to_kimg(), None, "outside the image");
        let inside = PhysAddr::new(0x4020_1234);
        let kimg = inside.to_kimg().unwrap();
        assert_eq!(kimg.raw(), 0xffff_8000_8000_1234);
        assert_eq!(kimg.to_phys(), inside);
    }
}
