//! A panic prints its message and location, then powers off. The host tool
//! recognises the `kernel panic:` line and reports a failure.

use core::panic::PanicInfo;

use aarch64_cpu::registers::Writeable;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    aarch64_cpu::registers::DAIF.set(0b1111 << 6);
    crate::console::force_unlock();
    crate::boot::phases::panic_console();
    crate::println!("\nkernel panic: {}", info.message());
    if let Some(at) = info.location() {
        crate::println!("  at {}:{}:{}", at.file(), at.line(), at.column());
    }
    crate::println!("splitmap: halted");
    super::psci::system_off(crate::boot::phases::psci_conduit())
}
