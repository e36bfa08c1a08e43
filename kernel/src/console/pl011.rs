//! ARM PL011 UART, polled. The firmware (or QEMU) has set the baud rate; we
//! only enable the transmitter and receiver, as Linux's earlycon does.

use core::fmt;

/// Data register.
const DR: usize = 0x00;
/// Flag register.
const FR: usize = 0x18;
/// Control register.
const CR: usize = 0x30;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

/// A PL011 mapped at `base`.
pub struct Pl011 {
    base: *mut u32,
}

// SAFETY: the registers are only reached through `&mut self` (the console
// holds it behind a lock), so moving the handle between CPUs is fine.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// Takes over the UART whose registers are mapped (Device memory) at `base`.
    ///
    /// # Safety
    /// `base` must map a PL011's 4 KiB register block, and nothing else may
    /// drive it.
    pub unsafe fn new(base: *mut u32) -> Self {
        let mut uart = Pl011 { base };
        let cr = uart.read(CR);
        uart.write(CR, cr | CR_UARTEN | CR_TXE | CR_RXE);
        uart
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: the register block is mapped at `base`.
        unsafe { crate::arch::mmio::read32(self.base.byte_add(offset) as u64) }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { crate::arch::mmio::write32(self.base.byte_add(offset) as u64, value) }
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&mut self, byte: u8) {
        while self.read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write(DR, u32::from(byte));
    }

    /// A received byte, if one is waiting.
    pub fn get(&mut self) -> Option<u8> {
        (self.read(FR) & FR_RXFE == 0).then(|| self.read(DR) as u8)
    }
}

impl Pl011 {
    /// Sends UTF-8 text as a terminal wants it: each `\n` goes out as `\r\n`.
    pub fn write_text(&mut self, text: &[u8]) {
        for &b in text {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }
}

/// Text on the UART, as a terminal wants it ([`Pl011::write_text`]).
impl fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_text(s.as_bytes());
        Ok(())
    }
}
