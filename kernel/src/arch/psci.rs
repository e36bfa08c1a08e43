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

/// PSCI_VERSION: the firmware's PSCI version, major in bits 31:16.
const PSCI_VERSION: u64 = 0x8400_0000;
/// SYSTEM_OFF: does not return if it works.
const SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET: does not return if it works.
const SYSTEM_RESET: u64 = 0x8400_0009;

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
}

/// The conduit the device tree names, once boot has read it.
static CONDUIT: Once<Option<PsciConduit>> = Once::new();

/// Uses `conduit` (what the device tree's `/psci` says) from now on.
pub fn use_conduit(conduit: Option<PsciConduit>) {
    CONDUIT.call_once(|| conduit);
}

/// The conduit in use: the tree's, or — before the tree is read, or if it
/// names none — HVC, which QEMU `virt` without EL2/EL3 firmware answers.
fn conduit() -> PsciConduit {
    CONDUIT.get().copied().flatten().unwrap_or(PsciConduit::Hvc)
}

/// The conduit's name, as the device tree spells it.
pub fn name() -> &'static str {
    match conduit() {
        PsciConduit::Hvc => "hvc",
        PsciConduit::Smc => "smc",
    }
}

/// Calls `function` over `conduit`: x0 afterwards, or `None` if nothing
/// answers there (the instruction trapped).
fn call(function: u64) -> Option<u64> {
    // SAFETY: a PSCI function ID in x0 with no other arguments; the call
    // writes no memory of ours, and a trap is caught by the exception table.
    let answer = unsafe {
        match conduit() {
            PsciConduit::Hvc => splitmap_psci_hvc(function),
            PsciConduit::Smc => splitmap_psci_smc(function),
        }
    };
    (answer.trapped == 0).then_some(answer.value)
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
    crate::println!(
        "splitmap: power-off is unavailable: PSCI does not answer over {}; halted (Ctrl-A X leaves QEMU)",
        name()
    );
    super::cpu::park()
}

/// Resets the machine: how a failure ends (a panic, a fatal report). The
/// host tool runs QEMU with `-no-reboot`, so QEMU exits, and tells the tool
/// over its control socket that the guest asked for a reset: a verdict no
/// console text can forge, unlike the `kernel panic:` line. If the firmware
/// does not answer, says so in a line of its own and parks the CPU.
pub fn system_reset() -> ! {
    let _ = call(SYSTEM_RESET);
    crate::println!(
        "splitmap: reset is unavailable: PSCI does not answer over {}; halted (Ctrl-A X leaves QEMU)",
        name()
    );
    super::cpu::park()
}

super::extable::covered_routine!("splitmap_psci_hvc", "hvc #0");
super::extable::covered_routine!("splitmap_psci_smc", "smc #0");
