//! The instructions a module may not contain. A module runs at EL1 with the
//! kernel; nothing at EL1 can pre-empt code that masks interrupts itself
//! (`msr daifset`, then `wfi` or `b .`), that leaves the exception level
//! (`eret`), calls a hypervisor or the secure monitor (`hvc`, `smc`), or
//! rewrites a system register (the vector base, the page tables, the
//! control register). The loader decodes every 4-byte word of a module's
//! code by its encoding (the ARM ARM's branches, exception generation and
//! system instructions class) and refuses the module, by section and
//! offset, before any of it runs.
//!
//! What stays allowed, and why:
//! - `mrs` (reading a system register): it changes nothing, so nothing
//!   needs pre-empting it. A module already shares the kernel's memory;
//!   the scan does not pretend to keep kernel state secret from it.
//! - `msr` to NZCV, FPCR and FPSR: the code's own flags and floating-point
//!   state, which compiled Rust may write.
//! - `cfinv`, `xaflag`, `axflag`: flag manipulation, written as `msr`
//!   (immediate) with no PSTATE field.
//! - `sys` with op1 = 3 (`dc civac`, `dc zva`, `ic ivau`: the maintenance EL0
//!   may do too); `svc`, `brk`, `hlt`, `udf`: each traps to the kernel,
//!   which contains it like any fault.
//!
//! What no scan can refuse: a plain `b .`, or any loop that never returns,
//! with interrupts left as they were. Only a timer interrupt with a watchdog
//! behind it can end those (docs/modules.md).
//!
//! Data in code would be scanned as instructions: a literal pool word that
//! happened to encode `wfi` would refuse the module. Rust (LLVM) for
//! aarch64 places no literal pools in text: constants are built with
//! `mov`/`movk` or loaded from `.rodata` with `adrp`/`ldr`. The host tests
//! check that no sample module in modules/ is refused.

use core::fmt;

/// An instruction a module may not contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privileged {
    /// `msr daifset, #imm`: masks interrupts.
    DaifSet,
    /// `msr daifclr, #imm`: unmasks interrupts the kernel masked.
    DaifClr,
    /// `msr spsel, #imm`: switches the stack pointer.
    SpSel,
    /// `msr` (immediate) to another PSTATE field: (op1, op2).
    Pstate(u8, u8),
    /// `msr` (register) to a system register: (op0, op1, CRn, CRm, op2).
    Msr(SysReg),
    /// `sys` with op1 other than 3: EL1 cache, TLB or address translation
    /// maintenance (`tlbi`, `ic iallu`, `at`, …).
    Sys(SysReg),
    /// `eret` (or a pointer-authenticated form): leaves EL1.
    Eret,
    /// `drps`: a debug-state return.
    Drps,
    /// `hvc #imm`: calls the hypervisor.
    Hvc(u16),
    /// `smc #imm`: calls the secure monitor.
    Smc(u16),
    /// `wfi`: waits for an interrupt.
    Wfi,
    /// `wfe`: waits for an event.
    Wfe,
    /// `wfit`/`wfet`: waits, with a timeout from a register.
    WaitTimeout,
}

/// A system register's encoding, named as `mrs`/`msr` name it when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg {
    /// op0.
    pub op0: u8,
    /// op1.
    pub op1: u8,
    /// CRn.
    pub crn: u8,
    /// CRm.
    pub crm: u8,
    /// op2.
    pub op2: u8,
}

impl SysReg {
    fn of(insn: u32) -> Self {
        SysReg {
            op0: ((insn >> 19) & 3) as u8,
            op1: ((insn >> 16) & 7) as u8,
            crn: ((insn >> 12) & 0xf) as u8,
            crm: ((insn >> 8) & 0xf) as u8,
            op2: ((insn >> 5) & 7) as u8,
        }
    }

    /// Its architectural name, for the registers a hostile module would
    /// most likely write.
    fn name(self) -> Option<&'static str> {
        let SysReg {
            op0,
            op1,
            crn,
            crm,
            op2,
        } = self;
        Some(match (op0, op1, crn, crm, op2) {
            (3, 0, 1, 0, 0) => "sctlr_el1",
            (3, 0, 2, 0, 0) => "ttbr0_el1",
            (3, 0, 2, 0, 1) => "ttbr1_el1",
            (3, 0, 2, 0, 2) => "tcr_el1",
            (3, 0, 4, 0, 0) => "spsr_el1",
            (3, 0, 4, 0, 1) => "elr_el1",
            (3, 0, 4, 1, 0) => "sp_el0",
            (3, 0, 4, 2, 0) => "spsel",
            (3, 3, 4, 2, 1) => "daif",
            (3, 0, 10, 2, 0) => "mair_el1",
            (3, 0, 12, 0, 0) => "vbar_el1",
            (3, 0, 13, 0, 4) => "tpidr_el1",
            (3, 3, 14, 2, 1) => "cntp_ctl_el0",
            (3, 3, 14, 2, 2) => "cntp_cval_el0",
            (3, 3, 14, 3, 1) => "cntv_ctl_el0",
            _ => return None,
        })
    }

    /// NZCV, FPCR, FPSR: the code's own state, which compiled code writes.
    fn own_state(self) -> bool {
        matches!(
            (self.op0, self.op1, self.crn, self.crm, self.op2),
            (3, 3, 4, 2, 0) | (3, 3, 4, 4, 0) | (3, 3, 4, 4, 1)
        )
    }
}

impl fmt::Display for SysReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "s{}_{}_c{}_c{}_{}", self.op0, self.op1, self.crn, self.crm, self.op2),
        }
    }
}

impl fmt::Display for Privileged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Privileged::*;
        match self {
            DaifSet => write!(
                f,
                "msr daifset masks interrupts, which no watchdog could then interrupt"
            ),
            DaifClr => write!(f, "msr daifclr unmasks interrupts the kernel masked"),
            SpSel => write!(f, "msr spsel switches the stack pointer under the kernel"),
            Pstate(op1, op2) => write!(f, "msr to PSTATE field op1={op1} op2={op2} changes processor state"),
            Msr(r) if r.op0 == 3 && r.op1 == 3 && r.crn == 4 && r.crm == 2 && r.op2 == 1 => {
                write!(
                    f,
                    "msr daif sets the interrupt masks, which no watchdog could then interrupt"
                )
            }
            Msr(r) => write!(f, "msr {r} writes a system register the kernel owns"),
            Sys(r) => write!(f, "sys {r} does EL1 cache, TLB or translation maintenance"),
            Eret => write!(f, "eret leaves the kernel's exception level"),
            Drps => write!(f, "drps returns from debug state"),
            Hvc(imm) => write!(f, "hvc #{imm:#x} calls the hypervisor"),
            Smc(imm) => write!(f, "smc #{imm:#x} calls the secure monitor"),
            Wfi => write!(f, "wfi waits for an interrupt that, masked, never comes"),
            Wfe => write!(f, "wfe waits for an event that may never come"),
            WaitTimeout => write!(f, "wfit/wfet waits on the kernel's CPU"),
        }
    }
}

/// What `insn` (one little-endian instruction word) is, if a module may not
/// contain it.
// Inlined into the scan: most words leave at the first test, and with a
// call per word farcalls.ko's two scans took 22,000 instructions (9,000 now).
#[inline]
pub fn privileged(insn: u32) -> Option<Privileged> {
    use Privileged::*;
    // Everything refused below is in the branches, exception generation and
    // system instructions class with op0 = 110 (bits 31:26 = 110101: top
    // byte 0xd4 to 0xd7), where few of a module's words are: one test lets
    // the others through.
    if insn >> 26 != 0b11_0101 {
        return None;
    }
    // Exception generation: 1101 0100 opc(3) imm16 op2(3) LL(2).
    if insn & 0xffe0_001f == 0xd400_0002 {
        return Some(Hvc(((insn >> 5) & 0xffff) as u16));
    }
    if insn & 0xffe0_001f == 0xd400_0003 {
        return Some(Smc(((insn >> 5) & 0xffff) as u16));
    }
    // Unconditional branch (register): eret, eretaa, eretab, drps.
    match insn {
        0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff => return Some(Eret),
        0xd6bf_03e0 => return Some(Drps),
        // Hints: wfe, wfi.
        0xd503_205f => return Some(Wfe),
        0xd503_207f => return Some(Wfi),
        _ => {}
    }
    // wfet, wfit: 1101 0101 0000 0011 0001 0000 00x Rd.
    if insn & 0xffff_ffc0 == 0xd503_1000 {
        return Some(WaitTimeout);
    }
    // MSR (immediate): 1101 0101 0000 0 op1 0100 CRm op2 11111.
    if insn & 0xfff8_f01f == 0xd500_401f {
        let (op1, op2) = (((insn >> 16) & 7) as u8, ((insn >> 5) & 7) as u8);
        return match (op1, op2) {
            // cfinv, xaflag, axflag: the flags only.
            (0, 0..=2) => None,
            (0, 5) => Some(SpSel),
            (3, 6) => Some(DaifSet),
            (3, 7) => Some(DaifClr),
            _ => Some(Pstate(op1, op2)),
        };
    }
    // MSR (register): 1101 0101 0001 o0 op1 CRn CRm op2 Rt (op0 = 2 | o0).
    if insn & 0xfff0_0000 == 0xd510_0000 {
        let r = SysReg::of(insn);
        return (!r.own_state()).then_some(Msr(r));
    }
    // SYS: 1101 0101 0000 1 op1 CRn CRm op2 Rt; op1 = 3 is EL0's share.
    if insn & 0xfff8_0000 == 0xd508_0000 {
        let r = SysReg::of(insn);
        return (r.op1 != 3).then_some(Sys(r));
    }
    None
}

/// The first instruction of `code` (a section's bytes, 4-aligned) a module
/// may not contain: its offset in `code` and what it is. A trailing partial
/// word is no instruction and is ignored.
pub fn first_privileged(code: &[u8]) -> Option<(u64, u32, Privileged)> {
    code.chunks_exact(4).enumerate().find_map(|(i, w)| {
        let insn = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        privileged(insn).map(|p| (4 * i as u64, insn, p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Privileged::*;

    /// Encodings from the ARM ARM (and as GNU as assembles them).
    #[test]
    fn each_class_is_decoded_by_its_encoding() {
        let rows: [(u32, Option<Privileged>); 24] = [
            (0xd503_4fdf, Some(DaifSet)),      // msr daifset, #0xf
            (0xd503_42df, Some(DaifSet)),      // msr daifset, #2
            (0xd503_42ff, Some(DaifClr)),      // msr daifclr, #2
            (0xd500_41bf, Some(SpSel)),        // msr spsel, #1
            (0xd500_419f, Some(Pstate(0, 4))), // msr pan, #1
            (0xd69f_03e0, Some(Eret)),
            (0xd69f_0bff, Some(Eret)), // eretaa
            (0xd400_0002, Some(Hvc(0))),
            (0xd400_0022, Some(Hvc(1))),
            (0xd41f_ffe3, Some(Smc(0xffff))),
            (0xd503_207f, Some(Wfi)),
            (0xd503_205f, Some(Wfe)),
            (0xd518_c000, Some(Msr(SysReg::of(0xd518_c000)))), // msr vbar_el1, x0
            (0xd51b_4220, Some(Msr(SysReg::of(0xd51b_4220)))), // msr daif, x0
            (0xd508_871f, Some(Sys(SysReg::of(0xd508_871f)))), // tlbi vmalle1
            // Allowed.
            (0xd53b_4220, None), // mrs x0, daif
            (0xd51b_4200, None), // msr nzcv, x0
            (0xd51b_4400, None), // msr fpcr, x0
            (0xd500_401f, None), // cfinv
            (0xd50b_7420, None), // dc zva, x0
            (0xd400_0001, None), // svc #0
            (0xd420_0020, None), // brk #1
            (0xd503_201f, None), // nop
            (0x1400_0000, None), // b . (no scan can refuse it)
        ];
        for (insn, want) in rows {
            assert_eq!(privileged(insn), want, "{insn:#010x}");
        }
    }

    #[test]
    fn messages_name_the_instruction() {
        assert_eq!(
            DaifSet.to_string(),
            "msr daifset masks interrupts, which no watchdog could then interrupt"
        );
        assert_eq!(
            privileged(0xd518_c000).unwrap().to_string(),
            "msr vbar_el1 writes a system register the kernel owns"
        );
        assert_eq!(
            privileged(0xd51f_1234).unwrap().to_string(),
            "msr s3_7_c1_c2_1 writes a system register the kernel owns"
        );
        assert_eq!(Hvc(0x42).to_string(), "hvc #0x42 calls the hypervisor");
    }

    #[test]
    fn the_first_offender_is_found_by_offset() {
        let code: [u32; 4] = [0xd503_201f, 0xd503_201f, 0xd503_4fdf, 0xd503_207f];
        let mut bytes = [0u8; 16];
        for (b, w) in bytes.chunks_exact_mut(4).zip(code) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(first_privileged(&bytes), Some((8, 0xd503_4fdf, DaifSet)));
        assert_eq!(first_privileged(&bytes[..8]), None);
        assert_eq!(first_privileged(&bytes[..11]), None);
    }
}
