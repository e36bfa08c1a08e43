//! Power control through PSCI, over the conduit the device tree names.
//!
//! Each call goes through a routine whose `hvc`/`smc` has an exception-table
//! entry: on a machine with no firmware behind the conduit (QEMU `virt`
//! without EL3 takes `smc` as an undefined instruction) the call reports it
//! instead of faulting, so `poweroff` and the panic path can say power-off is
//! unavailable and halt, rather than fault, panic and try again forever.
//! (The `smccc` crate's calls are plain inline `hvc`/`smc`, which an
//! exception table cannot cover; hence these few lines of our own.)

use spin::Once;

use super::conduit::PsciConduit;
use super::once::WriteOnce;

/// PSCI_VERSION: the firmware's PSCI version, major in bits 31:16.
const PSCI_VERSION: u64 = 0x8400_0000;
/// SYSTEM_OFF: does not return if it works.
const SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET: does not return if it works.
const SYSTEM_RESET: u64 = 0x8400_0009;
/// CPU_ON (SMC64): target MPIDR, entry point (physical), context ID.
const CPU_ON: u64 = 0xc400_0003;

#[repr(C)]
struct Answer {
    /// x0 after the call.
    value: u64,
    /// 1 if the conduit instruction trapped.
    trapped: u64,
}

unsafe extern "C" {
    fn splitmap_psci_hvc(function: u64) -> Answer;
    fn splitmap_psci_smc(function: u64) -> Answer;
    fn splitmap_psci_hvc3(function: u64, a1: u64, a2: u64, a3: u64) -> Answer;
    fn splitmap_psci_smc3(function: u64, a1: u64, a2: u64, a3: u64) -> Answer;
}

/// The conduit the device tree names, once boot has read it.
static CONDUIT: WriteOnce<Option<PsciConduit>> = WriteOnce::new(None);

/// Uses `conduit` (what the device tree's `/psci` says) from now on; `None`
/// (a tree without `/psci`, as the Raspberry Pi's) means no PSCI call at all.
pub fn use_conduit(conduit: Option<PsciConduit>) {
    CONDUIT.set(conduit);
}

/// The conduit in use: the tree's, none if it names none, or — before the
/// tree is read — HVC, which QEMU `virt` without EL2/EL3 firmware answers
/// (and which, on a board entered at EL2, the early code made undefined,
/// or on a CPU with EL3 EL2's vectors hand down as undefined, so the guess
/// traps and is caught rather than hanging).
fn conduit() -> Option<PsciConduit> {
    CONDUIT.get().map_or(Some(PsciConduit::Hvc), |c| *c)
}

/// The conduit's name, as the device tree spells it (`none` without `/psci`).
pub fn name() -> &'static str {
    match conduit() {
        Some(PsciConduit::Hvc) => "hvc",
        Some(PsciConduit::Smc) => "smc",
        None => "none",
    }
}

/// Whether there is a conduit to call PSCI over.
pub fn present() -> bool {
    conduit().is_some()
}

/// Calls `function` over `conduit`: x0 afterwards, or `None` if there is no
/// conduit or nothing answers there (the instruction trapped).
fn call(function: u64) -> Option<u64> {
    let conduit = conduit()?;
    // SAFETY: a PSCI function ID in x0 with no other arguments; the call
    // writes no memory of ours, and a trap is caught by the exception table.
    let answer = unsafe {
        match conduit {
            PsciConduit::Hvc => splitmap_psci_hvc(function),
            PsciConduit::Smc => splitmap_psci_smc(function),
        }
    };
    (answer.trapped == 0).then_some(answer.value)
}

/// Why PSCI `CPU_ON` did not start a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuOnError {
    /// No conduit, or nothing answers over it.
    NoPsci,
    /// The firmware's answer: a PSCI error code.
    Refused(i32),
}

impl core::fmt::Display for CpuOnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpuOnError::NoPsci => write!(f, "PSCI does not answer over {}", name()),
            CpuOnError::Refused(code) => {
                let what = match code {
                    -1 => "NOT_SUPPORTED",
                    -2 => "INVALID_PARAMETERS",
                    -3 => "DENIED",
                    -4 => "ALREADY_ON",
                    -5 => "ON_PENDING",
                    -6 => "INTERNAL_FAILURE",
                    -9 => "INVALID_ADDRESS",
                    _ => "an unknown error",
                };
                write!(f, "PSCI CPU_ON refused it: {what} ({code})")
            }
        }
    }
}

impl CpuOnError {
    /// Whether the CPU certainly never runs from this request: no call was
    /// made, or PSCI answered with an error it defines as a refusal.
    /// ON_PENDING (a start under way) and codes PSCI does not define are
    /// not.
    pub fn never_started(self) -> bool {
        match self {
            CpuOnError::NoPsci => true,
            CpuOnError::Refused(code) => matches!(code, -1 | -2 | -3 | -4 | -6 | -9),
        }
    }
}

/// Asks the firmware to start the CPU whose MPIDR affinity is `mpidr` at
/// physical address `entry`, with `context` in its x0.
///
/// # Errors
/// [`CpuOnError`]: the CPU was not started.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), CpuOnError> {
    let conduit = conduit().ok_or(CpuOnError::NoPsci)?;
    // SAFETY: CPU_ON writes no memory of ours; the caller vouches that
    // `entry` is code a CPU may start at with `context`; a trap is caught.
    let answer = unsafe {
        match conduit {
            PsciConduit::Hvc => splitmap_psci_hvc3(CPU_ON, mpidr, entry, context),
            PsciConduit::Smc => splitmap_psci_smc3(CPU_ON, mpidr, entry, context),
        }
    };
    if answer.trapped != 0 {
        return Err(CpuOnError::NoPsci);
    }
    match answer.value as u32 as i32 {
        0 => Ok(()),
        code => Err(CpuOnError::Refused(code)),
    }
}

/// A board's own power control, for a tree without `/psci`: lent by boot
/// once the tree names the hardware (arch cannot map its registers).
#[derive(Clone, Copy)]
pub struct BoardPower {
    /// Its name, for messages.
    pub name: &'static str,
    /// Powers the machine off; returns only if that did not happen.
    pub off: fn(),
    /// Resets the machine; returns only if that did not happen.
    pub reset: fn(),
}

static BOARD_POWER: Once<BoardPower> = Once::new();

/// Uses `power` for `system_off` and `system_reset` where there is no PSCI.
pub fn use_board_power(power: BoardPower) {
    BOARD_POWER.call_once(|| power);
}

/// The board's power control, if boot lent one.
pub fn board_power() -> Option<BoardPower> {
    BOARD_POWER.get().copied()
}

/// The firmware's PSCI version (major, minor), if it answers.
pub fn version() -> Option<(u16, u16)> {
    let v = call(PSCI_VERSION)?;
    // A negative (32-bit) answer is an error code, not a version.
    ((v as u32 as i32) >= 0).then_some(((v >> 16) as u16, v as u16))
}

/// Powers the machine off: how a clean session ends (QEMU exits with
/// status 0, and tells the host tool the guest shut down). If the firmware does
/// not answer or refuses, says so and parks the CPU: never returns.
pub fn system_off() -> ! {
    let _ = call(SYSTEM_OFF);
    if let Some(board) = board_power() {
        (board.off)();
        crate::println!(
            "splitmap: power-off through the {} did not happen; halted (Ctrl-A X leaves QEMU)",
            board.name
        );
    } else if present() {
        crate::println!(
            "splitmap: power-off is unavailable: PSCI does not answer over {}; halted (Ctrl-A X leaves QEMU)",
            name()
        );
    } else {
        crate::println!(
            "splitmap: power-off is unavailable: the device tree names neither PSCI nor a power controller; halted (Ctrl-A X leaves QEMU)"
        );
    }
    super::cpu::park()
}

/// Resets the machine: how a failure ends (a panic, a fatal report). The
/// host tool runs QEMU with `-no-reboot`, so QEMU exits, and tells the tool
/// over its control socket that the guest asked for a reset: a verdict no
/// console text can forge, unlike the `kernel panic:` line. If the firmware
/// does not answer, says so in a line of its own and parks the CPU.
pub fn system_reset() -> ! {
    let _ = call(SYSTEM_RESET);
    if let Some(board) = board_power() {
        (board.reset)();
        crate::println!(
            "splitmap: reset is unavailable: the {} did not reset the machine; halted (Ctrl-A X leaves QEMU)",
            board.name
        );
    } else if present() {
        crate::println!(
            "splitmap: reset is unavailable: PSCI does not answer over {}; halted (Ctrl-A X leaves QEMU)",
            name()
        );
    } else {
        crate::println!(
            "splitmap: reset is unavailable: the device tree names neither PSCI nor a power controller; halted (Ctrl-A X leaves QEMU)"
        );
    }
    super::cpu::park()
}

super::extable::covered_routine!("splitmap_psci_hvc", "hvc #0");
super::extable::covered_routine!("splitmap_psci_smc", "smc #0");
// The same instructions with x1-x3 as the caller passed them.
super::extable::covered_routine!("splitmap_psci_hvc3", "hvc #0");
super::extable::covered_routine!("splitmap_psci_smc3", "smc #0");
