//! The in-kernel tests of several CPUs (`test smp`): each posts work to
//! every online secondary through its mailbox (`arch::smp::post_call`) and
//! checks what comes back. With one CPU each is skipped.

use core::sync::atomic::{AtomicU64, Ordering};

use pi::layout::{PAGE_SIZE, STACK_SLOT, STACKS_VADDR};
use pi::pgtable;

use super::context::Context;
use super::report::{TestFailure, TestResult, check, skip};
use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{counter, peek, smp};
use crate::boot::smp::State;
use crate::mm::{frames, tables};

/// How long a test waits for a CPU's answer, in seconds of the counter.
const LIMIT_S: u64 = 10;

fn fail(message: &'static str, value: u64) -> TestFailure {
    TestFailure {
        message,
        value,
        skipped: false,
    }
}

/// The online CPUs that serve a mailbox (every one but CPU 0, which runs
/// the shell), other than this one.
fn others() -> impl Iterator<Item = usize> {
    let me = percpu::id();
    crate::boot::smp::cpus()
        .into_iter()
        .enumerate()
        .filter(move |(n, c)| *n != me && *n != 0 && c.is_some_and(|c| c.state == State::Online))
        .map(|(n, _)| n)
        .collect::<alloc::vec::Vec<_>>()
        .into_iter()
}

/// Runs `f(arg)` on every other online CPU at once, and `here()` on this
/// CPU meanwhile; how many CPUs answered.
fn on_all_while(f: fn(u64) -> u64, arg: u64, here: impl FnOnce()) -> Result<u64, TestFailure> {
    let mut posted = alloc::vec::Vec::new();
    let mut outcome = Ok(());
    for n in others() {
        match smp::post_call(n, f, arg) {
            Ok(()) => posted.push(n),
            Err(_) => outcome = Err(fail("a CPU's mailbox is taken", n as u64)),
        }
    }
    here();
    let deadline = counter::now() + counter::frequency() * LIMIT_S;
    let mut answered = 0;
    for n in posted {
        match smp::wait_done(n, deadline) {
            Ok(_) => answered += 1,
            Err(_) => outcome = Err(fail("a CPU did not answer in time", n as u64)),
        }
    }
    outcome.map(|()| answered)
}

/// Runs `f(arg)` on every other online CPU at once; their results, by CPU.
fn on_all(f: fn(u64) -> u64, arg: u64) -> Result<[Option<u64>; MAX_CPUS], TestFailure> {
    let mut results = [None; MAX_CPUS];
    let mut posted = alloc::vec::Vec::new();
    let mut outcome = Ok(());
    for n in others() {
        match smp::post_call(n, f, arg) {
            Ok(()) => posted.push(n),
            Err(_) => outcome = Err(fail("a CPU's mailbox is taken", n as u64)),
        }
    }
    // Every answer collected, even after a failure, so each mailbox is
    // free again for the next test.
    let deadline = counter::now() + counter::frequency() * LIMIT_S;
    for n in posted {
        match smp::wait_done(n, deadline) {
            Ok(r) => results[n] = Some(r),
            Err(_) => outcome = Err(fail("a CPU did not answer in time", n as u64)),
        }
    }
    outcome.map(|()| results)
}

fn needs_secondaries() -> TestResult {
    match others().next() {
        Some(_) => Ok(()),
        None => skip("one CPU online: boot with --smp 2 or more"),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn bump(times: u64) -> u64 {
    for _ in 0..times {
        COUNTER.fetch_add(1, Ordering::Relaxed);
    }
    times
}

/// Every CPU adds to one counter at the same time: atomics are atomic
/// across CPUs (the linear map is inner shareable, so exclusives work).
pub fn smp_counter_sees_every_cpus_increments(_: &Context) -> TestResult {
    needs_secondaries()?;
    const TIMES: u64 = 10_000;
    COUNTER.store(0, Ordering::SeqCst);
    // This CPU counts while the others do.
    let answered = on_all_while(bump, TIMES, || {
        bump(TIMES);
    })?;
    let want = TIMES * (answered + 1);
    check(
        COUNTER.load(Ordering::SeqCst) == want,
        "the counter missed increments",
        COUNTER.load(Ordering::SeqCst),
    )
}

/// The MMU's own walk (`at s1e1r`) of `va` on this CPU: PAR_EL1's PA, or
/// `u64::MAX` if it faulted.
fn translate(va: u64) -> u64 {
    let par: u64;
    // SAFETY: an address translation instruction and a register read.
    unsafe { core::arch::asm!("at s1e1r, {}", "isb", "mrs {}, par_el1", in(reg) va, out(reg) par, options(nostack)) };
    if par & 1 != 0 {
        u64::MAX
    } else {
        (par & 0x0000_ffff_ffff_f000) | (va & 0xfff)
    }
}

/// Every CPU's MMU translates a linear-map address and a kernel-image
/// address to the physical address CPU 0's does: one set of tables.
pub fn smp_every_cpu_walks_to_the_same_pa(cx: &Context) -> TestResult {
    needs_secondaries()?;
    let linear = cx.kernel.image.start.to_linear().raw() + 0x123;
    let text = translate as *const () as u64;
    for va in [linear, text] {
        let here = translate(va);
        check(here != u64::MAX, "the address does not translate here", va)?;
        for r in on_all(translate, va)?.into_iter().flatten() {
            check(r == here, "another CPU translates it elsewhere", r)?;
        }
    }
    Ok(())
}

fn stack_and_number(_: u64) -> u64 {
    let sp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    // The slot the SP is in, and the CPU number, in one word.
    ((sp - STACKS_VADDR) / STACK_SLOT) << 8 | percpu::id() as u64
}

/// Each CPU runs on the kernel stack of its own slot, above its guard, and
/// knows its own number.
pub fn smp_each_cpu_runs_on_its_own_stack(_: &Context) -> TestResult {
    needs_secondaries()?;
    for (n, r) in on_all(stack_and_number, 0)?.into_iter().enumerate() {
        if let Some(r) = r {
            check(r & 0xff == n as u64, "a CPU reports another's number", r)?;
            check(r >> 8 == n as u64, "a CPU runs on another slot's stack", r)?;
        }
    }
    Ok(())
}

fn peek_at(va: u64) -> u64 {
    peek::peek64(va).unwrap_or(u64::MAX)
}

/// A page every CPU has read (so its TLBs may hold it) is unmapped on this
/// CPU: a read on every other CPU must fault then. Only broadcast TLB
/// invalidation (`tlbi vmalle1is`) makes it so; QEMU keeps a TLB per
/// virtual CPU, and a local-only invalidation fails this test.
pub fn smp_an_unmap_is_seen_by_every_cpu(_: &Context) -> TestResult {
    needs_secondaries()?;
    // A page of the stack area no CPU uses: past the last CPU's slot.
    let va = STACKS_VADDR + (MAX_CPUS as u64 + 1) * STACK_SLOT;
    let frame = frames::alloc_frame().ok_or(fail("no free frame", 0))?;
    let pattern = 0x5eed_0000_0000_0000 | frame.raw();
    // SAFETY: the frame is ours (just allocated) and linear-mapped rw.
    unsafe { frame.to_linear().as_ptr::<u64>().write_volatile(pattern) };
    let result = (|| {
        tables::map(
            va,
            frame,
            PAGE_SIZE,
            pgtable::Attrs::DATA,
            pgtable::Granularity::PagesOnly,
        )
        .map_err(|_| fail("cannot map the test page", va))?;
        for r in on_all(peek_at, va)?.into_iter().flatten() {
            check(r == pattern, "a CPU does not read the mapped page", r)?;
        }
        tables::unmap(va, PAGE_SIZE).map_err(|_| fail("cannot unmap the test page", va))?;
        for r in on_all(peek_at, va)?.into_iter().flatten() {
            check(
                r == u64::MAX,
                "a CPU still reads an unmapped page: its TLB was not invalidated",
                r,
            )?;
        }
        Ok(())
    })();
    let _ = tables::unmap(va, PAGE_SIZE);
    frames::free_frame(frame);
    result
}
