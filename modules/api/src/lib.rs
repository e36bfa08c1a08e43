//! What a splitmap module sees of the kernel: the exported functions
//! (resolved by the module loader against the kernel's export table), safe
//! wrappers around them, and the panic handler every module needs.
//!
//! The wrappers are `#[inline(always)]`, so each call site in a module is a
//! `bl` straight to the export (a CALL26 relocation in the module's own
//! section), exactly as if the module had declared the export itself: that is
//! what the PLT counting and the veneers are about.
//!
//! The boundary, as the kernel keeps it (docs/design-notes.md): every
//! length is checked before the kernel reads a byte, names are short and
//! printable, a module's heap and registrations have budgets, and an entry
//! point (`init_module`, `exit_module`, a command, a test) must return with
//! x19-x29, SP and d8-d15 as it found them (AAPCS64): one that does not is
//! a contained fault, as an exception or a stack overflow in it is.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// A shell command's handler: it gets the rest of the line as (pointer, length).
pub type CommandFn = extern "C" fn(*const u8, usize);
/// A test: 0 passes, anything else fails with that value.
pub type TestFn = extern "C" fn() -> i32;

unsafe extern "C" {
    fn splitmap_log(message: *const u8, len: usize);
    fn splitmap_alloc(size: usize, align: usize) -> *mut u8;
    fn splitmap_free(block: *mut u8);
    fn splitmap_free_frames() -> u64;
    fn splitmap_register_command(name: *const u8, len: usize, handler: CommandFn) -> i32;
    fn splitmap_register_command_usage(
        name: *const u8,
        len: usize,
        usage: *const u8,
        usage_len: usize,
        handler: CommandFn,
    ) -> i32;
    fn splitmap_unregister_command(name: *const u8, len: usize);
    fn splitmap_register_test(name: *const u8, len: usize, test: TestFn) -> i32;
    fn splitmap_unregister_test(name: *const u8, len: usize);
}

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn splitmap_panic(message: *const u8, len: usize) -> !;
}

/// The kernel refused the registration: the name is taken (by the kernel or
/// another module), empty, longer than [`NAME_MAX`] bytes or not printable
/// ASCII without spaces; the module has [`PER_MODULE`] registrations of the
/// kind already; or the kernel heap is full. The kernel logs which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken;

/// The longest command or test name the kernel accepts (bytes).
pub const NAME_MAX: usize = 32;
/// How many commands, and how many tests, one module may register.
pub const PER_MODULE: usize = 32;
/// The kernel heap one module may hold through [`alloc`] (bytes, counted
/// as the kernel's buddy heap spends them: each block rounded up to a power
/// of two), in at most [`BLOCK_BUDGET`] blocks. `lsmod -v` shows both.
pub const HEAP_BUDGET: usize = 1 << 20;
/// How many blocks one module may hold.
pub const BLOCK_BUDGET: usize = 256;

/// A registration export's answer: 0 is success.
fn registered(code: i32) -> Result<(), Taken> {
    if code == 0 { Ok(()) } else { Err(Taken) }
}

/// Prints `message` on the console, as a line (at most 4096 bytes: a longer
/// one is not printed, a line says so).
#[inline(always)]
pub fn log(message: &str) {
    // SAFETY: the kernel reads `len` bytes at the pointer during the call.
    unsafe { splitmap_log(message.as_ptr(), message.len()) }
}

/// A block of the kernel heap, from [`alloc`].
#[derive(Debug)]
pub struct Block(*mut u8);

impl Block {
    /// Where the block starts.
    pub fn as_ptr(&self) -> *mut u8 {
        self.0
    }
}

/// `size` bytes aligned to `align` (a power of two) from the kernel heap, if
/// the kernel can: `None` for a size of 0, an alignment that is not a power
/// of two, more than the module's budget ([`HEAP_BUDGET`], [`BLOCK_BUDGET`])
/// or than the heap has. Give it back with [`free`]; `rmmod` frees what is
/// left.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> Option<Block> {
    // SAFETY: the kernel checks the size and alignment itself.
    let at = unsafe { splitmap_alloc(size, align) };
    (!at.is_null()).then_some(Block(at))
}

/// Returns a block to the kernel heap.
#[inline(always)]
pub fn free(block: Block) {
    // SAFETY: the pointer came from `splitmap_alloc` (a `Block` is made only
    // by `alloc`) and, the block being moved in, is freed once.
    unsafe { splitmap_free(block.0) }
}

/// Free page frames right now.
#[inline(always)]
pub fn free_frames() -> u64 {
    // SAFETY: reads a counter.
    unsafe { splitmap_free_frames() }
}

/// Adds shell command `name`, run by `handler` until unregistered or `rmmod`;
/// `help NAME` says only that a module added it (see [`register_command_usage`]).
#[inline(always)]
pub fn register_command(name: &'static str, handler: CommandFn) -> Result<(), Taken> {
    // SAFETY: a valid string; `handler` is module code, which stays mapped
    // until rmmod, and rmmod unregisters it first.
    registered(unsafe { splitmap_register_command(name.as_ptr(), name.len(), handler) })
}

/// Adds shell command `name` as [`register_command`] does, with `usage`:
/// what it takes after its name, as the kernel's `help` writes it
/// (`null|undef`, `[COUNT]`; `""` for nothing). `help` lists it so, and
/// `help NAME` shows `usage: NAME USAGE`.
#[inline(always)]
pub fn register_command_usage(name: &'static str, usage: &'static str, handler: CommandFn) -> Result<(), Taken> {
    // SAFETY: valid strings, read during the call; `handler` as for
    // `register_command`.
    registered(unsafe {
        splitmap_register_command_usage(name.as_ptr(), name.len(), usage.as_ptr(), usage.len(), handler)
    })
}

/// Removes shell command `name`, if this module registered it.
#[inline(always)]
pub fn unregister_command(name: &str) {
    // SAFETY: a valid string.
    unsafe { splitmap_unregister_command(name.as_ptr(), name.len()) }
}

/// Adds test `name` to the kernel's `test` suite.
#[inline(always)]
pub fn register_test(name: &'static str, test: TestFn) -> Result<(), Taken> {
    // SAFETY: as for `register_command`.
    registered(unsafe { splitmap_register_test(name.as_ptr(), name.len(), test) })
}

/// Removes test `name`, if this module registered it.
#[inline(always)]
pub fn unregister_test(name: &str) {
    // SAFETY: a valid string.
    unsafe { splitmap_unregister_test(name.as_ptr(), name.len()) }
}

/// A command handler's arguments: the rest of the command line.
///
/// # Safety
/// `(at, len)` must be what the kernel passed to a [`CommandFn`]; the bytes
/// are valid for the duration of the call.
pub unsafe fn command_args<'a>(at: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(at, len) }
}

/// A module that panics cannot be trusted to go on, nor to be unloaded: the
/// kernel stops with the message (the host sees `kernel panic:`).
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let message = info.message().as_str().unwrap_or("(a formatted message)");
    // SAFETY: a valid string for the duration of the call, which never returns.
    unsafe { splitmap_panic(message.as_ptr(), message.len()) }
}
