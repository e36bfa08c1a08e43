//! One way to write an assembly function, as Linux's `SYM_FUNC_START` /
//! `SYM_FUNC_END` give it one. (The two Image headers — the kernel's in
//! kernel/src/main.rs, stage-0's in boot/src/main.rs — are not functions
//! but the bytes a loader reads first, placed by the linker script.)

/// Emits the assembly function `$name` with body `$body` (and `global_asm!`
/// operands after it): in a section of its own (`.text.NAME`, or the one
/// given with `section = "…"`), so the linker script places it and
/// `--gc-sections` keeps or drops it like Rust code; a global symbol of ELF
/// type function with its size, so that `sym`, backtraces and gdb name
/// every address inside it.
///
/// ```ignore
/// pi::asm_function!("splitmap_example", "
///     mov     x0, #1
///     ret
/// ");
/// ```
#[macro_export]
macro_rules! asm_function {
    (section = $section:literal, $name:literal, $body:expr $(, $($operands:tt)*)?) => {
        $crate::asm_function!(@emit [$section], $name, $body $(, $($operands)*)?);
    };
    ($name:literal, $body:expr $(, $($operands:tt)*)?) => {
        $crate::asm_function!(@emit [".text.", $name], $name, $body $(, $($operands)*)?);
    };
    (@emit [$($section:literal),+], $name:literal, $body:expr $(, $($operands:tt)*)?) => {
        core::arch::global_asm!(
            concat!(
                ".pushsection ", $($section,)+ ", \"ax\"\n",
                ".global ", $name, "\n",
                ".type ", $name, ", %function\n",
                $name, ":\n",
            ),
            $body,
            concat!(".size ", $name, ", . - ", $name, "\n", ".popsection\n"),
            $($($operands)*)?
        );
    };
}
