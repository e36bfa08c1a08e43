//! What the kernel offers modules and what it keeps of them.
//!
//! The export table: each entry is two 32-bit offsets, from the entry's own
//! fields to the function and to its NUL-terminated name. Offsets need no
//! relocation, so the table is right wherever KASLR puts the image (the same
//! idea as the exception table).
//!
//! The registries: shell commands and tests that modules add, each recorded
//! with the module it came from, so `rmmod` can take back what a module's
//! `exit_module` forgot. The `extern "C"` side is `module::abi`.

#[cfg(with_alloc)]
use alloc::{string::String, vec::Vec};

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

/// Something a module registered by name: a shell command or a test.
#[cfg(with_alloc)]
struct Registered<F> {
    name: String,
    owner: u64,
    function: F,
}

/// The longest name a module may register (bytes).
pub const NAME_MAX: usize = 32;

/// How many commands (or tests) one module may register: the registry is
/// kernel heap, which no module may fill.
pub const PER_MODULE: usize = 32;

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The name is empty.
    Empty,
    /// The name is longer than [`NAME_MAX`] bytes (how long it is).
    TooLong(usize),
    /// The name has a byte that is not printable ASCII, or a space: a name
    /// is one word on a command line and is printed as it is.
    NotPrintable(u8),
    /// The kernel has one of that name.
    Builtin,
    /// A module registered that name already.
    Taken,
    /// The module has [`PER_MODULE`] registrations of this kind already.
    TooMany,
    /// The kernel heap cannot hold the entry.
    NoMemory,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::Empty => write!(f, "the name is empty"),
            Refused::TooLong(len) => write!(f, "the name is {len} bytes, longer than {NAME_MAX}"),
            Refused::NotPrintable(b) => write!(f, "the name has byte {b:#04x}: only printable ASCII, no space"),
            Refused::Builtin => write!(f, "the kernel has that name"),
            Refused::Taken => write!(f, "another module registered that name"),
            Refused::TooMany => write!(f, "the module has {PER_MODULE} registrations of this kind already"),
            Refused::NoMemory => write!(f, "the kernel heap is full"),
        }
    }
}

/// `bytes` as a name a module may register: 1 to [`NAME_MAX`] bytes of
/// printable ASCII other than space. (A module's bytes are read only once
/// [`check_name_len`] accepted their length.)
///
/// # Errors
/// [`Refused`]: empty, too long or not printable.
pub fn check_name(bytes: &[u8]) -> Result<&str, Refused> {
    check_name_len(bytes.len())?;
    if let Some(&b) = bytes.iter().find(|b| !b.is_ascii_graphic()) {
        return Err(Refused::NotPrintable(b));
    }
    // Printable ASCII is UTF-8.
    core::str::from_utf8(bytes).map_err(|_| Refused::NotPrintable(0))
}

/// Whether a name of `len` bytes could be registered, before reading any.
///
/// # Errors
/// [`Refused::Empty`] or [`Refused::TooLong`].
pub fn check_name_len(len: usize) -> Result<(), Refused> {
    match len {
        0 => Err(Refused::Empty),
        1..=NAME_MAX => Ok(()),
        _ => Err(Refused::TooLong(len)),
    }
}

/// The registry of one kind, with the rules both kinds share: names are
/// valid ([`check_name`]), unique, not taken by the kernel itself, and at
/// most [`PER_MODULE`] per module.
#[cfg(with_alloc)]
pub struct Registry<F: Copy>(crate::arch::lock::Mutex<Vec<Registered<F>>>);

#[cfg(with_alloc)]
impl<F: Copy> Default for Registry<F> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(with_alloc)]
impl<F: Copy> Registry<F> {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry(crate::arch::lock::Mutex::new(Vec::new()))
    }

    /// Adds `name` for module `owner` unless the kernel keeps it
    /// (`reserved`) or another module has it. Every allocation is fallible:
    /// a full heap refuses the name instead of stopping the kernel.
    ///
    /// # Errors
    /// [`Refused`], and nothing changes.
    pub fn add(&self, name: &str, owner: u64, function: F, reserved: fn(&str) -> bool) -> Result<(), Refused> {
        check_name(name.as_bytes())?;
        if reserved(name) {
            return Err(Refused::Builtin);
        }
        let mut copy = String::new();
        copy.try_reserve_exact(name.len()).map_err(|_| Refused::NoMemory)?;
        copy.push_str(name);
        let mut list = self.0.lock();
        if list.iter().any(|r| r.name == name) {
            return Err(Refused::Taken);
        }
        if list.iter().filter(|r| r.owner == owner).count() >= PER_MODULE {
            return Err(Refused::TooMany);
        }
        list.try_reserve(1).map_err(|_| Refused::NoMemory)?;
        list.push(Registered {
            name: copy,
            owner,
            function,
        });
        Ok(())
    }

    /// Removes `name` if module `owner` registered it: a module takes back
    /// its own registrations only. Whether it did.
    pub fn remove(&self, name: &str, owner: u64) -> bool {
        let mut list = self.0.lock();
        let before = list.len();
        list.retain(|r| r.name != name || r.owner != owner);
        before != list.len()
    }

    /// The owner and function registered as `name`.
    pub fn find(&self, name: &str) -> Option<(u64, F)> {
        self.0
            .lock()
            .iter()
            .find(|r| r.name == name)
            .map(|r| (r.owner, r.function))
    }

    /// (name, owner, function) of every registration, oldest first.
    pub fn list(&self) -> Vec<(String, u64, F)> {
        self.0
            .lock()
            .iter()
            .map(|r| (r.name.clone(), r.owner, r.function))
            .collect()
    }

    /// Drops what module `owner` registered; how many there were.
    pub fn forget(&self, owner: u64) -> usize {
        let mut list = self.0.lock();
        let before = list.len();
        list.retain(|r| r.owner != owner);
        before - list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_help(name: &str) -> bool {
        name == "help"
    }

    #[test]
    fn registrations_are_unique_and_never_shadow_the_kernel() {
        let r: Registry<u8> = Registry::new();
        assert_eq!(r.add("hello", 0x1000, 1, is_help), Ok(()));
        assert_eq!(r.add("hello", 0x2000, 2, is_help), Err(Refused::Taken));
        assert_eq!(r.add("help", 0x2000, 2, is_help), Err(Refused::Builtin));
        assert_eq!(r.add("", 0x2000, 2, is_help), Err(Refused::Empty));
        assert_eq!(
            r.add(&"a".repeat(NAME_MAX + 1), 0x2000, 2, is_help),
            Err(Refused::TooLong(NAME_MAX + 1))
        );
        assert_eq!(
            r.add("bad\x1b[2J", 0x2000, 2, is_help),
            Err(Refused::NotPrintable(0x1b))
        );
        assert_eq!(r.add("two words", 0x2000, 2, is_help), Err(Refused::NotPrintable(b' ')));
        assert_eq!(
            r.add(&"a".repeat(NAME_MAX), 0x2000, 2, is_help),
            Ok(()),
            "the limit itself is fine"
        );
        assert_eq!(r.find("hello"), Some((0x1000, 1)), "a refusal changes nothing");
        assert_eq!(r.find("help"), None);
    }

    #[test]
    fn one_module_registers_at_most_per_module_names() {
        let r: Registry<u8> = Registry::new();
        for i in 0..PER_MODULE {
            r.add(&alloc::format!("n{i}"), 1, 0, |_| false).unwrap();
        }
        assert_eq!(r.add("one-more", 1, 0, |_| false), Err(Refused::TooMany));
        assert_eq!(
            r.add("one-more", 2, 0, |_| false),
            Ok(()),
            "another module has its own count"
        );
        assert_eq!(r.list().len(), PER_MODULE + 1);
    }

    #[test]
    fn names_are_checked_by_length_before_any_byte() {
        assert_eq!(check_name_len(3 << 20), Err(Refused::TooLong(3 << 20)));
        assert_eq!(check_name_len(0), Err(Refused::Empty));
        assert_eq!(check_name(b"ok-name_1"), Ok("ok-name_1"));
        assert_eq!(check_name("caf\u{e9}".as_bytes()), Err(Refused::NotPrintable(0xc3)));
    }

    #[test]
    fn forget_takes_back_one_modules_registrations_only() {
        let r: Registry<u8> = Registry::new();
        for (name, owner) in [("a", 1), ("b", 2), ("c", 1)] {
            r.add(name, owner, 0, |_| false).unwrap();
        }
        assert_eq!(r.forget(1), 2);
        assert_eq!(r.forget(1), 0);
        let left: Vec<_> = r.list().into_iter().map(|(n, owner, _)| (n, owner)).collect();
        assert_eq!(left, [("b".to_string(), 2)]);
        assert!(r.remove("b", 2));
        assert!(!r.remove("b", 2), "gone already");
        assert!(r.list().is_empty());
    }

    #[test]
    fn a_module_removes_only_its_own_registrations() {
        let r: Registry<u8> = Registry::new();
        r.add("mine", 1, 7, |_| false).unwrap();
        assert!(!r.remove("mine", 2), "another module's name");
        assert!(!r.remove("mine", 0), "no module at all");
        assert_eq!(r.find("mine"), Some((1, 7)), "a refused removal changes nothing");
        assert!(r.remove("mine", 1));
        assert_eq!(r.find("mine"), None);
    }

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
