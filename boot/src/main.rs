//! The stage-0 loader binary. Runs with the MMU and caches off from start to
//! finish, at the address it is linked at (see build.rs), so plain absolute
//! addresses are fine here, unlike in the kernel's early code.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_os = "none")]
mod machine {
    use core::arch::{asm, global_asm};
    use core::fmt::Write;

    use kernel::boot::dtb;
    use kernel::console::pl011::Pl011;
    use kernel::mm::ranges::PhysRange;
    use stage0::placement::{self, Busy, Request};

    /// The kernel Image, embedded by the build (src/kbuild.rs).
    static KERNEL: &[u8] = include_bytes!(env!("SPLITMAP_KERNEL_IMAGE"));

    unsafe extern "C" {
        static _start: u8;
        static _end: u8;
    }

    global_asm!(
        r#"
        .section .head.text, "ax"
        b       0f                  // code0
        .long   0                   // code1
        .quad   0x100000            // text_offset: RAM base + 1 MiB
        .quad   __image_size        // image_size
        .quad   2                   // flags: LE, 4 KiB; near the RAM base
        .quad   0, 0, 0
        .ascii  "ARM\x64"
        .long   0
    0:  adrp    x1, _start          // linked where QEMU puts us? if not,
        add     x1, x1, :lo12:_start  // no absolute address below is right:
        ldr     x2, =_start         // park
        cmp     x1, x2
        b.ne    9f
        mov     x19, x0
        mov     x1, #(3 << 20)      // FP/SIMD on for compiled Rust
        msr     cpacr_el1, x1
        isb
        ldr     x1, =__bss_start
        ldr     x2, =__stack_end
    1:  stp     xzr, xzr, [x1], #16
        cmp     x1, x2
        b.lo    1b
        mov     sp, x2
        mov     x0, x19
        bl      stage0_main
    9:  wfe
        b       9b
        "#
    );

    struct Uart(Option<Pl011>);

    /// The console, if the device tree names one: text to nowhere otherwise.
    impl Write for Uart {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.as_mut().map_or(Ok(()), |uart| uart.write_str(s))
        }
    }

    #[unsafe(no_mangle)]
    extern "C" fn stage0_main(dtb_pa: u64) -> ! {
        // SAFETY: the protocol puts the DTB at x0; with the MMU off its physical
        // address is usable as is. Only the 8 header bytes are read first.
        let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, 8) };
        let Ok(size) = dtb::header_totalsize(header) else {
            exit(2)
        };
        // SAFETY: `size` bytes of DTB at `dtb_pa`, as its header says.
        let blob = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, size as usize) };
        let Ok(dt) = dtb::parse(blob) else { exit(2) };
        // SAFETY: the console UART's registers at their physical address (MMU off:
        // Device memory); nothing else drives it while stage-0 runs.
        let mut out = Uart(dt.uart.map(|u| unsafe { Pl011::new(u.regs.start.raw() as *mut u32) }));

        let image_size = u64::from_le_bytes(KERNEL[16..24].try_into().unwrap_or_default()).max(KERNEL.len() as u64);
        let page = placement::image_page_size(KERNEL);
        let mut busy = [Busy {
            range: PhysRange::default(),
            what: "",
        }; 3 + kernel::mm::ranges::MAX_RANGES];
        let mut n = 0;
        let mut add = |range: PhysRange, what| {
            if n < busy.len() {
                busy[n] = Busy { range, what };
                n += 1;
            }
        };
        let me = PhysRange {
            start: pi::addr::PhysAddr::new(&raw const _start as u64),
            end: pi::addr::PhysAddr::new(&raw const _end as u64),
        };
        add(me, "stage-0 loader");
        add(PhysRange::new(dtb_pa, size).unwrap_or_default(), "dtb");
        let kernel_dtb = match placement::parse_raw_dtb(dt.bootargs) {
            Ok(Some(raw)) => {
                let checked = placement::check_raw_dtb(raw, &dt.memory, || {
                    // SAFETY: `check_raw_dtb` calls this only once the 8
                    // bytes at `raw` are known to be RAM (MMU off: usable as is).
                    unsafe { (raw as *const [u8; 8]).read() }
                });
                if let Err(e) = checked {
                    let _ = writeln!(out, "stage0: error: {e}");
                    exit(1)
                }
                add(
                    PhysRange::new(raw, placement::RAW_DTB_ROOM).unwrap_or_default(),
                    "raw dtb",
                );
                let _ = writeln!(out, "stage0: handing the kernel the device tree at {raw:#x} as it is");
                raw
            }
            Ok(None) => dtb_pa,
            Err(e) => {
                let _ = writeln!(out, "stage0: error: {e}");
                exit(1)
            }
        };
        if let Some(initrd) = dt.initrd {
            add(initrd, "initrd");
        }
        dt.reserved.iter().for_each(|&r| add(r, "reserved memory"));
        let busy = &busy[..n];

        let first_ram = dt.memory.iter().next().map_or(0, |r| r.start.raw());
        let placed = match placement::parse_request(dt.bootargs) {
            Ok(Some(Request::At(pa))) => {
                placement::check(pa, image_size, page, &dt.memory, busy).map(|()| (pa, "requested"))
            }
            Ok(Some(Request::Random)) => match dt.rng_seed {
                Some(seed) => placement::random_slot(seed, image_size, page, &dt.memory, busy).map(|pa| (pa, "random")),
                None => Err(placement::PlacementError::NoSeed),
            },
            Ok(None) => {
                let pa = first_ram + (2 << 20);
                placement::check(pa, image_size, page, &dt.memory, busy).map(|()| (pa, "default: RAM base + 2 MiB"))
            }
            Err(e) => Err(e),
        };
        let (pa, why) = match placed {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "stage0: error: {e}");
                exit(1)
            }
        };
        let _ = writeln!(
            out,
            "stage0: kernel Image ({image_size:#x} bytes) at pa={pa:#x} ({why})"
        );
        if why == "random" {
            let _ = writeln!(out, "stage0: --load-addr {pa:#x} replays this placement");
        }
        // SAFETY: `check`/`random_slot` proved [pa, pa + image_size) is RAM that
        // holds nothing in use, and it does not overlap the embedded Image,
        // which is part of stage-0 itself.
        unsafe {
            core::ptr::copy_nonoverlapping(KERNEL.as_ptr(), pa as *mut u8, KERNEL.len());
            enter(pa, kernel_dtb, KERNEL.len() as u64)
        }
    }

    /// Cleans the copied Image to the point of coherency, invalidates the
    /// instruction cache and jumps to it with x0 = DTB, x1-x3 = 0 (booting.rst).
    ///
    /// # Safety
    /// A kernel Image of `len` bytes must sit at `pa`.
    unsafe fn enter(pa: u64, dtb_pa: u64, len: u64) -> ! {
        // SAFETY: cache maintenance by address over the copied Image, then a
        // branch to its first instruction; nothing returns here.
        unsafe {
            asm!(
                "mrs    x9, ctr_el0",
                "ubfx   x9, x9, #16, #4",
                "mov    x10, #4",
                "lsl    x9, x10, x9",       // x9 = D-cache line size
                "sub    x10, x9, #1",
                "bic    x11, {pa}, x10",
                "add    x12, {pa}, {len}",
                "2: dc  civac, x11",
                "add    x11, x11, x9",
                "cmp    x11, x12",
                "b.lo   2b",
                "dsb    sy",
                "ic     iallu",
                "dsb    sy",
                "isb",
                "mov    x0, {dtb}",
                "mov    x1, xzr",
                "mov    x2, xzr",
                "mov    x3, xzr",
                "br     {pa}",
                pa = in(reg) pa,
                len = in(reg) len,
                dtb = in(reg) dtb_pa,
                options(noreturn),
            )
        }
    }

    /// Exits QEMU with `code` through semihosting (the host tool enables it
    /// whenever it boots through stage-0), so a refused address is a failed run.
    fn exit(code: u64) -> ! {
        // ADP_Stopped_ApplicationExit, then the exit status.
        let block: [u64; 2] = [0x20026, code];
        // SAFETY: SYS_EXIT (0x18) reads the two-word block and does not return
        // when semihosting is on.
        unsafe { asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack)) };
        loop {
            aarch64_wfe();
        }
    }

    fn aarch64_wfe() {
        // SAFETY: waiting for an event has no preconditions.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = info;
        exit(3)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("splitmap-boot runs only on aarch64-unknown-none: use `splitmap run --load-addr PA`");
}
