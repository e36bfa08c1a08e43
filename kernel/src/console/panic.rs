//! A panic's last words: the console taken over from whoever held it (or
//! started on the board's UART, if there was none yet), the message and its
//! location, then a reset. The host tool does not read the `kernel panic:`
//! line (a typed line or a module could print one): it learns of the reset
//! from QEMU's control socket, and reports a failure.

use core::panic::PanicInfo;

use aarch64_cpu::registers::Writeable;

use crate::arch::psci;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    aarch64_cpu::registers::DAIF.set(0b1111 << 6);
    super::force_unlock();
    super::bringup::start_for_panic();
    // CPU 0's line is as it always was; another CPU's names itself, so a
    // panic on a secondary is never mistaken for the boot CPU's.
    match crate::arch::percpu::id() {
        0 => crate::println!("\nkernel panic: {}", info.message()),
        cpu => crate::println!("\nkernel panic: cpu={cpu} {}", info.message()),
    }
    if let Some(at) = info.location() {
        crate::println!("  at {}:{}:{}", at.file(), at.line(), at.column());
    }
    crate::println!("splitmap: halted");
    psci::system_reset()
}
