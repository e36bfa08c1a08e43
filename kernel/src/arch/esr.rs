//! Decoding exceptions: the vector an exception came through, and what
//! ESR_EL1 (the syndrome register) says about it. Pure, so the words the
//! kernel prints for a fault are tested on the host.

use core::fmt;

/// The 16 vectors: {current EL with SP0, current EL with SPx, lower EL
/// AArch64, lower EL AArch32} x {synchronous, IRQ, FIQ, SError}.
pub const VECTOR_NAMES: [&str; 16] = [
    "sync (EL1t)",
    "irq (EL1t)",
    "fiq (EL1t)",
    "serror (EL1t)",
    "sync",
    "irq",
    "fiq",
    "serror",
    "sync (EL0)",
    "irq (EL0)",
    "fiq (EL0)",
    "serror (EL0)",
    "sync (EL0/32)",
    "irq (EL0/32)",
    "fiq (EL0/32)",
    "serror (EL0/32)",
];

/// Name of an exception class (ESR_EL1.EC).
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC trapped",
        0x18 => "MSR/MRS trapped",
        0x20 => "instruction abort from EL0",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from EL0",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK instruction",
        _ => "other",
    }
}

/// Meaning of a data/instruction fault status code (DFSC/IFSC).
pub fn fault_status(fsc: u64) -> &'static str {
    match fsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x14..=0x17 => "synchronous external abort on a table walk",
        0x21 => "alignment fault",
        _ => "other fault",
    }
}

/// The translation table level a fault status code names: its low two bits,
/// for the kinds that encode one (address size, translation, access flag and
/// permission faults, external aborts on a table walk); `None` for the rest,
/// whose low bits mean something else or nothing.
pub fn fault_level(fsc: u64) -> Option<u64> {
    matches!(fsc, 0x00..=0x07 | 0x09..=0x0b | 0x0d..=0x0f | 0x14..=0x17).then_some(fsc & 3)
}

/// Exception classes the kernel treats specially.
pub mod class {
    /// Unknown reason: an undefined instruction (also `hvc`/`smc` with no
    /// exception level behind them).
    pub const UNKNOWN: u64 = 0x00;
    /// Instruction abort taken without a change of exception level.
    pub const INSTRUCTION_ABORT: u64 = 0x21;
    /// Data abort taken without a change of exception level.
    pub const DATA_ABORT: u64 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGNMENT: u64 = 0x26;
}

/// An ESR_EL1 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syndrome(pub u64);

impl Syndrome {
    /// The exception class (EC, bits 31:26).
    pub fn class(self) -> u64 {
        (self.0 >> 26) & 0x3f
    }

    /// The fault status code of an abort (DFSC/IFSC, bits 5:0).
    pub fn fault_status(self) -> u64 {
        self.0 & 0x3f
    }

    /// Whether this is an instruction or data abort, from EL0 or EL1.
    pub fn is_abort(self) -> bool {
        matches!(self.class(), 0x20 | 0x21 | 0x24 | 0x25)
    }

    /// What a learner should know beyond the reason: an external abort
    /// means the tables were fine and nothing answered at the physical
    /// address; a class EL1 takes only from EL0 (which this kernel never
    /// runs), or never (a trapped `smc`), was trapped by EL2 and handed
    /// down by its vectors (`__pi_el2_vectors`, kernel/pi/src/boot.rs).
    pub fn hint(self) -> Option<&'static str> {
        match self.class() {
            _ if self.is_abort() && self.fault_status() == 0x10 => Some(
                "nothing answered at this address: no RAM or device is behind it (a device tree can name RAM the machine does not have)",
            ),
            0x01 | 0x17 | 0x18 => Some(
                "EL2 trapped this and handed it down: EL1 code never raises this class at EL1 (a trap in HCR_EL2 or a fine-grained trap register that firmware left on, and the EL2 exit did not clear)",
            ),
            _ => None,
        }
    }

    /// What went wrong in an abort, e.g. `permission fault at level 3 on write`;
    /// `None` for other exceptions.
    pub fn abort_reason(self) -> Option<AbortReason> {
        self.is_abort().then_some(AbortReason(self))
    }
}

/// The reason in a few words: an abort's (see [`AbortReason`]), else the
/// exception class's name.
impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.abort_reason() {
            Some(reason) => write!(f, "{reason}"),
            None => write!(f, "{}", class_name(self.class())),
        }
    }
}

/// Why an abort happened: the fault status, the table level it names (if it
/// names one), and for data aborts whether it was a write (WnR, bit 6).
#[derive(Clone, Copy, Debug)]
pub struct AbortReason(Syndrome);

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fsc = self.0.fault_status();
        write!(f, "{}", fault_status(fsc))?;
        if let Some(level) = fault_level(fsc) {
            write!(f, " at level {level}")?;
        }
        if self.0.class() >= 0x24 && self.0.0 & (1 << 6) != 0 {
            write!(f, " on write")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESR values the kernel's own faults produce under QEMU.
    #[test]
    fn real_syndromes_decode() {
        // `crash null`: a translation fault at level 0 on a read.
        let null = Syndrome(0x9600_0004);
        assert_eq!(null.class(), class::DATA_ABORT);
        assert_eq!(class_name(null.class()), "data abort");
        assert_eq!(null.abort_reason().unwrap().to_string(), "translation fault at level 0");
        // `crash write-text`: a permission fault at level 3 on a write.
        let write = Syndrome(0x9600_004f);
        assert_eq!(
            write.abort_reason().unwrap().to_string(),
            "permission fault at level 3 on write"
        );
        // `crash exec-data`: an instruction abort (never "on write": no WnR).
        let exec = Syndrome(0x8600_004f);
        assert_eq!(class_name(exec.class()), "instruction abort");
        assert_eq!(exec.abort_reason().unwrap().to_string(), "permission fault at level 3");
        // `crash brk` is not an abort.
        let brk = Syndrome(0xf200_1234);
        assert_eq!(class_name(brk.class()), "BRK instruction");
        assert!(brk.abort_reason().is_none());
        assert_eq!(brk.to_string(), "BRK instruction");
        assert_eq!(null.to_string(), "translation fault at level 0");
        // An alignment fault names no level.
        assert_eq!(
            Syndrome(0x9600_0061).abort_reason().unwrap().to_string(),
            "alignment fault on write"
        );
    }

    /// The classes EL1 never raises at EL1 are said to come from EL2; the
    /// rest (an undefined instruction, an FP trap EL1's own CPACR_EL1 can
    /// cause, a BRK) are not.
    #[test]
    fn only_classes_el1_never_raises_are_said_to_come_from_el2() {
        let from_el2 = |ec: u64| Syndrome(ec << 26).hint().is_some_and(|h| h.starts_with("EL2 trapped"));
        assert!([0x01, 0x17, 0x18].into_iter().all(from_el2));
        // An `hvc` reaches EL1 only as an undefined instruction (EL2's
        // vectors hand it down so).
        assert!(![0x00, 0x07, 0x15, 0x16, 0x25, 0x3c].into_iter().any(from_el2));
    }

    /// A level is printed only where the fault status code encodes one.
    #[test]
    fn only_codes_with_a_level_print_one() {
        let reason = |esr: u64| Syndrome(esr).abort_reason().unwrap().to_string();
        // A synchronous external abort (0x10) is not at "level 0".
        assert_eq!(reason(0x9600_0010), "synchronous external abort");
        assert!(Syndrome(0x9600_0050).hint().unwrap().contains("nothing answered"));
        assert_eq!(Syndrome(0x9600_0004).hint(), None, "a translation fault is the tables'");
        assert_eq!(Syndrome(0x9600_0014).hint(), None, "so is an abort on a table walk");
        assert_eq!(reason(0x8600_0010), "synchronous external abort");
        // One on a table walk names the walk's level.
        assert_eq!(
            reason(0x9600_0016),
            "synchronous external abort on a table walk at level 2"
        );
        assert_eq!(reason(0x9600_0009), "access flag fault at level 1");
        assert_eq!(reason(0x9600_0001), "address size fault at level 1");
        // TLB conflict (0x30), and codes with no name, print none.
        assert_eq!(reason(0x9600_0030), "other fault");
        assert_eq!(reason(0x9600_0008), "other fault");
        for fsc in 0..64 {
            let text = reason(0x9600_0000 | fsc);
            assert_eq!(
                text.contains(" at level "),
                fault_level(fsc).is_some(),
                "{fsc:#x}: {text}"
            );
            if fault_status(fsc) == "other fault" {
                assert_eq!(fault_level(fsc), None, "{fsc:#x}: a level for a fault we do not name");
            }
        }
    }

    #[test]
    fn every_status_and_class_has_a_name() {
        for code in 0..64 {
            assert!(!fault_status(code).is_empty());
            assert!(!class_name(code).is_empty());
        }
        assert_eq!(fault_status(0x07), "translation fault");
        assert_eq!(fault_status(0x0b), "access flag fault");
        assert_eq!(class_name(0x3f), "other");
        assert_eq!(VECTOR_NAMES[0], "sync (EL1t)");
        assert_eq!(VECTOR_NAMES[4], "sync");
    }
}
