//! Names for addresses, and the frame-pointer walk behind backtraces.

use alloc::string::String;
use core::fmt;

use super::ksyms;
use crate::arch::sections;
use crate::kaslr::relocate;
use crate::mm::stack;

/// A function an address is in.
pub struct Symbol {
    /// Its demangled name.
    pub name: String,
    /// Bytes from its start.
    pub offset: u64,
    /// The section it is in.
    pub section: String,
    /// The module it belongs to (`None`: the kernel).
    pub module: Option<String>,
}

/// `name+0xOFF`, and ` [module]` for a module's.
impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        match &self.module {
            Some(module) => write!(f, " [{module}]"),
            None => Ok(()),
        }
    }
}

/// Names for addresses in loaded modules, lent by the module loader (a layer
/// above this one) once the shell starts: before then no module is loaded.
static MODULE_SYMBOLS: spin::Once<fn(u64) -> Option<Symbol>> = spin::Once::new();

/// Lends backtraces and `sym` the loaded modules' names.
pub fn name_modules_with(symbolize: fn(u64) -> Option<Symbol>) {
    MODULE_SYMBOLS.call_once(|| symbolize);
}

fn module_symbol(addr: u64) -> Option<Symbol> {
    MODULE_SYMBOLS.get().and_then(|symbolize| symbolize(addr))
}

/// The function `addr` is in: the kernel's, or a loaded module's.
pub fn symbol(addr: u64) -> Option<Symbol> {
    let text = sections::text().start;
    match addr
        .checked_sub(text)
        .and_then(|off| ksyms::lookup(sections::ksyms(), off))
    {
        Some(f) => Some(Symbol {
            name: f.name.into(),
            offset: f.offset,
            section: ".text".into(),
            module: None,
        }),
        None => module_symbol(addr),
    }
}

/// Prints one line for `addr`: runtime VA, link-time address (for addr2line
/// on the ELF, whatever KASLR did) and `symbol+offset`.
pub fn print_frame(depth: usize, addr: u64) {
    let text = sections::text().start;
    let link = addr.wrapping_sub(relocate::offset());
    match addr
        .checked_sub(text)
        .and_then(|off| ksyms::lookup(sections::ksyms(), off))
    {
        Some(f) => crate::println!(
            "  #{depth:<2} {addr:#018x} (link {link:#018x}) {}+{:#x}",
            f.name,
            f.offset
        ),
        None => match module_symbol(addr) {
            Some(symbol) => crate::println!("  #{depth:<2} {addr:#018x} {symbol}"),
            None => crate::println!("  #{depth:<2} {addr:#018x} (link {link:#018x}) ?"),
        },
    }
}

/// Whether a frame record at `fp` lies on a kernel stack (so reading it is safe).
fn on_a_stack(fp: u64) -> bool {
    // A record is 16 bytes: the topmost one starts 16 bytes below the top.
    let on = |s: crate::mm::ranges::Span| (s.start..=s.end - 16).contains(&fp);
    fp.is_multiple_of(16) && (on(stack::STACK) || on(sections::boot_stack()))
}

/// Prints the call chain: the faulting PC, then each return address found by
/// following frame records (`[fp] = caller's fp`, `[fp + 8] = return address`).
pub fn print(pc: u64, mut fp: u64) {
    crate::println!("backtrace:");
    print_frame(0, pc);
    for depth in 1..32 {
        if !on_a_stack(fp) {
            break;
        }
        // SAFETY: `fp` is 16-aligned inside a mapped kernel stack (checked).
        let (next, lr) = unsafe { ((fp as *const u64).read(), (fp as *const u64).add(1).read()) };
        if lr == 0 {
            break;
        }
        // The return address is the instruction after the call.
        print_frame(depth, lr - 4);
        fp = next;
    }
}
