//! Bringing the console up: the PL011 the device tree names, or else the
//! board's own UART (`pi::board`), mapped in the MMIO window (its row of
//! `pi::kmap`); and, for a panic that comes before any console, the
//! board's UART alone.

use core::fmt;

use pi::board::Board;
use pi::kmap::{self, FixedWindow};
use pi::layout::PAGE_SIZE;
use spin::Once;

use super::pl011::Pl011;
use crate::arch::{cpu, psci};
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
    /// `/chosen/stdout-path` names no PL011.
    NoneNamed,
    /// The named UART's registers cannot be mapped.
    Unmappable(PhysRange, Unmappable),
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
    /// What the console runs on instead, for the boot's report.
    pub fn instead(self, board: &'static Board) -> impl fmt::Display {
        struct Instead(Fallback, &'static str, u64);
        impl fmt::Display for Instead {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Fallback::NoneNamed => write!(f, "no PL011 at /chosen/stdout-path")?,
                    Fallback::Unmappable(regs, why) => write!(
                        f,
                        "the console UART's registers at {:#x} ({:#x} bytes) {why}",
                        regs.start.raw(),
                        regs.size()
                    )?,
                }
                write!(f, "; console on {}'s UART at {:#x}", self.1, self.2)
            }
        }
        Instead(self, board.name(), board.early_uart)
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
static BOARD_UART: Once<Option<PhysRange>> = Once::new();

/// Settles which UART is the fallback, once the tree is read.
pub fn know_board(board: &Board, ram: &RangeList) {
    BOARD_UART.call_once(|| {
        let page = PhysRange::saturating(board.early_uart, PAGE_SIZE);
        (!ram.iter().any(|r| r.start < page.end && page.start < r.end)).then_some(page)
    });
}

fn board_uart() -> Option<PhysRange> {
    *BOARD_UART
        .get()
        .unwrap_or(&Some(PhysRange::saturating(pi::board::board(0).early_uart, PAGE_SIZE)))
}

/// Maps the console UART — `named` if the tree names one that can be
/// mapped, else the board's — and makes it the console; why it is not the
/// named one, if it is not. With neither, there is nothing to speak
/// through: the machine powers off.
pub fn start(named: Option<PhysRange>) -> (Console, Option<Fallback>) {
    let chosen = match named.map(|r| (r, mmio_pages(r))) {
        Some((regs, Ok(pages))) => Ok((regs, pages)),
        Some((regs, Err(why))) => Err(Fallback::Unmappable(regs, why)),
        None => Err(Fallback::NoneNamed),
    };
    let (regs, pages, fallback) = match chosen {
        Ok((regs, pages)) => (regs, pages, None),
        Err(why) => match board_uart() {
            Some(uart) => (uart, uart, Some(why)),
            None => psci::system_off(),
        },
    };
    let Ok(base) = tables::map_fixed(MMIO, pages.start, pages.size()) else {
        // The window is empty at boot and `pages` fits it, so only a lack of
        // table pages could fail this; and without a console nothing could
        // be said about it.
        psci::system_off()
    };
    let va = base + (regs.start.raw() - pages.start.raw());
    // SAFETY: the PL011's registers were just mapped as Device memory at `va`
    // and the console is their only user.
    super::init(unsafe { Pl011::new(va as *mut u32) });
    (Console { regs, va }, fallback)
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
