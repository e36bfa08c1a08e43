//! Bringing up the CPUs the device tree lists (`dtb::cpus`), and what
//! `cpus` reports of each.
//!
//! CPU numbers follow the tree's order, the boot CPU being 0 whatever its
//! place. Each secondary gets its kernel stack in its own stack slot
//! (`pi::kmap::stack_slot`: `stack.N` above the unmapped `guard.N`) and an
//! exception stack of RAM frames (reached through the linear map), then is
//! started by its enable-method at `arch::smp::entry_pa`, and must report
//! in within [`REPORT_MS`]: one that does not is marked failed, named, and
//! boot goes on without it.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use log::{debug, warn};
use pi::addr::PhysAddr;
use pi::kmap::{self, FixedWindow};
use pi::layout::{KERNEL_STACK_SIZE, PAGE_SIZE};

use super::dtb::cpus::{Cpu, EnableMethod, Listed, Skip, Text};
use crate::arch::lock::Mutex;
use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{counter, cpu, exceptions, irq, pmu, psci, smp};
use crate::mm::{frames, tables};

/// How long a started CPU has to report in, in milliseconds of the counter.
pub const REPORT_MS: u64 = 1000;

/// Bytes of each secondary's exception stack (the boot CPU's is the boot
/// stack in the image).
const EXCEPTION_STACK: u64 = if PAGE_SIZE > 16 << 10 { PAGE_SIZE } else { 16 << 10 };

/// Where a CPU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Running the kernel: serving its mailbox (or, CPU 0, the shell).
    Online,
    /// Left off on purpose.
    Offline,
    /// Started, and it went wrong.
    Failed,
}

impl State {
    /// As `cpus` prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
            State::Failed => "failed",
        }
    }
}

/// Why a CPU is not online.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// `maxcpus=N` left it off.
    MaxCpus(usize),
    /// No frames or no mapping for its stacks.
    NoStack,
    /// PSCI did not start it.
    CpuOn(psci::CpuOnError),
    /// Started, but it did not report in within [`REPORT_MS`].
    NoReport,
    /// It took a line from `on` and did not finish it in time.
    Stuck,
}

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Why::MaxCpus(n) => write!(f, "maxcpus={n}"),
            Why::NoStack => f.write_str("no memory for its stacks"),
            Why::CpuOn(e) => write!(f, "{e}"),
            Why::NoReport => write!(f, "did not report in within {REPORT_MS} ms"),
            Why::Stuck => f.write_str("did not finish a command from `on` in time"),
        }
    }
}

/// One numbered CPU, as `cpus` shows it.
#[derive(Clone, Copy, Debug)]
pub struct CpuInfo {
    /// Its MPIDR affinity.
    pub mpidr: u64,
    /// Where it is.
    pub state: State,
    /// Its kernel stack, `[start, end)`.
    pub stack: (u64, u64),
    /// Why it is not online.
    pub why: Option<Why>,
}

static CPUS: Mutex<[Option<CpuInfo>; MAX_CPUS]> = Mutex::new([None; MAX_CPUS]);

/// Set by each secondary as it reports in, read by the boot CPU.
static REPORTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// What a secondary runs once it is on its kernel stack (lent by `init`:
/// serving its mailbox), as an address.
static IDLE: AtomicU64 = AtomicU64::new(0);

/// Every numbered CPU, CPU 0 first.
pub fn cpus() -> [Option<CpuInfo>; MAX_CPUS] {
    *CPUS.lock()
}

/// Whether CPU `n` is online (and so serves its mailbox).
pub fn online(n: usize) -> bool {
    CPUS.lock()
        .get(n)
        .and_then(|c| *c)
        .is_some_and(|c| c.state == State::Online)
}

/// Marks CPU `n` failed for `why` (it stopped answering).
pub fn mark_failed(n: usize, why: Why) {
    if let Some(Some(c)) = CPUS.lock().get_mut(n) {
        c.state = State::Failed;
        c.why = Some(why);
    }
}

/// Numbers the CPUs the tree lists (`judged`, in tree order; `dropped`
/// more not read; the boot CPU 0), reports the nodes left off, and starts
/// every secondary up to `maxcpus` (all, if `None`); each continues in
/// `idle(cpu, 0, 0)` on its own stacks once it reported in. `judged` is
/// called once per pass over the nodes: each judging is a new iterator.
pub fn start_secondaries<'dt, I: Iterator<Item = Listed<'dt>>>(
    judged: impl Fn() -> I,
    dropped: usize,
    maxcpus: Option<usize>,
    idle: extern "C" fn(u64, u64, u64) -> !,
) {
    IDLE.store(idle as usize as u64, Ordering::SeqCst);
    let me = smp::mpidr();
    let zero = kmap::stack_slot(0).stack;
    CPUS.lock()[0] = Some(CpuInfo {
        mpidr: me,
        state: State::Online,
        stack: zero,
        why: None,
    });
    let mut secondaries = false;
    for listed in judged() {
        match listed.cpu {
            // The boot CPU is running already: it needs no way to start.
            Err(Skip::NoMethod(mpidr)) if mpidr == me => {}
            Err(why) => warn!("cpu node {}: {why}; skipped", Text(listed.name)),
            Ok(c) => secondaries |= c.mpidr != me,
        }
    }
    if dropped > 0 {
        warn!("{dropped} more cpu nodes not read");
    }
    // Only once every node left off is named; a machine with one CPU never
    // gets here (found in the loop above, not by a pass of its own).
    if secondaries {
        start_all(judged().filter_map(|l| l.cpu.ok()), me, maxcpus.unwrap_or(MAX_CPUS));
    }
}

/// Starts each of the `usable` CPUs but the boot CPU (`me`), in turn, up
/// to `limit`. Out of line: a machine with one CPU never runs it.
#[inline(never)]
fn start_all<'dt>(usable: impl Iterator<Item = Cpu<'dt>>, me: u64, limit: usize) {
    // Before the first secondary is waited for.
    counter::enable_event_stream();
    for (i, c) in usable.filter(|c| c.mpidr != me).enumerate() {
        start_one(i + 1, c, limit);
    }
}

/// Secondary `n`, listed as `c`: started unless past [`MAX_CPUS`] or
/// `limit`, and recorded. Out of line: a machine with one CPU never gets
/// here, and inlined, its constants were loaded (and translated by QEMU) at
/// every boot all the same.
#[inline(never)]
fn start_one(n: usize, c: Cpu<'_>, limit: usize) {
    if n >= MAX_CPUS {
        warn!(
            "cpu node {}: the kernel starts at most {MAX_CPUS} CPUs; skipped",
            Text(c.name)
        );
        return;
    }
    let stack = kmap::stack_slot(n).stack;
    let mut info = CpuInfo {
        mpidr: c.mpidr,
        state: State::Offline,
        stack,
        why: None,
    };
    if n >= limit {
        info.why = Some(Why::MaxCpus(limit));
    } else {
        match start(n, c.mpidr, c.method) {
            Ok(()) => info.state = State::Online,
            Err(why) => {
                warn!(
                    "cpu {n} ({}, mpidr {:#x}): {why}; going on without it",
                    Text(c.name),
                    c.mpidr
                );
                info.state = State::Failed;
                info.why = Some(why);
            }
        }
    }
    CPUS.lock()[n] = Some(info);
}

/// A secondary's two stacks: its kernel stack, mapped in its stack slot,
/// and its exception stack, reached through the linear map.
struct Stacks {
    window: FixedWindow,
    kernel: PhysAddr,
    exception: PhysAddr,
}

impl Stacks {
    /// CPU `n`'s stacks, or none of them: what was taken before a step
    /// failed is given back.
    fn take(n: usize) -> Result<Stacks, Why> {
        let slot = kmap::stack_slot(n);
        let window = FixedWindow {
            start: slot.stack.0,
            end: slot.stack.1,
            mapping: kmap::mapping("stack"),
        };
        let kernel = frames::alloc_frames(KERNEL_STACK_PAGES).ok_or(Why::NoStack)?;
        if tables::map_fixed(window, kernel, KERNEL_STACK_SIZE).is_err() {
            frames::free_frames_at(kernel, KERNEL_STACK_PAGES);
            return Err(Why::NoStack);
        }
        let Some(exception) = frames::alloc_frames(EXCEPTION_PAGES) else {
            Self::unmap(window);
            frames::free_frames_at(kernel, KERNEL_STACK_PAGES);
            return Err(Why::NoStack);
        };
        Ok(Stacks {
            window,
            kernel,
            exception,
        })
    }

    /// Gives both back: only for a CPU that never ran on them.
    fn give_back(self) {
        Self::unmap(self.window);
        frames::free_frames_at(self.kernel, KERNEL_STACK_PAGES);
        frames::free_frames_at(self.exception, EXCEPTION_PAGES);
    }

    fn unmap(window: FixedWindow) {
        // Mapped just now by `take`, so there is something to clear.
        let _ = tables::unmap(window.start, KERNEL_STACK_SIZE);
    }
}

const KERNEL_STACK_PAGES: u64 = KERNEL_STACK_SIZE / PAGE_SIZE;
const EXCEPTION_PAGES: u64 = EXCEPTION_STACK / PAGE_SIZE;

/// Maps CPU `n`'s stacks, starts it, waits for it to report in. A CPU that
/// certainly never runs (PSCI refused it, by an error it defines) gives its
/// stacks back; one that did not report in, or whose refusal PSCI does not
/// define, keeps them, since it may yet run on them, late.
fn start(n: usize, mpidr: u64, method: EnableMethod) -> Result<(), Why> {
    let preparing = pmu::boot_clock();
    let stacks = Stacks::take(n)?;
    let exception_top = stacks.exception.to_linear().raw() + EXCEPTION_STACK;

    let record = &smp::RECORDS[n];
    record.ttbr1.store(cpu::ttbr1_raw(), Ordering::SeqCst);
    record.ttbr0.store(smp::idmap_root(), Ordering::SeqCst);
    record.entry.store(secondary_main as *const () as u64, Ordering::SeqCst);
    record.first_frame.store(cpu::first_frame(), Ordering::SeqCst);
    record.sp.store(exception_top, Ordering::SeqCst);
    record.cpu.store(n as u64, Ordering::SeqCst);
    let record_va = record as *const smp::BootRecord as u64;
    // The CPU reads it with its MMU off: from memory, not from our cache.
    smp::clean_to_poc(record_va, core::mem::size_of::<smp::BootRecord>() as u64);
    let record_pa = pi::addr::KimgVirt::new(record_va).to_phys().raw();
    let entry = smp::entry_pa();
    debug!(
        "cpu {n}: mpidr {mpidr:#x}, entry pa={entry:#x}, record pa={record_pa:#x}, stack {:#x}-{:#x}",
        stacks.window.start, stacks.window.end
    );
    // What bringing it up costs, from the request to its report (`phases`).
    let asked = counter::now();
    let asked_at = pmu::boot_clock();
    match method {
        EnableMethod::Psci => {
            if let Err(refused) = psci::cpu_on(mpidr, entry, record_pa) {
                if refused.never_started() {
                    stacks.give_back();
                }
                return Err(Why::CpuOn(refused));
            }
        }
        EnableMethod::SpinTable(release) => {
            // The firmware's loop reads the word with its MMU off, and jumps
            // with x0 = 0: the record's address goes where the entry finds it.
            spin_table_release(release, entry, record_pa);
        }
    }
    let deadline = asked + counter::frequency() * REPORT_MS / 1000;
    while !REPORTED[n].load(Ordering::Acquire) {
        if counter::now() > deadline {
            return Err(Why::NoReport);
        }
        smp::wait_for_event();
    }
    let us = (counter::now() - asked) * 1_000_000 / counter::frequency().max(1);
    super::smp_cost::record(
        n,
        super::smp_cost::Cost {
            prepare: asked_at.zip(preparing).map(|(asked, then)| asked - then),
            instructions: pmu::boot_clock().zip(asked_at).map(|(now, then)| now - then),
            micros: us,
        },
    );
    debug!("cpu {n}: online {us} us after it was started");
    Ok(())
}

/// Releases a CPU waiting on a spin-table word: its firmware jumps to the
/// word's value with x0 = 0, so the record's address goes first where the
/// entry looks when x0 is 0 (`smp::SPIN_TABLE_RECORD`), then the entry's
/// address into the word; each is cleaned to the point of coherency, since
/// the waiting CPU reads with its MMU off, and `sev` wakes it from `wfe`.
/// One at a time: a spin-table CPU that reported in too late to count
/// could read the next one's record (the boot CPU starts CPUs in turn and
/// gives each `REPORT_MS`; not guarded further).
fn spin_table_release(release: PhysAddr, entry: u64, record_pa: u64) {
    smp::SPIN_TABLE_RECORD.store(record_pa, Ordering::SeqCst);
    let word = smp::spin_record_va();
    smp::clean_to_poc(word, 8);
    let va = release.to_linear().raw();
    // SAFETY: the release word is in RAM (checked when the tree was read),
    // linear-mapped rw; the firmware's loop only reads it.
    unsafe { (va as *mut u64).write_volatile(entry) };
    smp::clean_to_poc(va, 8);
    smp::wake_all();
}

/// A secondary's first Rust, at its kernel address on its exception stack,
/// MMU on, TPIDR_EL1 = `cpu`.
extern "C" fn secondary_main(cpu_n: u64) -> ! {
    exceptions::install();
    exceptions::take_serrors();
    // Only the MMU switch needed the identity page.
    cpu::disable_ttbr0();
    counter::enable_event_stream();
    let n = cpu_n as usize;
    debug_assert_eq!(percpu::id(), n);
    // Its own timer's interrupt, for the watchdog over module code it runs.
    if let Err(e) = irq::start_this_cpu() {
        warn!("cpu {n} takes no interrupts ({e}): module code it runs is unwatched");
    }
    REPORTED[n].store(true, Ordering::Release);
    smp::wake_all();
    let stacks = cpu::Stacks {
        exception: smp::RECORDS[n].sp.load(Ordering::SeqCst),
        kernel: Some(kmap::stack_slot(n).stack.1),
    };
    // SAFETY: both stacks were mapped for this CPU alone before it started;
    // nothing on the exception stack is used again; `IDLE` is code of the
    // image where it runs now, which never returns.
    unsafe { cpu::continue_on(stacks, IDLE.load(Ordering::SeqCst), [cpu_n, 0, 0], 0) }
}
