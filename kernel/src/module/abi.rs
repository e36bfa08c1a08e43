//! The kernel's side of module calls: every export is an `extern "C"`
//! function listed with `export!` in the relative export table.
//!
//! Whatever a module registers or allocates is recorded with the module it
//! came from, so `rmmod` can take it all back even if the module's
//! `exit_module` forgets: the kernel knows which module it is running because
//! it only ever enters one through its entry points, its commands and its
//! tests ([`call`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::arch::lock::Mutex;

use super::exports::{self, Export, Registry};
use crate::arch::recovery;
use crate::arch::sections;
use crate::mm::frames;

unsafe extern "C" {
    static __start_kexports: Export;
    static __stop_kexports: Export;
}

/// The kernel's exports to modules (`export!`).
fn kexports() -> &'static [Export] {
    // SAFETY: the linker brackets the `.kexports` entries, in rodata.
    unsafe { sections::table(&raw const __start_kexports, &raw const __stop_kexports) }
}

/// The address of kernel export `name`.
pub fn find(name: &str) -> Option<u64> {
    let table = kexports();
    (0..table.len()).find_map(|i| {
        let (function, name_at) = exports::addresses(table, table.as_ptr() as u64, i)?;
        // SAFETY: names are NUL-terminated strings in rodata, emitted by `export!`.
        let entry = unsafe { core::ffi::CStr::from_ptr(name_at as *const core::ffi::c_char) };
        (entry.to_bytes() == name.as_bytes()).then_some(function)
    })
}

/// The module whose code the kernel is running (0 for none).
fn owner() -> u64 {
    recovery::owner().unwrap_or(0)
}

/// A string a module passed as (pointer, length).
///
/// # Safety
/// `at` must point to `len` readable bytes that outlive the result's use.
unsafe fn module_str<'a>(at: *const u8, len: usize) -> Option<&'a str> {
    // SAFETY: the caller's contract.
    core::str::from_utf8(unsafe { core::slice::from_raw_parts(at, len) }).ok()
}

/// Kernel export: print a line from a module, after its name and escaped
/// ([`LogLine`](super::logline::LogLine)).
///
/// # Safety
/// `message` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_log(message: *const u8, len: usize) {
    // Read (and check) the whole message before taking the console's lock:
    // a bad pointer then faults with no lock held, and can be contained.
    // SAFETY: the caller's contract.
    let message = unsafe { module_str(message, len) }.unwrap_or("(not UTF-8)");
    let module = super::insmod::name_of(owner());
    let module = module.as_deref().unwrap_or("?");
    crate::println!("{}", super::logline::LogLine { module, message });
}
crate::export!(splitmap_log);

/// Kernel export: a module panicked. It can be trusted neither to go on nor
/// to be unloaded, so the kernel stops, saying which module and why.
///
/// # Safety
/// `message` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_panic(message: *const u8, len: usize) -> ! {
    // SAFETY: the caller's contract.
    let message = unsafe { module_str(message, len) }.unwrap_or("(not UTF-8)");
    panic!("module at {:#x} panicked: {message}", owner())
}
crate::export!(splitmap_panic);

/// A module's shell command: its handler gets the rest of the line.
pub type CommandFn = extern "C" fn(*const u8, usize);
/// A module's test: 0 passes, anything else fails with that value.
type TestFn = extern "C" fn() -> i32;

static COMMANDS: Registry<CommandFn> = Registry::new();
static TESTS: Registry<TestFn> = Registry::new();

/// The names the kernel keeps for itself, which no module may register:
/// handed over by the shell (`reserve_names`), which sits above this layer.
pub struct ReservedNames {
    /// Whether the shell has a built-in command of this name.
    pub command: fn(&str) -> bool,
    /// Whether the kernel has a test of this name.
    pub test: fn(&str) -> bool,
}

static RESERVED: spin::Once<ReservedNames> = spin::Once::new();

/// Tells the module registries which names the kernel keeps (once, before
/// any module loads).
pub fn reserve_names(names: ReservedNames) {
    RESERVED.call_once(|| names);
}

/// Whether the kernel keeps command `name`; every name, until the shell said
/// which (no module can load before it does).
fn reserved_command(name: &str) -> bool {
    RESERVED.get().is_none_or(|r| (r.command)(name))
}

/// As [`reserved_command`], for tests.
fn reserved_test(name: &str) -> bool {
    RESERVED.get().is_none_or(|r| (r.test)(name))
}

/// Registers `name` (`len` bytes at `at`) for the running module: 0, or -1 if
/// refused.
///
/// # Safety
/// `at` must point to `len` readable bytes.
unsafe fn register<F: Copy>(
    registry: &Registry<F>,
    at: *const u8,
    len: usize,
    function: F,
    reserved: fn(&str) -> bool,
) -> i32 {
    // SAFETY: the caller's contract.
    match unsafe { module_str(at, len) } {
        Some(name) if registry.add(name, owner(), function, reserved).is_ok() => 0,
        _ => -1,
    }
}

/// Kernel export: add shell command `name`; 0 on success, -1 if the name is
/// taken (by the kernel or another module) or not UTF-8.
///
/// # Safety
/// `name` must point to `len` readable bytes; `handler` must stay callable
/// until the command is unregistered (rmmod does that at the latest).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_command(name: *const u8, len: usize, handler: CommandFn) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register(&COMMANDS, name, len, handler, reserved_command) }
}
crate::export!(splitmap_register_command);

/// What each module command takes, as registered with
/// [`splitmap_register_command_usage`]: (command, owner, arguments).
static USAGES: Mutex<Vec<(String, u64, String)>> = Mutex::new(Vec::new());

/// Kernel export: add shell command `name` as [`splitmap_register_command`]
/// does, with what it takes for `help NAME` to show (`usage_len` bytes at
/// `usage`: the arguments after the name, as `help` writes them, e.g.
/// `null|undef` or `[COUNT]`; empty for none). 0 on success, -1 if the name
/// is taken or either string is not UTF-8.
///
/// # Safety
/// `name` and `usage` must point to `len` and `usage_len` readable bytes;
/// `handler` as for [`splitmap_register_command`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_command_usage(
    name: *const u8,
    len: usize,
    usage: *const u8,
    usage_len: usize,
    handler: CommandFn,
) -> i32 {
    // Read (and copy) both strings before any lock is taken: a bad pointer
    // then faults with no lock held, and can be contained.
    // SAFETY: the caller's contract.
    let command = unsafe { module_str(name, len) }.map(String::from);
    // SAFETY: the caller's contract.
    let usage = unsafe { module_str(usage, usage_len) }.map(String::from);
    let (Some(command), Some(usage)) = (command, usage) else {
        return -1;
    };
    if COMMANDS.add(&command, owner(), handler, reserved_command).is_err() {
        return -1;
    }
    let mut usages = USAGES.lock();
    usages.retain(|(n, _, _)| *n != command);
    usages.push((command, owner(), usage));
    0
}
crate::export!(splitmap_register_command_usage);

/// The arguments module command `name` registered as its usage, if it gave any.
pub fn usage(name: &str) -> Option<String> {
    let (owner, _) = COMMANDS.find(name)?;
    USAGES
        .lock()
        .iter()
        .find(|(n, o, _)| n == name && *o == owner)
        .map(|(_, _, usage)| usage.clone())
}

/// Unregisters `name` (`len` bytes at `at`) if the running module registered
/// it: a module cannot take away another's (or the kernel's) command or test.
///
/// # Safety
/// `at` must point to `len` readable bytes.
unsafe fn unregister<F: Copy>(registry: &Registry<F>, at: *const u8, len: usize) {
    // Read (and check) the whole name before taking the registry's lock: a
    // bad pointer then faults with no lock held, and can be contained. The
    // registry reads the same bytes again under the lock, which cannot fault
    // now: they were just read, and nothing unmaps module memory while the
    // module runs. A name that is not UTF-8 was never registered.
    // SAFETY: the caller's contract.
    if let Some(name) = unsafe { module_str(at, len) } {
        registry.remove(name, owner());
    }
}

/// Kernel export: remove shell command `name`, if this module registered it.
///
/// # Safety
/// `name` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_unregister_command(name: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    if let Some(name) = unsafe { module_str(name, len) } {
        let owner = owner();
        COMMANDS.remove(name, owner);
        USAGES.lock().retain(|(n, o, _)| n != name || *o != owner);
    }
}
crate::export!(splitmap_unregister_command);

/// Kernel export: add test `name` to the `test` suite; 0 on success, -1 if
/// the name is taken or not UTF-8.
///
/// # Safety
/// As for [`splitmap_register_command`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_test(name: *const u8, len: usize, test: TestFn) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register(&TESTS, name, len, test, reserved_test) }
}
crate::export!(splitmap_register_test);

/// Kernel export: remove test `name`, if this module registered it.
///
/// # Safety
/// `name` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_unregister_test(name: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { unregister(&TESTS, name, len) }
}
crate::export!(splitmap_unregister_test);

/// A block a module allocated and has not freed yet.
struct Allocation {
    at: usize,
    layout: Layout,
    owner: u64,
}

static ALLOCATIONS: Mutex<Vec<Allocation>> = Mutex::new(Vec::new());

/// Kernel export: `size` bytes aligned to `align` (a power of two) from the
/// kernel heap, or null if that is impossible.
#[unsafe(no_mangle)]
pub extern "C" fn splitmap_alloc(size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size, align) else {
        return core::ptr::null_mut();
    };
    if size == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: the layout is valid and not zero-sized.
    let at = unsafe { alloc::alloc::alloc(layout) };
    if !at.is_null() {
        ALLOCATIONS.lock().push(Allocation {
            at: at as usize,
            layout,
            owner: owner(),
        });
    }
    at
}
crate::export!(splitmap_alloc);

/// Kernel export: return a block from [`splitmap_alloc`]. A pointer the
/// kernel did not hand out is ignored (and reported), never freed.
#[unsafe(no_mangle)]
pub extern "C" fn splitmap_free(at: *mut u8) {
    let mut list = ALLOCATIONS.lock();
    match list.iter().position(|a| a.at == at as usize) {
        Some(i) => {
            let a = list.swap_remove(i);
            // SAFETY: allocated by `splitmap_alloc` with this layout, freed once.
            unsafe { alloc::alloc::dealloc(a.at as *mut u8, a.layout) };
        }
        None => log::warn!("splitmap_free: {at:p} was not allocated by splitmap_alloc; ignored"),
    }
}
crate::export!(splitmap_free);

/// Kernel export: free page frames right now.
#[unsafe(no_mangle)]
pub extern "C" fn splitmap_free_frames() -> u64 {
    frames::free_frames()
}
crate::export!(splitmap_free_frames);

/// The module command `word`: its module's base and its handler.
pub fn command(word: &str) -> Option<(u64, CommandFn)> {
    COMMANDS.find(word)
}

/// (command, owner's base) for every module command.
pub fn commands() -> Vec<(String, u64)> {
    COMMANDS.list().into_iter().map(|(n, owner, _)| (n, owner)).collect()
}

/// (test, owner's base, function) for every module test.
pub fn tests() -> Vec<(String, u64, TestFn)> {
    TESTS.list()
}

/// What [`forget`] took back from a module.
#[derive(Default)]
pub struct Leftovers {
    /// Commands and tests still registered.
    pub registrations: usize,
    /// Blocks still allocated.
    pub allocations: usize,
    /// Bytes in those blocks.
    pub bytes: usize,
}

/// Unregisters the commands and tests of module `owner`; how many there
/// were. Alone for a faulted module (whose memory stays), within [`forget`]
/// for one being unloaded.
pub fn forget_registrations(owner: u64) -> usize {
    USAGES.lock().retain(|(_, o, _)| *o != owner);
    COMMANDS.forget(owner) + TESTS.forget(owner)
}

/// Heap bytes all modules hold.
pub fn allocations_total() -> usize {
    ALLOCATIONS.lock().iter().map(|a| a.layout.size()).sum()
}

/// Blocks module `owner` holds from the heap: how many, and their bytes.
pub fn allocations_of(owner: u64) -> (usize, usize) {
    let list = ALLOCATIONS.lock();
    let mine = list.iter().filter(|a| a.owner == owner);
    (mine.clone().count(), mine.map(|a| a.layout.size()).sum())
}

/// Unregisters and frees whatever module `owner` left behind.
pub fn forget(owner: u64) -> Leftovers {
    let mut left = Leftovers {
        registrations: forget_registrations(owner),
        ..Leftovers::default()
    };
    let mut list = ALLOCATIONS.lock();
    list.retain(|a| {
        if a.owner != owner {
            return true;
        }
        left.allocations += 1;
        left.bytes += a.layout.size();
        // SAFETY: allocated by `splitmap_alloc` with this layout; dropped from the list.
        unsafe { alloc::alloc::dealloc(a.at as *mut u8, a.layout) };
        false
    });
    left
}
