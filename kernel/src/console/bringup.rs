//! Bringing the console up: the PL011 the device tree names, once `probe`
//! finds one there, or else the board's own UART (`pi::board`), mapped in
//! the MMIO window (its row of `pi::kmap`); and, for a panic that comes
//! before any console, the board's UART alone.

use core::fmt;

use pi::board::Board;
use pi::kmap::{self, FixedWindow};
use pi::layout::PAGE_SIZE;

use super::pl011::Pl011;
use super::probe::{self, Refusal};
use crate::arch::once::WriteOnce;
use crate::arch::{cpu, peek, psci};
use crate::mm::ranges::{PhysRange, RangeList};
use crate::mm::tables;

/// Where the console's registers are mapped.
const MMIO: FixedWindow = kmap::fixed("mmio");

/// The UART the console runs on: its registers, and where they are mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Console {
    /// The registers, physical.
    pub regs: PhysRange,
    /// Their virtual address in the MMIO window.
    pub va: u64,
}

/// Why the console is not the UART the device tree names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The tree has no `/chosen/stdout-path`.
    NoStdoutPath,
    /// `/chosen/stdout-path` names a node (or alias) the tree lacks.
    NoSuchNode,
    /// The node it names has no `reg` the CPU can reach.
    NoRegs,
    /// The node it names is not an `arm,pl011`.
    NotCompatible,
    /// The named UART's registers cannot be mapped.
    Unmappable(PhysRange, Unmappable),
    /// What the tree calls a PL011 is not one, or may not be touched as one.
    NotAPl011(PhysRange, Refusal),
}

/// Why a UART's registers cannot be mapped for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmappable {
    /// They lie past this CPU's physical address width (in bits).
    BeyondPa(u32),
    /// They are larger than the MMIO window.
    TooLarge,
}

impl fmt::Display for Unmappable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmappable::BeyondPa(bits) => write!(f, "lie past this CPU's {bits}-bit physical addresses"),
            Unmappable::TooLarge => write!(f, "do not fit the MMIO window ({:#x} bytes)", MMIO.end - MMIO.start),
        }
    }
}

impl Fallback {
    /// What the console runs on instead, for the boot's report; `node` is
    /// the path `/chosen/stdout-path` names (text from outside: printed
    /// escaped).
    pub fn instead<'a>(self, board: &'static Board, node: &'a str) -> impl fmt::Display + 'a {
        struct Instead<'a>(Fallback, &'static str, u64, &'a str);
        impl fmt::Display for Instead<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let node = super::escape::Escaped(self.3);
                match self.0 {
                    Fallback::NoStdoutPath => write!(f, "the device tree has no /chosen/stdout-path")?,
                    Fallback::NoSuchNode => {
                        write!(f, "/chosen/stdout-path names {node}, which is not in the device tree")?
                    }
                    Fallback::NoRegs => write!(f, "the console node {node} has no reg the CPU can reach")?,
                    Fallback::NotCompatible => write!(f, "the console node {node} is not an arm,pl011")?,
                    Fallback::Unmappable(regs, why) => write!(
                        f,
                        "the console UART's registers at {:#x} ({:#x} bytes) {why}",
                        regs.start.raw(),
                        regs.size()
                    )?,
                    Fallback::NotAPl011(regs, why) => {
                        write!(f, "the console UART {node} at {:#x} {why}", regs.start.raw())?
                    }
                }
                write!(f, "; console on {}'s UART at {:#x}", self.1, self.2)
            }
        }
        Instead(self, board.name(), board.early_uart, node)
    }
}

/// The whole pages holding `regs`, if the CPU can address them and they fit
/// the MMIO window.
fn mmio_pages(regs: PhysRange) -> Result<PhysRange, Unmappable> {
    let bits = cpu::pa_bits();
    if regs.end.raw() > 1 << bits {
        return Err(Unmappable::BeyondPa(bits));
    }
    let pages = regs.expand_to_pages(PAGE_SIZE);
    if pages.size() > MMIO.end - MMIO.start {
        return Err(Unmappable::TooLarge);
    }
    Ok(pages)
}

/// The board's UART, one page: `None` where RAM (by the device tree's
/// `/memory`) holds that address, so it cannot be a UART. Until the tree
/// is read, the default board's.
static BOARD_UART: WriteOnce<Option<PhysRange>> = WriteOnce::new(None);

/// Settles which UART is the fallback, once the tree is read.
pub fn know_board(board: &Board, ram: &RangeList) {
    let page = PhysRange::saturating(board.early_uart, PAGE_SIZE);
    BOARD_UART.set((!ram.iter().any(|r| r.start < page.end && page.start < r.end)).then_some(page));
}

fn board_uart() -> Option<PhysRange> {
    *BOARD_UART
        .get()
        .unwrap_or(&Some(PhysRange::saturating(pi::board::board(0).early_uart, PAGE_SIZE)))
}

/// Maps the console UART — `named` if the tree names one that can be
/// mapped, lies outside `ram` and reads as a PL011, else the board's — and
/// makes it the console; why it is not the named one, if it is not (`named`
/// is already why, if the tree names no PL011's registers). With neither,
/// there is nothing to speak through: the machine powers off.
pub fn start(named: Result<PhysRange, Fallback>, ram: &RangeList) -> (Console, Option<Fallback>) {
    let named = match named {
        Err(why) => Err(why),
        Ok(regs) => match mmio_pages(regs) {
            Err(why) => Err(Fallback::Unmappable(regs, why)),
            Ok(pages) => probed(regs, pages, ram)
                .map(|va| (regs, va))
                .map_err(|why| Fallback::NotAPl011(regs, why)),
        },
    };
    let (regs, va, fallback) = match named {
        Ok((regs, va)) => (regs, va, None),
        Err(why) => match board_uart() {
            Some(uart) => (uart, map_mmio(uart), Some(why)),
            None => psci::system_off(),
        },
    };
    // SAFETY: the PL011's registers are mapped as Device memory at `va` (a
    // named one has answered as a PL011) and the console is their only user.
    super::init(unsafe { Pl011::new(va as *mut u32) });
    (Console { regs, va }, fallback)
}

/// Maps `pages` at the start of the MMIO window; the address of `regs` in it.
fn map_mmio(pages: PhysRange) -> u64 {
    match tables::map_fixed(MMIO, pages.start, pages.size()) {
        Ok(base) => base,
        // The window is empty at boot (or emptied by `probed`) and `pages`
        // fits it, so only a lack of table pages could fail this; and
        // without a console nothing could be said about it.
        Err(_) => psci::system_off(),
    }
}

/// Where the named UART's `regs` (in `pages`) are mapped, once they pass
/// `probe`'s checks; otherwise the window is left empty again, and why.
/// Only loads that may fault touch the device until it has answered as a
/// PL011: nothing is written to what may not be one.
fn probed(regs: PhysRange, pages: PhysRange, ram: &RangeList) -> Result<u64, Refusal> {
    probe::before_mapping(regs, pages, ram)?;
    let va = map_mmio(pages) + (regs.start.raw() - pages.start.raw());
    let mut ids = [0; probe::ID_REGS];
    let verdict = peek::peek_words(va + probe::ID_OFFSET, &mut ids)
        .map_err(Refusal::NoDevice)
        .and_then(|()| probe::identify(ids.map(|id| id as u8)));
    if verdict.is_err() {
        // Nothing else is in the window: clearing it cannot fail, and the
        // board's UART goes where this was.
        let _ = tables::unmap(MMIO.start, pages.size());
    }
    verdict.map(|()| va)
}

/// Starts a console on the board's UART for a panic that comes before any
/// console, if the page tables are free to take the mapping (a panic while
/// they were being changed cannot print, and powers off as before).
pub fn start_for_panic() {
    if super::ready() {
        return;
    }
    if let Some(uart) = board_uart()
        && tables::try_map_fixed(MMIO, uart.start, PAGE_SIZE)
    {
        // SAFETY: the board's PL011 was just mapped as Device memory there,
        // and there is no other console to share it with.
        super::init(unsafe { Pl011::new(MMIO.start as *mut u32) });
    }
}
