//! Interrupts: counting them, and the watchdog over module code that they
//! exist for.
//!
//! The discipline, stated once:
//! - IRQs are masked (PSTATE.I) everywhere but inside a call into module
//!   code ([`watch`], taken by `recovery::run_untrusted`) and while a test
//!   waits for a tick ([`tick_within`]). Kernel code therefore never meets an
//!   interrupt unless it runs for a module (an export). The handler's
//!   counting takes no lock and allocates nothing, since it may interrupt a
//!   lock holder; the watchdog's report prints and allocates, which is safe
//!   only because it runs when `recovery::containable` found no lock held
//!   and the interrupted code is the module's own, not an export's.
//! - The handler acknowledges, counts, stops or moves the timer so its
//!   level-triggered line drops, and only then ends the interrupt (EOI); a
//!   spurious INTID (1023) is counted and never ended.
//! - Every CPU takes its own timer's interrupt: each has its own CPU
//!   interface (GICv2's banked registers, GICv3's redistributor and system
//!   registers), its own timer and PPI, its own deadline and counts. The
//!   boot CPU sets the GIC up ([`start`]); each secondary its own interface
//!   as it comes up ([`start_this_cpu`]). A CPU whose interface could not
//!   be set up runs module code unwatched, IRQs masked: [`watch`] arms
//!   nothing there, so no timer line is left raised unheard.
//! - A watchdog that expires is returned to the exception handler, which
//!   ends the module's call as a contained fault when it interrupted the
//!   module's own code with no kernel lock held, and otherwise calls
//!   [`look_again_soon`]: the export at work finishes and the next tick
//!   decides.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::lock::Mutex;
use super::percpu::{self, MAX_CPUS};
use super::{counter, gic, timer};

/// The timer's INTID (0 until the GIC is set up with it).
static TIMER_INTID: AtomicU32 = AtomicU32::new(0);
/// `module.watchdog=` in milliseconds (0: off).
static WATCHDOG_MS: AtomicU64 = AtomicU64::new(0);
/// Set once the GIC is up at the boot CPU: the others may set up theirs.
static GIC_UP: AtomicBool = AtomicBool::new(false);

/// One CPU's part.
struct PerCpu {
    /// Its CPU interface is up: it can take interrupts.
    up: AtomicBool,
    /// Interrupts taken: the timer's, spurious ones, any other.
    timer: AtomicU64,
    spurious: AtomicU64,
    other: AtomicU64,
    /// The virtual count at which its running module call's watchdog
    /// expires (0: none is running).
    deadline: AtomicU64,
    /// Nested module calls under way (the outermost one is watched).
    depth: AtomicU32,
}

static CPUS: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        up: AtomicBool::new(false),
        timer: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
        other: AtomicU64::new(0),
        deadline: AtomicU64::new(0),
        depth: AtomicU32::new(0),
    }
}; MAX_CPUS];

/// This CPU's part.
fn this_cpu() -> &'static PerCpu {
    &CPUS[percpu::id()]
}

/// How long after a watchdog found kernel code running (an export) it looks again.
const RECHECK_MS: u64 = 10;

/// Makes the timer's interrupt `intid` the watchdog's, over module calls
/// `watchdog_ms` long at most (0: unwatched). On the boot CPU, the GIC up
/// with it there.
pub fn start(intid: u32, watchdog_ms: u64) {
    TIMER_INTID.store(intid, Ordering::SeqCst);
    WATCHDOG_MS.store(watchdog_ms, Ordering::SeqCst);
    this_cpu().up.store(true, Ordering::SeqCst);
    GIC_UP.store(true, Ordering::SeqCst);
}

/// Why each CPU whose interface the GIC refused has none, for `irqs`.
static REFUSED: Mutex<[Option<gic::GicError>; MAX_CPUS]> = Mutex::new([None; MAX_CPUS]);

/// Sets up this CPU's own interface for the timer's interrupt, as the boot
/// CPU's was: on a secondary, as it comes up. Nothing without a GIC.
///
/// # Errors
/// Why the GIC refused (kept for [`refused`]): the CPU then runs module
/// code unwatched.
pub fn start_this_cpu() -> Result<(), gic::GicError> {
    if !GIC_UP.load(Ordering::SeqCst) {
        return Ok(());
    }
    if let Err(why) = gic::init_this_cpu(TIMER_INTID.load(Ordering::SeqCst)) {
        REFUSED.lock()[percpu::id()] = Some(why);
        return Err(why);
    }
    this_cpu().up.store(true, Ordering::SeqCst);
    Ok(())
}

/// Each CPU whose interface the GIC refused, and why.
pub fn refused() -> impl Iterator<Item = (usize, gic::GicError)> {
    let refused = *REFUSED.lock();
    (0..MAX_CPUS).filter_map(move |cpu| Some((cpu, refused[cpu]?)))
}

/// Whether this CPU can take interrupts (a GIC and the timer were found,
/// and its interface is set up).
pub fn ready() -> bool {
    this_cpu().up.load(Ordering::SeqCst)
}

/// The watchdog's period in milliseconds (0: off).
pub fn watchdog_ms() -> u64 {
    WATCHDOG_MS.load(Ordering::SeqCst)
}

/// One interrupt source at one CPU, for `irqs`.
pub struct Source {
    /// Its INTID.
    pub intid: u32,
    /// What raises it.
    pub name: &'static str,
    /// How many times it was taken.
    pub count: u64,
    /// The CPU that took them.
    pub cpu: usize,
}

/// Every source at every CPU that takes interrupts, CPU by CPU, with its
/// count (`other` only once one was taken).
pub fn sources() -> impl Iterator<Item = Source> {
    let intid = TIMER_INTID.load(Ordering::SeqCst);
    (0..MAX_CPUS)
        .filter(|&n| CPUS[n].up.load(Ordering::SeqCst))
        .flat_map(move |cpu| {
            let c = &CPUS[cpu];
            let source = |intid, name, count: &AtomicU64| Source {
                intid,
                name,
                count: count.load(Ordering::SeqCst),
                cpu,
            };
            let other = source(0, "other", &c.other);
            [
                source(intid, "timer", &c.timer),
                source(gic::SPURIOUS, "spurious", &c.spurious),
            ]
            .into_iter()
            .chain((other.count > 0).then_some(other))
        })
}

/// The timer interrupts this CPU took so far.
pub fn timer_count() -> u64 {
    this_cpu().timer.load(Ordering::SeqCst)
}

/// Masks IRQs at this CPU.
pub fn mask() {
    // SAFETY: sets PSTATE.I. Not `nomem`: a compiler barrier too, so no
    // memory access the handler shares moves across the change (as Linux's
    // local_irq_disable has a "memory" clobber).
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs at this CPU: only where the module comment allows.
fn unmask() {
    // SAFETY: clears PSTATE.I; the handler is installed before `ready`. A
    // compiler barrier too (not `nomem`), so the deadline's store is made
    // before an interrupt can read it.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
}

/// A module call under the watchdog: from [`watch`] until dropped.
pub struct Watch {
    outermost: bool,
}

/// Starts watching a call into module code: the timer armed for the
/// watchdog's period, IRQs unmasked. Nothing if there is no GIC or the
/// watchdog is off (the call runs unwatched, IRQs masked); an inner call
/// leaves the outer one's watch as it is.
pub fn watch() -> Watch {
    let outermost = this_cpu().depth.fetch_add(1, Ordering::SeqCst) == 0;
    let ms = watchdog_ms();
    if outermost && ready() && ms > 0 {
        let deadline = timer::after_ms(ms);
        this_cpu().deadline.store(deadline, Ordering::SeqCst);
        timer::fire_at(deadline);
        unmask();
    }
    Watch { outermost }
}

impl Drop for Watch {
    /// The call ended (returned, or resumed at its recovery point after a
    /// fault): IRQs masked again, the timer stopped.
    fn drop(&mut self) {
        if self.outermost {
            mask();
            this_cpu().deadline.store(0, Ordering::SeqCst);
            if ready() {
                timer::stop();
            }
        }
        this_cpu().depth.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an interrupt asks of the exception handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing: counted and ended.
    Handled,
    /// The watchdog expired after this many milliseconds.
    Expired(u64),
}

/// Takes one interrupt (IRQs masked, as exception entry leaves them).
pub fn handle() -> Event {
    let (iar, intid) = gic::acknowledge();
    let me = this_cpu();
    if intid >= 1020 {
        me.spurious.fetch_add(1, Ordering::SeqCst);
        return Event::Handled;
    }
    let event = if intid == TIMER_INTID.load(Ordering::SeqCst) {
        me.timer.fetch_add(1, Ordering::SeqCst);
        timer_fired()
    } else {
        me.other.fetch_add(1, Ordering::SeqCst);
        Event::Handled
    };
    // The timer is stopped or moved on, so its level-triggered line drops;
    // the GIC may still see it high for a moment and pend it again, which
    // arrives as a tick with nothing due (handled as such).
    gic::end(iar);
    event
}

/// The timer's interrupt: the watchdog's deadline passed, or a test's tick.
fn timer_fired() -> Event {
    match this_cpu().deadline.load(Ordering::SeqCst) {
        0 => {
            timer::stop();
            Event::Handled
        }
        deadline if counter::now() >= deadline => {
            timer::stop();
            Event::Expired(watchdog_ms())
        }
        // Early (a tick asked for before the call): wait for the deadline.
        deadline => {
            timer::fire_at(deadline);
            Event::Handled
        }
    }
}

/// How long past its deadline this CPU's running module call is, in
/// milliseconds (0 if none runs or it is not yet due).
pub fn overdue_ms() -> u64 {
    let deadline = this_cpu().deadline.load(Ordering::SeqCst);
    let now = counter::now();
    if deadline == 0 || now < deadline {
        return 0;
    }
    (now - deadline) * 1000 / counter::frequency().max(1)
}

/// The watchdog expired where the call cannot be ended (a kernel lock is
/// held): look again shortly.
pub fn look_again_soon() {
    timer::fire_at(timer::after_ms(RECHECK_MS));
}

/// Arms the timer `micros` ahead, unmasks IRQs and polls for up to
/// `limit_ms` until a tick is taken; masks them again. Whether one came.
/// For the in-kernel test, outside any module call.
pub fn tick_within(micros: u64, limit_ms: u64) -> bool {
    if !ready() || this_cpu().depth.load(Ordering::SeqCst) != 0 {
        return false;
    }
    let before = timer_count();
    let ticks = counter::frequency() * micros / 1_000_000;
    timer::fire_at(counter::now() + ticks.max(1));
    let give_up = timer::after_ms(limit_ms);
    unmask();
    while timer_count() == before && counter::now() < give_up {
        core::hint::spin_loop();
    }
    mask();
    timer::stop();
    timer_count() > before
}
