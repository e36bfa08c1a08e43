//! The stage-0 loader binary. Runs with the MMU and caches off from start to
//! finish, wherever it was loaded: it is linked at 0 as a PIE (see build.rs)
//! and its entry adds the load offset to every word the RELR list names
//! before any compiled code runs, so absolute addresses in data (vtables,
//! string tables) are right from then on.
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

    // The entry relocates stage-0 where it runs, by the difference between
    // where it runs and where it last relocated itself to (`relocated_at`,
    // 0 = the link address): a copy that moved itself (`move_self`) carries
    // its own relocated data with it and adds only the distance moved.
    // Nothing before `bl stage0_main` may use an absolute address.
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
    0:  mov     x19, x0
        adrp    x20, _start         // where this copy runs (linked at 0)
        add     x20, x20, :lo12:_start
        adrp    x1, relocated_at
        add     x1, x1, :lo12:relocated_at
        ldr     x21, [x1]
        str     x20, [x1]
        sub     x21, x20, x21       // what to add to every site
        adrp    x1, __relr_start
        add     x1, x1, :lo12:__relr_start
        adrp    x2, __relr_end
        add     x2, x2, :lo12:__relr_end
        mov     x3, xzr             // next site (offset from _start)
    1:  cmp     x1, x2
        b.hs    5f
        ldr     x4, [x1], #8
        tbnz    x4, #0, 2f
        add     x5, x20, x4         // an address: relocate it, go on after it
        ldr     x6, [x5]
        add     x6, x6, x21
        str     x6, [x5]
        add     x3, x4, #8
        b       1b
    2:  add     x5, x20, x3         // a bitmap of the 63 words from x3
        lsr     x4, x4, #1
    3:  cbz     x4, 4f
        tbz     x4, #0, 31f
        ldr     x6, [x5]
        add     x6, x6, x21
        str     x6, [x5]
    31: add     x5, x5, #8
        lsr     x4, x4, #1
        b       3b
    4:  add     x3, x3, #(63 * 8)
        b       1b
    5:  mov     x1, #(3 << 20)      // FP/SIMD on for compiled Rust
        msr     cpacr_el1, x1
        isb
        adrp    x1, __bss_start
        add     x1, x1, :lo12:__bss_start
        adrp    x2, __stack_end
        add     x2, x2, :lo12:__stack_end
    6:  stp     xzr, xzr, [x1], #16
        cmp     x1, x2
        b.lo    6b
        mov     sp, x2
        mov     x0, x19
        bl      stage0_main
    9:  wfe
        b       9b

        .section .data, "aw"
        .balign 8
    relocated_at:
        .quad   0
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
        // A kernel asked for where stage-0 itself sits (the Pi firmware's
        // 0x80000 runs into stage-0 at 1 MiB): stage-0 moves out of the way
        // to the lowest slot clear of everything and of that kernel, and
        // starts again there, where the same request then fits.
        if let Err(placement::PlacementError::Overlaps { pa, busy: hit }) = placed
            && hit.range == me
        {
            let mut clear = [Busy {
                range: PhysRange::default(),
                what: "",
            }; 4 + kernel::mm::ranges::MAX_RANGES];
            clear[..busy.len()].copy_from_slice(busy);
            clear[busy.len()] = Busy {
                range: PhysRange::new(pa, image_size).unwrap_or_default(),
                what: "kernel",
            };
            let clear = &clear[..=busy.len()];
            match placement::random_slot(0, me.size(), 4096, &dt.memory, clear) {
                Ok(to) => {
                    let _ = writeln!(
                        out,
                        "stage0: moving from {:#x} to {to:#x}, out of the kernel's way",
                        me.start.raw()
                    );
                    // SAFETY: `random_slot` found [to, to + size) RAM clear of
                    // everything in use, this copy of stage-0 included.
                    unsafe { move_self(me, to, dtb_pa) }
                }
                Err(e) => {
                    let _ = writeln!(out, "stage0: error: {e}");
                    exit(1)
                }
            }
        }
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
        // Stage-0 writes the Image with the MMU and caches off, straight to
        // memory, so the caches may still hold lines of [pa, pa + image_size)
        // from whatever used that memory before, dirty ones too. Clean and
        // invalidate them all first (the NOLOAD tail past the file as well,
        // which the kernel writes with caches off too): written back now,
        // they land before the copy and are overwritten by it; left, an
        // eviction later would overwrite the copy.
        //
        // SAFETY: `check`/`random_slot` proved [pa, pa + image_size) is RAM that
        // holds nothing in use; cleaning it writes back only what is there.
        unsafe { dcache_by_line::<true>(pa, image_size) };
        // SAFETY: that range does not overlap the embedded Image, which is
        // part of stage-0 itself; KERNEL.len() <= image_size.
        unsafe { core::ptr::copy_nonoverlapping(KERNEL.as_ptr(), pa as *mut u8, KERNEL.len()) };
        // The copy's stores were non-cacheable, and with the MMU off nothing
        // orders them before the invalidation but a `dmb sy`. Then invalidate,
        // not clean: any line there now is stale (a dirty one written back
        // would undo the copy).
        // SAFETY: the same range, which now holds the Image and nothing else
        // stage-0 needs; barriers and invalidation change no other memory.
        unsafe {
            asm!("dmb sy", options(nostack, preserves_flags));
            dcache_by_line::<false>(pa, image_size);
            enter(pa, kernel_dtb)
        }
    }

    /// Copies stage-0, as it is now, to `to` and enters the copy with the
    /// same device tree; the copy's entry relocates it by the distance moved.
    ///
    /// # Safety
    /// `[to, to + me.size())` must be RAM that nothing uses and that does not
    /// overlap `me`, this copy.
    unsafe fn move_self(me: PhysRange, to: u64, dtb_pa: u64) -> ! {
        let size = me.size();
        // SAFETY: the caller owns the destination; maintenance as for the
        // kernel's copy in `stage0_main`, then a branch to the copy's first
        // instruction (its header's `b`), with x0 the tree.
        unsafe {
            dcache_by_line::<true>(to, size);
            core::ptr::copy_nonoverlapping(me.start.raw() as *const u8, to as *mut u8, size as usize);
            asm!("dmb sy", options(nostack, preserves_flags));
            dcache_by_line::<false>(to, size);
            enter(to, dtb_pa)
        }
    }

    /// `dc OP` on every data-cache line of `[start, start + len)`, then
    /// `dsb sy` (an instruction name must be spelled out in the template).
    macro_rules! by_line {
        ($op:literal, $start:expr, $len:expr) => {
            asm!(
                "mrs    {line}, ctr_el0",
                "ubfx   {line}, {line}, #16, #4",
                "mov    {mask}, #4",
                "lsl    {line}, {mask}, {line}", // D-cache line size
                "sub    {mask}, {line}, #1",
                "bic    {p}, {p}, {mask}",
                concat!("2: dc  ", $op, ", {p}"),
                "add    {p}, {p}, {line}",
                "cmp    {p}, {end}",
                "b.lo   2b",
                "dsb    sy",
                p = inout(reg) $start => _,
                end = in(reg) $start + $len,
                line = out(reg) _,
                mask = out(reg) _,
                options(nostack),
            )
        };
    }

    /// Data-cache maintenance to the point of coherency over [start, start +
    /// len), line by line: clean and invalidate (`dc civac`) if `CLEAN`, else
    /// invalidate only (`dc ivac`). Ends with `dsb sy`, so the maintenance is
    /// complete before anything that follows.
    ///
    /// # Safety
    /// The range must be memory stage-0 owns: invalidating drops any data
    /// that is only in the cache, for whole lines.
    unsafe fn dcache_by_line<const CLEAN: bool>(start: u64, len: u64) {
        // SAFETY: the caller owns the range; both instructions only move
        // cache lines of it to memory or drop them.
        unsafe {
            if CLEAN {
                by_line!("civac", start, len)
            } else {
                by_line!("ivac", start, len)
            }
        }
    }

    /// Invalidates the instruction cache and jumps to the Image at `pa` with
    /// x0 = DTB, x1-x3 = 0 (booting.rst).
    ///
    /// # Safety
    /// A kernel Image must sit at `pa`, its range already cleaned to the
    /// point of coherency ([`dcache_by_line`]).
    unsafe fn enter(pa: u64, dtb_pa: u64) -> ! {
        // SAFETY: instruction-cache maintenance, then a branch to the Image's
        // first instruction; nothing returns here.
        unsafe {
            asm!(
                "ic     iallu",
                "dsb    sy",
                "isb",
                "mov    x1, xzr",
                "mov    x2, xzr",
                "mov    x3, xzr",
                "br     x16",
                // Fixed registers: `pa` must not be one of x0-x3, which
                // the lines above overwrite.
                in("x0") dtb_pa,
                in("x16") pa,
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
