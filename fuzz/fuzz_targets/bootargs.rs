//! Any text as the kernel command line: parsed or reported, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    let mut issues = 0usize;
    let args = kernel::boot::bootargs::parse(line, |issue| {
        let _ = issue.to_string();
        issues += 1;
    });
    let _ = kernel::kaslr::window::window_from_args(args.kaslr_window, args.kaslr_align, 0x6c000);
});
