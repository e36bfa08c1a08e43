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
use crate::arch::once::WriteOnce;

use super::exports::{self, Export, Refused, Registry};
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

/// A string a module passed as (pointer, length), if it is UTF-8 and at
/// most `max` bytes long (checked before any byte is read).
///
/// # Safety
/// `at` must point to `len` readable bytes that outlive the result's use.
unsafe fn module_str<'a>(at: *const u8, len: usize, max: usize) -> Option<&'a str> {
    if len > max {
        return None;
    }
    // SAFETY: the caller's contract.
    core::str::from_utf8(unsafe { core::slice::from_raw_parts(at, len) }).ok()
}

/// A name a module passed as (pointer, length), checked
/// (`exports::check_name`): its length before any byte is read.
///
/// # Safety
/// `at` must point to `len` readable bytes that outlive the result's use.
unsafe fn module_name<'a>(at: *const u8, len: usize) -> Result<&'a str, Refused> {
    exports::check_name_len(len)?;
    // SAFETY: the caller's contract; `len` is at most NAME_MAX.
    exports::check_name(unsafe { core::slice::from_raw_parts(at, len) })
}

/// The longest line a module may log (bytes): longer ones are not printed.
pub const LOG_MAX: usize = 4096;

/// The longest usage a module may give a command (bytes).
pub const USAGE_MAX: usize = 96;

/// Kernel export: print a line from a module, after its name and escaped
/// ([`LogLine`](super::logline::LogLine)): at most [`LOG_MAX`] bytes of
/// UTF-8; anything else prints a line saying so.
///
/// # Safety
/// `message` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_log(message: *const u8, len: usize) {
    if len > LOG_MAX {
        crate::println!("(a module logged {len} bytes, more than {LOG_MAX}: not printed)");
        return;
    }
    // Read (and check) the whole message before taking the console's lock:
    // a bad pointer then faults with no lock held, and can be contained.
    // SAFETY: the caller's contract.
    let message = unsafe { module_str(message, len, LOG_MAX) }.unwrap_or("(not UTF-8)");
    let module = super::loaded::name_of(owner());
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
    let message = unsafe { module_str(message, len, LOG_MAX) }.unwrap_or("(not UTF-8, or too long)");
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

static RESERVED: WriteOnce<Option<ReservedNames>> = WriteOnce::new(None);

/// Tells the module registries which names the kernel keeps (once, before
/// any module loads).
pub fn reserve_names(names: ReservedNames) {
    RESERVED.set(Some(names));
}

/// Whether the kernel keeps command `name`; every name, until the shell said
/// which (no module can load before it does).
fn reserved_command(name: &str) -> bool {
    RESERVED.some().is_none_or(|r| (r.command)(name))
}

/// As [`reserved_command`], for tests.
fn reserved_test(name: &str) -> bool {
    RESERVED.some().is_none_or(|r| (r.test)(name))
}

/// Says why a module's registration was refused, and gives the export's
/// answer to it: -1.
fn refused(what: &str, why: Refused) -> i32 {
    log::warn!("module at {:#x}: {what} refused: {why}", owner());
    -1
}

/// Registers `name` (`len` bytes at `at`) for the running module: 0, or -1 if
/// refused.
///
/// # Safety
/// `at` must point to `len` readable bytes.
unsafe fn register<F: Copy>(
    registry: &Registry<F>,
    what: &str,
    at: *const u8,
    len: usize,
    function: F,
    reserved: fn(&str) -> bool,
) -> i32 {
    // SAFETY: the caller's contract.
    let added = unsafe { module_name(at, len) }.and_then(|name| registry.add(name, owner(), function, reserved));
    match added {
        Ok(()) => 0,
        Err(why) => refused(what, why),
    }
}

/// Kernel export: add shell command `name`; 0 on success, -1 if refused: the
/// name is taken (by the kernel or another module), empty, longer than 32
/// bytes or not printable ASCII without spaces, the module has 32 commands
/// already, or the kernel heap is full.
///
/// # Safety
/// `name` must point to `len` readable bytes; `handler` must stay callable
/// until the command is unregistered (rmmod does that at the latest).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_command(name: *const u8, len: usize, handler: CommandFn) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register(&COMMANDS, "register_command", name, len, handler, reserved_command) }
}
crate::export!(splitmap_register_command);

/// What each module command takes, as registered with
/// [`splitmap_register_command_usage`]: (command, owner, arguments).
static USAGES: Mutex<Vec<(String, u64, String)>> = Mutex::new(Vec::new());

/// Kernel export: add shell command `name` as [`splitmap_register_command`]
/// does, with what it takes for `help NAME` to show (`usage_len` bytes at
/// `usage`: the arguments after the name, as `help` writes them, e.g.
/// `null|undef` or `[COUNT]`; empty for none; at most 96 bytes of printable
/// ASCII). 0 on success, -1 if refused as [`splitmap_register_command`]
/// refuses, or for the usage.
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
    // Read (and check) both strings before any lock is taken: a bad pointer
    // then faults with no lock held, and can be contained. Lengths are
    // checked before any byte is read, and every copy is fallible.
    // SAFETY: the caller's contract.
    let command = match unsafe { module_name(name, len) } {
        Ok(command) => command,
        Err(why) => return refused("register_command_usage", why),
    };
    // SAFETY: the caller's contract.
    let usage = unsafe { module_str(usage, usage_len, USAGE_MAX) };
    let Some(usage) = usage.filter(|u| u.bytes().all(|b| b == b' ' || b.is_ascii_graphic())) else {
        log::warn!(
            "module at {:#x}: register_command_usage refused: the usage is not at most {USAGE_MAX} bytes of printable ASCII",
            owner()
        );
        return -1;
    };
    let (Some(command_copy), Some(usage)) = (try_string(command), try_string(usage)) else {
        return refused("register_command_usage", Refused::NoMemory);
    };
    let mut usages = USAGES.lock();
    if usages.try_reserve(1).is_err() {
        return refused("register_command_usage", Refused::NoMemory);
    }
    drop(usages);
    if let Err(why) = COMMANDS.add(command, owner(), handler, reserved_command) {
        return refused("register_command_usage", why);
    }
    let mut usages = USAGES.lock();
    usages.retain(|(n, _, _)| *n != command_copy);
    // Reserved above; only the shell thread registers, so still room.
    usages.push((command_copy, owner(), usage));
    0
}

/// A copy of `s` on the kernel heap, if it has room.
fn try_string(s: &str) -> Option<String> {
    let mut copy = String::new();
    copy.try_reserve_exact(s.len()).ok()?;
    copy.push_str(s);
    Some(copy)
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
    // SAFETY: the caller's contract. A name longer than NAME_MAX was never
    // registered, and is not read.
    if let Ok(name) = unsafe { module_name(at, len) } {
        registry.remove(name, owner());
    }
}

/// Kernel export: remove shell command `name`, if this module registered it.
///
/// # Safety
/// `name` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_unregister_command(name: *const u8, len: usize) {
    // SAFETY: the caller's contract; as in `unregister`.
    if let Ok(name) = unsafe { module_name(name, len) } {
        let owner = owner();
        COMMANDS.remove(name, owner);
        USAGES.lock().retain(|(n, o, _)| n != name || *o != owner);
    }
}
crate::export!(splitmap_unregister_command);

/// Kernel export: add test `name` to the `test` suite; 0 on success, -1 if
/// refused, as [`splitmap_register_command`] refuses.
///
/// # Safety
/// As for [`splitmap_register_command`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_test(name: *const u8, len: usize, test: TestFn) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register(&TESTS, "register_test", name, len, test, reserved_test) }
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

/// The kernel heap one module may hold through [`splitmap_alloc`], counted
/// as the heap spends it (a block takes its size rounded up to a power of
/// two, at least its alignment: the buddy allocator's rule).
pub const HEAP_BUDGET: usize = 1 << 20;

/// How many blocks one module may hold: each costs a record on the heap too.
pub const BLOCK_BUDGET: usize = 256;

/// What a block of `layout` costs against [`HEAP_BUDGET`].
fn charge(layout: Layout) -> usize {
    layout.size().max(layout.align()).next_power_of_two()
}

/// Kernel export: `size` bytes aligned to `align` (a power of two) from the
/// kernel heap, or null if that is impossible: a size of 0, an alignment
/// that is not a power of two, more than the module's budget
/// ([`HEAP_BUDGET`] bytes in at most [`BLOCK_BUDGET`] blocks; `lsmod -v`
/// shows both) or than the heap has free.
#[unsafe(no_mangle)]
pub extern "C" fn splitmap_alloc(size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size, align) else {
        return core::ptr::null_mut();
    };
    if size == 0 || size > HEAP_BUDGET {
        return core::ptr::null_mut();
    }
    let owner = owner();
    let mut list = ALLOCATIONS.lock();
    let (blocks, charged) = list
        .iter()
        .filter(|a| a.owner == owner)
        .fold((0, 0), |(n, bytes), a| (n + 1, bytes + charge(a.layout)));
    if blocks >= BLOCK_BUDGET || charged + charge(layout) > HEAP_BUDGET || list.try_reserve(1).is_err() {
        return core::ptr::null_mut();
    }
    // SAFETY: the layout is valid and not zero-sized.
    let at = unsafe { alloc::alloc::alloc(layout) };
    if !at.is_null() {
        // Reserved above: no allocation here.
        list.push(Allocation {
            at: at as usize,
            layout,
            owner,
        });
    }
    at
}
crate::export!(splitmap_alloc);

/// Kernel export: return a block from [`splitmap_alloc`]. A pointer the
/// kernel did not hand out is ignored (and reported), never freed.
#[unsafe(no_mangle)]
pub extern "C" fn splitmap_free(at: *mut u8) {
    // Only the caller's own blocks: another module's would break its budget
    // and leave it a dangling pointer.
    let caller = owner();
    let mut list = ALLOCATIONS.lock();
    match list.iter().position(|a| a.at == at as usize && a.owner == caller) {
        Some(i) => {
            let a = list.swap_remove(i);
            // SAFETY: allocated by `splitmap_alloc` with this layout, freed once.
            unsafe { alloc::alloc::dealloc(a.at as *mut u8, a.layout) };
        }
        None => log::warn!("splitmap_free: {at:p} was not allocated by this module's splitmap_alloc; ignored"),
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
/// were. Alone for a faulted module (whose memory stays until `rmmod`), within [`forget`]
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
