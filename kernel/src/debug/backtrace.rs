//! Names for addresses, and the frame-pointer walk behind backtraces.

use alloc::string::String;
use core::fmt;

use super::ksyms;
use crate::arch::once::WriteOnce;
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
static MODULE_SYMBOLS: WriteOnce<Option<Symbolize>> = WriteOnce::new(None);

/// The module loader's name for an address.
type Symbolize = fn(u64) -> Option<Symbol>;

/// Lends backtraces and `sym` the loaded modules' names.
pub fn name_modules_with(symbolize: fn(u64) -> Option<Symbol>) {
    MODULE_SYMBOLS.set(Some(symbolize));
}

fn module_symbol(addr: u64) -> Option<Symbol> {
    MODULE_SYMBOLS.some().and_then(|symbolize| symbolize(addr))
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
/// on the ELF, whatever KASLR did) and `symbol+offset`; `note` after it. An
/// address outside the image has no link-time address, and is said to be.
fn print_frame(depth: usize, addr: u64, note: &str) {
    let text = sections::text().start;
    let link = addr.wrapping_sub(relocate::offset());
    let image = sections::image();
    match addr
        .checked_sub(text)
        .and_then(|off| ksyms::lookup(sections::ksyms(), off))
    {
        Some(f) => crate::println!(
            "  #{depth:<2} {addr:#018x} (link {link:#018x}) {}+{:#x}{note}",
            f.name,
            f.offset
        ),
        None => match module_symbol(addr) {
            Some(symbol) => crate::println!("  #{depth:<2} {addr:#018x} {symbol}{note}"),
            None if (image.start..image.end).contains(&addr) => {
                crate::println!("  #{depth:<2} {addr:#018x} (link {link:#018x}) ?{note}")
            }
            None => crate::println!("  #{depth:<2} {addr:#018x} ? (not in the kernel image or a module){note}"),
        },
    }
}

/// Whether a frame record at `fp` lies on a kernel stack (so reading it is safe).
fn on_a_stack(fp: u64) -> bool {
    // A record is 16 bytes: the topmost one starts 16 bytes below the top.
    let on = |s: crate::mm::ranges::Span| (s.start..=s.end - 16).contains(&fp);
    fp.is_multiple_of(16) && (on(stack::STACK) || on(sections::boot_stack()))
}

/// The frame record at `fp`: (the caller's fp, the return address), if it
/// is on a kernel stack.
fn record(fp: u64) -> Option<(u64, u64)> {
    // SAFETY: `fp` is 16-aligned inside a mapped kernel stack (checked).
    on_a_stack(fp).then(|| unsafe { ((fp as *const u64).read(), (fp as *const u64).add(1).read()) })
}

/// Where the function `addr` is in starts, and its module (`None`: the
/// kernel); `None` outside every function. A kernel address is looked up
/// without allocating: this runs in the exception handler, perhaps with the
/// heap's lock held by the code that faulted.
fn function_of(addr: u64) -> Option<(u64, Option<String>)> {
    let in_kernel = addr
        .checked_sub(sections::text().start)
        .and_then(|off| ksyms::lookup(sections::ksyms(), off));
    match in_kernel {
        Some(f) => Some((addr - f.offset, None)),
        None => module_symbol(addr).map(|s| (addr - s.offset, s.module)),
    }
}

/// The caller that only the link register names: the return address in LR
/// (x30) when frame #0 has no frame record of its own yet — code outside
/// every function (a branch into data), or a function stopped before its
/// prologue saved LR. Not when LR is in the same function as `pc` (a call
/// it made since returned there), nor when the first frame record holds the
/// same return address (the function saved LR already).
fn caller_from_lr(pc: u64, fp: u64, lr: u64) -> Option<u64> {
    let caller = lr.checked_sub(4).filter(|&c| c != 0)?;
    let function = function_of(caller)?;
    if function_of(pc).is_some_and(|f| f == function) {
        return None;
    }
    if record(fp).is_some_and(|(_, saved)| saved == lr) {
        return None;
    }
    Some(caller)
}

/// Prints the call chain: the faulting PC, the caller in LR if frame #0 did
/// not record it (see [`caller_from_lr`]), then each return address found by
/// following frame records (`[fp] = caller's fp`, `[fp + 8] = return address`).
pub fn print(pc: u64, mut fp: u64, lr: u64) {
    crate::println!("backtrace:");
    print_frame(0, pc, "");
    let mut depth = 1;
    if let Some(caller) = caller_from_lr(pc, fp, lr) {
        print_frame(depth, caller, " (from LR: frame #0 has no frame record)");
        depth += 1;
    }
    while depth < 32 {
        let Some((next, lr)) = record(fp) else { break };
        if lr == 0 {
            break;
        }
        // The return address is the instruction after the call.
        print_frame(depth, lr - 4, "");
        fp = next;
        depth += 1;
    }
}
