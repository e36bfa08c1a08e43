//! A module that calls every kernel export, most of them from several places.
//!
//! Placed out of branch reach of the kernel (`module.region=far`), each call
//! goes through a PLT veneer. Linux counts the slots per section and shares
//! one between identical branches, so this module needs far fewer veneers
//! than it has call sites: `lsmod` shows `plt=` (veneers written) against the
//! `slots=` counted before loading.
//!
//! It also registers a test in the kernel's `test` suite, and a command
//! `farcalls [leak]`; `leak` allocates a block and never frees it, so that
//! `rmmod` has something to take back.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

unsafe extern "C" {
    fn splitmap_log(message: *const u8, len: usize);
    fn splitmap_alloc(size: usize, align: usize) -> *mut u8;
    fn splitmap_free(block: *mut u8);
    fn splitmap_free_frames() -> u64;
    fn splitmap_register_command(name: *const u8, len: usize, handler: extern "C" fn(*const u8, usize)) -> i32;
    fn splitmap_unregister_command(name: *const u8, len: usize);
    fn splitmap_register_test(name: *const u8, len: usize, test: extern "C" fn() -> i32) -> i32;
    fn splitmap_unregister_test(name: *const u8, len: usize);
}

const COMMAND: &str = "farcalls";
const TEST: &str = "farcalls_heap_blocks_round_trip";

fn log(message: &str) {
    // SAFETY: a valid string for the duration of the call.
    unsafe { splitmap_log(message.as_ptr(), message.len()) }
}

/// Allocates blocks of several sizes, fills each with its own pattern, checks
/// every byte and frees them. True if all of that worked.
fn heap_round_trip() -> bool {
    const SIZES: [(usize, usize); 3] = [(24, 8), (4096, 4096), (100_000, 16)];
    let mut blocks = [core::ptr::null_mut::<u8>(); SIZES.len()];
    for (i, &(size, align)) in SIZES.iter().enumerate() {
        // SAFETY: any size and power-of-two alignment may be asked for.
        blocks[i] = unsafe { splitmap_alloc(size, align) };
        if blocks[i].is_null() || !(blocks[i] as usize).is_multiple_of(align) {
            return false;
        }
        // SAFETY: the block holds `size` bytes and is ours.
        unsafe { core::ptr::write_bytes(blocks[i], i as u8 + 1, size) };
    }
    let intact = SIZES.iter().enumerate().all(|(i, &(size, _))| {
        // SAFETY: written above, still allocated.
        let bytes = unsafe { core::slice::from_raw_parts(blocks[i], size) };
        bytes.iter().all(|&b| b == i as u8 + 1)
    });
    for block in blocks {
        // SAFETY: each block came from splitmap_alloc and is freed once.
        unsafe { splitmap_free(block) };
    }
    intact
}

/// The registered test: 0 passes.
extern "C" fn heap_test() -> i32 {
    if heap_round_trip() { 0 } else { 1 }
}

/// `farcalls`: run the heap round trip; `farcalls leak`: leave a block behind.
extern "C" fn command(args: *const u8, len: usize) {
    // SAFETY: the kernel passes the rest of the command line.
    let args = unsafe { core::slice::from_raw_parts(args, len) };
    if args == b"leak" {
        // SAFETY: a valid size and alignment; the block is deliberately kept.
        let block = unsafe { splitmap_alloc(4096, 8) };
        log(if block.is_null() {
            "farcalls: no memory"
        } else {
            "farcalls: leaked 4096 bytes"
        });
    } else if heap_round_trip() {
        log("farcalls: heap round trip ok");
    } else {
        log("farcalls: heap round trip FAILED");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    log("farcalls: loaded");
    // SAFETY: reads a counter.
    let before = unsafe { splitmap_free_frames() };
    if !heap_round_trip() {
        log("farcalls: heap round trip FAILED");
        return -1;
    }
    // SAFETY: reads a counter.
    let after = unsafe { splitmap_free_frames() };
    if after < before {
        log("farcalls: the heap kept frames after a round trip");
    }
    // SAFETY: valid strings; the functions live as long as the module, and
    // exit_module unregisters them (if init fails, the kernel takes back
    // whatever was registered).
    let registered = unsafe {
        splitmap_register_command(COMMAND.as_ptr(), COMMAND.len(), command) == 0
            && splitmap_register_test(TEST.as_ptr(), TEST.len(), heap_test) == 0
    };
    if !registered {
        log("farcalls: a name is already taken");
        return -1;
    }
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    // SAFETY: valid strings.
    unsafe {
        splitmap_unregister_command(COMMAND.as_ptr(), COMMAND.len());
        splitmap_unregister_test(TEST.as_ptr(), TEST.len());
    }
    log("farcalls: unloading");
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
