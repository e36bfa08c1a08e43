//! A module whose data holds addresses: a table of function pointers and a
//! table of strings, each entry an absolute 64-bit address (R_AARCH64_ABS64)
//! that the loader fills in with where the module actually landed; and a
//! table of *offsets* to functions (R_AARCH64_PREL32 and PREL64), which is
//! how the kernel's own export and exception tables survive relocation.
//! Reading statics of every width gives the LDST8/16/32/64 relocations.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use splitmap::log;

#[inline(never)]
fn one() -> u32 {
    1
}
#[inline(never)]
fn two() -> u32 {
    2
}
#[inline(never)]
fn three() -> u32 {
    3
}

/// Function pointers in data: three ABS64 relocations.
static TABLE: [fn() -> u32; 3] = [one, two, three];
/// String slices in data: their pointers are ABS64 relocations too.
static NAMES: [&str; 3] = ["data: one", "data: two", "data: three"];

// Offsets from each entry to a function: a 32-bit one (PREL32) to `one` and
// a 64-bit one (PREL64) to `two`. Rust has no relative pointers, so the table
// is written in assembly, as the kernel's `export!` table is.
core::arch::global_asm!(
    ".pushsection .rodata.data_offsets, \"a\"",
    ".balign 8",
    ".globl data_offsets",
    "data_offsets:",
    "    .4byte {one} - .",
    "    .4byte 0",
    "    .8byte {two} - .",
    ".popsection",
    one = sym one,
    two = sym two,
);

unsafe extern "C" {
    /// The offsets table above.
    static data_offsets: [i32; 4];
}

/// The functions the offset table points at.
fn through_offsets() -> [fn() -> u32; 2] {
    let table = &raw const data_offsets;
    // SAFETY: the table is 16 bytes of module rodata: an i32 at 0, an i64 at 8.
    unsafe {
        let at = table as usize;
        let near = at.wrapping_add_signed(table.cast::<i32>().read() as isize);
        let far = (at + 8).wrapping_add_signed(table.cast::<i64>().add(1).read() as isize);
        [
            core::mem::transmute::<usize, fn() -> u32>(near),
            core::mem::transmute::<usize, fn() -> u32>(far),
        ]
    }
}

/// Statics of every width, read in place: `adrp` + a load with a 12-bit
/// offset scaled by the width (the LDST*_ABS_LO12_NC relocations).
static BYTE: u8 = 0x11;
static HALF: u16 = 0x2222;
static WORD: u32 = 0x3333_3333;
static QUAD: u64 = 0x4444_4444_4444_4444;

fn widths_read_back() -> bool {
    // SAFETY: reading initialised statics; volatile keeps the loads in place.
    unsafe {
        core::ptr::read_volatile(&raw const BYTE) == 0x11
            && core::ptr::read_volatile(&raw const HALF) == 0x2222
            && core::ptr::read_volatile(&raw const WORD) == 0x3333_3333
            && core::ptr::read_volatile(&raw const QUAD) == 0x4444_4444_4444_4444
    }
}

/// Calls through the tables; fails the load if any pointer is wrong.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let tables = core::hint::black_box(&TABLE);
    let mut sum = 0;
    for (f, name) in tables.iter().zip(core::hint::black_box(&NAMES)) {
        sum += f();
        log(name);
    }
    let [near, far] = through_offsets();
    let offsets_ok = near() == 1 && far() == 2;
    if sum == 6 && offsets_ok && widths_read_back() {
        log("data: pointer, offset and string tables relocated");
        0
    } else {
        -1
    }
}

/// Nothing to undo.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {}
