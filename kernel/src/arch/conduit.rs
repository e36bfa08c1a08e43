//! How calls reach the firmware: the PSCI conduit a device tree names
//! (`/psci` `method`). Pure, so the device tree reader can name it.

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `hvc #0` (QEMU `virt` without EL2/EL3 firmware).
    Hvc,
    /// `smc #0`.
    Smc,
}
