//! The exception table: "if the instruction at A faults, continue at B".
//!
//! Entries hold 32-bit offsets from the entry itself, not addresses (Linux's
//! relative extable, prompted by "the core extable is most likely broken" in
//! the 2015 thread): a table of offsets needs no relocation, so it stays right
//! when KASLR moves the image.

/// One entry, as the assembler emits it: `.long insn - .; .long fixup - .`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Faulting instruction, relative to this field.
    pub insn: i32,
    /// Where to continue, relative to this field.
    pub fixup: i32,
}

/// Emits `extern "C"` routine `$name`, which runs the one instruction
/// `$insn` under the exception table and returns x1 = 0 if it completed, or
/// x0 = 0 and x1 = 1 if it took an exception (a fault, or an undefined
/// instruction) — as a `#[repr(C)]` pair of `u64`s. What the instruction
/// does to x0 is its result.
///
/// Fixups belong in such routines only, called as `extern "C"` functions:
/// the exception stub saves the general registers but not the FP/SIMD ones
/// its Rust handler may use, which a function call boundary lets it clobber
/// and the middle of a Rust function would not.
#[cfg(kernel_proper)]
macro_rules! covered_routine {
    ($name:literal, $insn:literal) => {
        pi::asm_function!(
            $name,
            concat!(
                "1: ",
                $insn,
                "\n",
                "    mov x1, #0\n",
                "    ret\n",
                "2:  mov x0, #0\n",
                "    mov x1, #1\n",
                "    ret\n",
                ".pushsection __ex_table, \"a\"\n",
                ".balign 4\n",
                ".long 1b - .\n",
                ".long 2b - .\n",
                ".popsection\n",
            )
        );
    };
}
#[cfg(kernel_proper)]
pub(crate) use covered_routine;

/// The fixup address for a fault at `pc`, given the table and the address it
/// is mapped at.
pub fn search(table: &[Entry], table_addr: u64, pc: u64) -> Option<u64> {
    table.iter().enumerate().find_map(|(i, e)| {
        let at = table_addr + (i * core::mem::size_of::<Entry>()) as u64;
        let insn = at.wrapping_add_signed(i64::from(e.insn));
        let fixup = (at + 4).wrapping_add_signed(i64::from(e.fixup));
        (insn == pc).then_some(fixup)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_relative_to_each_field() {
        let base = 0xffff_8000_8001_0000u64;
        // Entry 0 at base: insn at base - 0x100, fixup at base + 4 + 0x40.
        // Entry 1 at base + 8: insn at base + 8 - 0x200, fixup at base + 12 - 8.
        let table = [
            Entry {
                insn: -0x100,
                fixup: 0x40,
            },
            Entry {
                insn: -0x200,
                fixup: -8,
            },
        ];
        assert_eq!(search(&table, base, base - 0x100), Some(base + 0x44));
        assert_eq!(search(&table, base, base + 8 - 0x200), Some(base + 4));
        assert_eq!(search(&table, base, base), None);
        // Moving table and code together (KASLR) moves the answer with them.
        let moved = base + 0x1234_0000_0000;
        assert_eq!(search(&table, moved, moved - 0x100), Some(moved + 0x44));
    }
}
