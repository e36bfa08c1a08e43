//! The console: a polled PL011 driver (`pl011`, also the stage-0 loader's
//! console) and, on the machine, the terminal on top of it (`print!`,
//! `println!`, the `log` backend and the shell's input), its bring-up
//! (`bringup`: which UART, mapped where) and a panic's last words (`panic`).
//! Text from outside the kernel is printed through `escape`.

pub mod bootlog;
pub mod escape;
pub mod line;
pub mod pl011;
pub mod probe;

#[cfg(kernel_proper)]
pub mod bringup;
#[cfg(kernel_proper)]
mod panic;
#[cfg(kernel_proper)]
mod terminal;
#[cfg(kernel_proper)]
pub use terminal::*;
