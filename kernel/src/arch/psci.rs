//! Power control through PSCI, over the conduit the device tree names.

use smccc::{Hvc, Smc, psci};

use crate::boot::dtb::PsciConduit;

/// Powers the machine off (QEMU exits with status 0). Falls back to parking
/// the CPU if the firmware refuses, so this never returns either way.
pub fn system_off(conduit: Option<PsciConduit>) -> ! {
    let _ = match conduit {
        Some(PsciConduit::Smc) => psci::system_off::<Smc>(),
        // QEMU `virt` without EL2/EL3 firmware answers HVC; try it when the
        // tree said nothing.
        Some(PsciConduit::Hvc) | None => psci::system_off::<Hvc>(),
    };
    super::cpu::park()
}
