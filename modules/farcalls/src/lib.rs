//! A module that calls every kernel export, most of them from several places.
//!
//! Placed out of branch reach of the kernel (`module.region=far`), each call
//! goes through a PLT veneer. Linux counts the slots per section and shares
//! one between identical branches, so this module needs far fewer veneers
//! than it has call sites: `lsmod` shows `plt=` (veneers written) against the
//! `slots=` counted before loading.
//!
//! It also registers a test in the kernel's `test` suite, and a command
//! `farcalls [leak|panic]`; `leak` allocates a block and never frees it, so
//! that `rmmod` has something to take back.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use splitmap::log;

const COMMAND: &str = "farcalls";
const TEST: &str = "farcalls_heap_blocks_round_trip";

/// Allocates blocks of several sizes, fills each with its own pattern, checks
/// every byte and frees them. True if all of that worked.
fn heap_round_trip() -> bool {
    const SIZES: [(usize, usize); 3] = [(24, 8), (4096, 4096), (100_000, 16)];
    let mut blocks = [None, None, None];
    let mut ok = true;
    for (i, &(size, align)) in SIZES.iter().enumerate() {
        let Some(block) = splitmap::alloc(size, align) else {
            ok = false;
            break;
        };
        ok &= (block.as_ptr() as usize).is_multiple_of(align);
        // SAFETY: the block holds `size` bytes and is ours.
        unsafe { core::ptr::write_bytes(block.as_ptr(), i as u8 + 1, size) };
        blocks[i] = Some(block);
    }
    for (i, block) in blocks.into_iter().enumerate() {
        if let Some(block) = block {
            // SAFETY: written above and still ours: `SIZES[i].0` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(block.as_ptr(), SIZES[i].0) };
            ok &= bytes.iter().all(|&b| b == i as u8 + 1);
            splitmap::free(block);
        }
    }
    ok
}

/// The registered test: 0 passes.
extern "C" fn heap_test() -> i32 {
    if heap_round_trip() { 0 } else { 1 }
}

/// `farcalls`: run the heap round trip; `farcalls leak`: leave a block
/// behind; `farcalls panic`: panic (the kernel stops, naming the module).
extern "C" fn command(args: *const u8, len: usize) {
    // SAFETY: the kernel passes the rest of the command line.
    let args = unsafe { splitmap::command_args(args, len) };
    if args == b"leak" {
        // Deliberately never freed: rmmod takes it back.
        let block = splitmap::alloc(4096, 8);
        log(if block.is_some() {
            "farcalls: leaked 4096 bytes"
        } else {
            "farcalls: no memory"
        });
    } else if args == b"panic" {
        panic!("farcalls: asked to panic");
    } else if heap_round_trip() {
        log("farcalls: heap round trip ok");
    } else {
        log("farcalls: heap round trip FAILED");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    log("farcalls: loaded");
    let before = splitmap::free_frames();
    if !heap_round_trip() {
        log("farcalls: heap round trip FAILED");
        return -1;
    }
    if splitmap::free_frames() < before {
        log("farcalls: the heap kept frames after a round trip");
    }
    // If init fails, the kernel takes back whatever was registered.
    if splitmap::register_command_usage(COMMAND, "[leak|panic]", command).is_err()
        || splitmap::register_test(TEST, heap_test).is_err()
    {
        log("farcalls: a name is already taken");
        return -1;
    }
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    splitmap::unregister_command(COMMAND);
    splitmap::unregister_test(TEST);
    log("farcalls: unloading");
}
