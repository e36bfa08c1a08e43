//! A module whose data holds addresses: a table of function pointers and a
//! table of strings. Each entry is an absolute 64-bit address (R_AARCH64_ABS64)
//! that the loader fills in with where the module actually landed.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

unsafe extern "C" {
    /// Kernel export: print a line on the console.
    fn splitmap_log(message: *const u8, len: usize);
}

fn log(message: &str) {
    // SAFETY: a valid string for the duration of the call.
    unsafe { splitmap_log(message.as_ptr(), message.len()) }
}

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

/// Calls through the tables; fails the load if any pointer is wrong.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let tables = core::hint::black_box(&TABLE);
    let mut sum = 0;
    for (f, name) in tables.iter().zip(core::hint::black_box(&NAMES)) {
        sum += f();
        log(name);
    }
    if sum == 6 {
        log("data: function and string tables relocated");
        0
    } else {
        -1
    }
}

/// Nothing to undo.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
