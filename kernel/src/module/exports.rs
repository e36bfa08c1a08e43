//! The kernel's export table, as modules see it: each entry is two 32-bit
//! offsets, from the entry's own fields to the function and to its
//! NUL-terminated name. Offsets need no relocation, so the table is right
//! wherever KASLR puts the image (the same idea as the exception table).

/// One entry, as `export!` emits it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// Function, relative to this field.
    pub function: i32,
    /// Name, relative to this field.
    pub name: i32,
}

/// The function and name addresses of entry `index` of a table mapped at
/// `table_addr`.
pub fn addresses(table: &[Export], table_addr: u64, index: usize) -> Option<(u64, u64)> {
    let e = table.get(index)?;
    let at = table_addr + (index * core::mem::size_of::<Export>()) as u64;
    Some((
        at.wrapping_add_signed(i64::from(e.function)),
        (at + 4).wrapping_add_signed(i64::from(e.name)),
    ))
}

/// Declares a kernel function exported to modules under its own name.
#[macro_export]
macro_rules! export {
    ($name:ident) => {
        core::arch::global_asm!(concat!(
            ".pushsection .kexports, \"a\"\n",
            ".balign 4\n",
            ".long ",
            stringify!($name),
            " - .\n",
            ".long 2f - .\n",
            ".popsection\n",
            ".pushsection .rodata.kexport_names, \"a\"\n",
            "2: .asciz \"",
            stringify!($name),
            "\"\n",
            ".popsection\n"
        ));
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_from_each_field() {
        let table = [
            Export {
                function: -0x100,
                name: 0x40,
            },
            Export {
                function: 0x20,
                name: -4,
            },
        ];
        let base = 0xffff_a000_0000_1000;
        assert_eq!(addresses(&table, base, 0), Some((base - 0x100, base + 4 + 0x40)));
        assert_eq!(addresses(&table, base, 1), Some((base + 8 + 0x20, base + 12 - 4)));
        assert_eq!(addresses(&table, base, 2), None);
    }
}
