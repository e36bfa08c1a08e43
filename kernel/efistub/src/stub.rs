//! The stub's UEFI side: the calls into the firmware, made by hand through
//! the tables `uefi-raw` describes, and the jump into the image.
//!
//! Before ExitBootServices every failure is a named refusal on the
//! firmware's console (`efistub: error: …`), followed by a shutdown through
//! the runtime ResetSystem: EDK2 drops into its shell when an application
//! returns, which would look like a hang.

use core::ffi::c_void;
use core::ptr::{null, null_mut};

use uefi_raw::protocol::console::SimpleTextOutputProtocol;
use uefi_raw::protocol::file_system::{FileAttribute, FileMode, FileProtocolV1, SimpleFileSystemProtocol};
use uefi_raw::protocol::loaded_image::LoadedImageProtocol;
use uefi_raw::protocol::media::LoadFile2Protocol;
use uefi_raw::protocol::rng::RngProtocol;
use uefi_raw::table::boot::{BootServices, MemoryType};
use uefi_raw::table::runtime::ResetType;
use uefi_raw::table::system::SystemTable;
use uefi_raw::{Guid, Handle, Status, guid};

use crate::cmdline;
use crate::fdt::{self, Prop};
use crate::place;
use pi::layout::PAGE_SIZE;

/// The configuration table entry that holds the device tree.
const DEVICE_TREE_GUID: Guid = guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");
/// The vendor media device path under which a loader offers the initrd
/// through LoadFile2 (LINUX_EFI_INITRD_MEDIA_GUID).
const INITRD_MEDIA_GUID: Guid = guid!("5568e427-68fc-4f3d-ac74-ca555231cc68");

/// The seed used without an RNG protocol: fixed, so such boots are
/// reproducible, and said on the boot line (`fallback`).
const FALLBACK_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// One past the highest physical address the kernel can map on this CPU:
/// its PARange, capped by the granule's descriptors (`pi::idregs`).
fn pa_limit() -> u64 {
    let mmfr0: u64;
    // SAFETY: reads an ID register; no memory, no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    pi::idregs::pa_limit(mmfr0, pi::layout::GRANULE)
}

/// Room the tree copy gets beyond the firmware's tree: the new `/chosen`
/// properties, the command line (at most 1 KiB) among them.
const TREE_ROOM: usize = 8192;

const ALLOCATE_ANY_PAGES: u32 = 0;
const ALLOCATE_ADDRESS: u32 = 2;
const STATUS_BUFFER_TOO_SMALL: usize = Status::BUFFER_TOO_SMALL.0;

unsafe extern "C" {
    // Linker-script symbols (kernel/linker.ld.in), reached PC-relatively: the
    // image where the firmware loaded it.
    static _text: u8;
    static _end: u8;
}

struct Efi {
    st: *mut SystemTable,
    bs: *mut BootServices,
}

/// GUIDs compared as two words: `==` on byte arrays may become a call to
/// `bcmp`, outside the checked code.
fn same_guid(a: &Guid, b: &Guid) -> bool {
    let (a, b) = (a as *const Guid as *const [u64; 2], b as *const Guid as *const [u64; 2]);
    // SAFETY: a Guid is 16 bytes; unaligned reads make no alignment demand.
    let (a, b) = unsafe { (a.read_unaligned(), b.read_unaligned()) };
    a[0] == b[0] && a[1] == b[1]
}

impl Efi {
    /// Prints ASCII `text` on the firmware's console, `\n` as CR LF.
    fn say(&self, text: &[u8]) {
        // SAFETY: the system table the firmware passed is valid until
        // ExitBootServices, before which `say` is only called.
        let out: *mut SimpleTextOutputProtocol = unsafe { (*self.st).stdout };
        if out.is_null() {
            return;
        }
        // Left uninitialised: zeroing it would be a call to `memset`.
        let mut chunk = core::mem::MaybeUninit::<[u16; 64]>::uninit();
        let chunk = chunk.as_mut_ptr() as *mut u16;
        let mut n = 0;
        let flush = |n: usize| {
            // SAFETY: `n` < 64 units were written; the NUL makes it a
            // UCS-2 string for the firmware's console protocol `out`.
            unsafe {
                chunk.add(n).write(0);
                let _ = ((*out).output_string)(out, chunk);
            }
        };
        for &b in text {
            if b == b'\n' {
                // SAFETY: n <= 60 here (flushed at 60), inside the 64 units.
                unsafe { chunk.add(n).write(u16::from(b'\r')) };
                n += 1;
            }
            // SAFETY: as above, n <= 61.
            unsafe { chunk.add(n).write(u16::from(b)) };
            n += 1;
            if n >= 60 {
                flush(n);
                n = 0;
            }
        }
        flush(n);
    }

    fn say_hex(&self, v: u64) {
        let mut text = *b"0x0000000000000000";
        for (i, slot) in text.iter_mut().skip(2).enumerate() {
            *slot = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        self.say(&text);
    }

    /// Says why the kernel cannot be started, then powers off.
    fn refuse(&self, why: &[u8]) -> ! {
        self.say(b"efistub: error: ");
        self.say(why);
        self.say(b"\nefistub: powering off\n");
        self.power_off_silently()
    }

    /// Powers off through the runtime services, printing nothing (for when
    /// the console may already be gone).
    fn power_off_silently(&self) -> ! {
        // SAFETY: runtime services stay valid; ResetSystem does not return.
        unsafe {
            let rt = (*self.st).runtime_services;
            ((*rt).reset_system)(ResetType::SHUTDOWN, Status::ABORTED, 0, null())
        }
    }

    fn alloc_pages(&self, bytes: u64, ty: MemoryType) -> Option<u64> {
        let mut pa = 0;
        // SAFETY: boot services are live; `pa` is written by the firmware.
        let status =
            unsafe { ((*self.bs).allocate_pages)(ALLOCATE_ANY_PAGES, ty, bytes.div_ceil(4096) as usize, &mut pa) };
        (status.0 == 0).then_some(pa)
    }

    fn protocol(&self, guid: &Guid) -> Option<*mut c_void> {
        let mut p = null_mut();
        // SAFETY: boot services are live; `p` is written by the firmware.
        let status = unsafe { ((*self.bs).locate_protocol)(guid, null_mut(), &mut p) };
        (status.0 == 0 && !p.is_null()).then_some(p)
    }
}

/// Where the firmware enters the image (the PE header's AddressOfEntryPoint).
///
/// # Safety
/// Called by UEFI firmware as an EFI application's entry point.
#[unsafe(no_mangle)]
pub unsafe extern "efiapi" fn __efistub_pe_entry(image: Handle, st: *mut SystemTable) -> Status {
    // SAFETY: the firmware passes its system table.
    let bs = unsafe { (*st).boot_services };
    let efi = Efi { st, bs };
    run(&efi, image)
}

fn run(efi: &Efi, image: Handle) -> ! {
    // The command line, from the load options.
    let mut li: *mut c_void = null_mut();
    // SAFETY: boot services are live; `li` is written by the firmware.
    let status = unsafe { ((*efi.bs).handle_protocol)(image, &LoadedImageProtocol::GUID, &mut li) };
    if status.0 != 0 || li.is_null() {
        efi.refuse(b"the firmware offers no loaded-image protocol for the kernel");
    }
    let li = li as *const LoadedImageProtocol;
    let cmd_pa = efi
        .alloc_pages(1024, MemoryType::LOADER_DATA)
        .unwrap_or_else(|| efi.refuse(b"no memory for the command line"));
    // SAFETY: the page was just allocated for this; the load options are
    // `load_options_size` bytes the firmware owns (none if null).
    let (cmd_buf, options) = unsafe {
        let options = match (*li).load_options.is_null() {
            true => &[][..],
            false => core::slice::from_raw_parts((*li).load_options as *const u8, (*li).load_options_size as usize),
        };
        (core::slice::from_raw_parts_mut(cmd_pa as *mut u8, 1024), options)
    };
    let cmd_len = cmdline::from_load_options(options, cmd_buf).unwrap_or_else(|e| efi.refuse(e.message()));
    // The NUL bootargs ends with; from_load_options leaves room for it.
    if let Some(b) = cmd_buf.get_mut(cmd_len) {
        *b = 0;
    }
    let cmd = cmd_buf.get(..cmd_len).unwrap_or(&[]);
    let bootargs = cmd_buf.get(..cmd_len + 1).unwrap_or(&[]);
    let test = cmdline::word_arg(cmd, b"efistub.test").unwrap_or(&[]);

    // The device tree, from the configuration table.
    // SAFETY: the system table's configuration table has the entries it says.
    let tables = unsafe {
        core::slice::from_raw_parts(
            (*efi.st).configuration_table,
            (*efi.st).number_of_configuration_table_entries,
        )
    };
    let tree = tables
        .iter()
        .find(|t| same_guid(&t.vendor_guid, &DEVICE_TREE_GUID))
        .map(|t| t.vendor_table as *const u8)
        .unwrap_or_else(|| {
            efi.refuse(
                b"the firmware's configuration table holds no device tree (ACPI only?): this kernel needs one; QEMU: -machine virt,acpi=off",
            )
        });
    // SAFETY: a device tree's header is 40 bytes, readable where the table points.
    let tree_size = fdt::total_size(unsafe { core::slice::from_raw_parts(tree, 40) })
        .unwrap_or_else(|| efi.refuse(fdt::FdtError::NotATree.message()));
    // SAFETY: the header says the tree is that long.
    let tree = unsafe { core::slice::from_raw_parts(tree, tree_size) };

    // Seeds: the first 8 bytes place the image, the next 8 are the kernel's
    // /chosen/kaslr-seed for its virtual placement.
    let mut random = [0u64; 2];
    let rng = if crate::mem::eq(test, b"no-rng") {
        None
    } else {
        efi.protocol(&RngProtocol::GUID)
    };
    let have_rng = rng.is_some_and(|p| {
        let p = p as *mut RngProtocol;
        // SAFETY: `p` is the firmware's RNG protocol; `random` is 16 bytes.
        let status = unsafe { ((*p).get_rng)(p, null(), 16, random.as_mut_ptr() as *mut u8) };
        status.0 == 0
    });
    let (mut seed, mut source): (u64, &[u8]) = match have_rng {
        true => (random[0], b"rng\0"),
        false => {
            efi.say(b"efistub: no EFI_RNG_PROTOCOL: placing the image with the fixed fallback seed\n");
            (FALLBACK_SEED, b"fallback\0")
        }
    };
    if let Some(s) = cmdline::number_arg(cmd, b"efistub.seed") {
        (seed, source) = (s, b"efistub.seed\0");
    }

    // A random page-aligned place for the image among conventional memory;
    // with `nokaslr`, as Linux's stub, the firmware's own placement when it
    // is aligned to the image's page size (the image then runs where the
    // firmware loaded it), else the lowest aligned place. Never above what
    // the kernel can map on this CPU.
    let text = &raw const _text as u64;
    let size = (&raw const _end as u64).wrapping_sub(text);
    let limit = pa_limit();
    let nokaslr = cmdline::has_word(cmd, b"nokaslr");
    let stays = nokaslr && place::usable_as_loaded(text, size, PAGE_SIZE, limit);
    if nokaslr {
        source = match stays {
            true => b"firmware\0",
            false => b"nokaslr\0",
        };
    }
    let mut map_size = 0usize;
    let (mut key, mut desc_size, mut desc_ver) = (0usize, 0usize, 0u32);
    // SAFETY: asking for the size only (null buffer, size 0).
    let _ = unsafe { ((*efi.bs).get_memory_map)(&mut map_size, null_mut(), &mut key, &mut desc_size, &mut desc_ver) };
    // Room for the entries this allocation and the later ones add.
    let map_cap = map_size + 32 * desc_size.max(48);
    let map_pa = efi
        .alloc_pages(map_cap as u64, MemoryType::LOADER_DATA)
        .unwrap_or_else(|| efi.refuse(b"no memory for the UEFI memory map"));
    let get_map = |size: &mut usize, key: &mut usize, desc_size: &mut usize, desc_ver: &mut u32| {
        *size = map_cap;
        // SAFETY: `map_pa` holds `map_cap` bytes allocated for this.
        let s = unsafe { ((*efi.bs).get_memory_map)(size, map_pa as *mut _, key, desc_size, desc_ver) };
        s.0 == 0
    };
    if !get_map(&mut map_size, &mut key, &mut desc_size, &mut desc_ver) {
        efi.refuse(b"GetMemoryMap failed");
    }
    // SAFETY: the firmware wrote `map_size` bytes of descriptors there.
    let map = unsafe { core::slice::from_raw_parts(map_pa as *const u8, map_size) };
    // The slot taken and the slots there were, for `sweep --uefi`.
    let (pa, slot) = if stays {
        efi.say(b"efistub: nokaslr: the image stays where the firmware loaded it\n");
        (text, None)
    } else {
        if nokaslr {
            efi.say(b"efistub: nokaslr: the firmware's placement is not aligned to the image's page size, or not below what the kernel can map: the lowest aligned place instead\n");
            seed = 0;
        }
        let chosen = place::choose(place::regions(map, desc_size), size, PAGE_SIZE, limit, seed);
        let Some((pa, index, total)) = chosen.filter(|_| !crate::mem::eq(test, b"no-alloc")) else {
            efi.refuse(b"no conventional memory region can hold the image at a page-aligned address");
        };
        let mut at = pa;
        // SAFETY: boot services are live; `at` is the address asked for.
        let status = unsafe {
            ((*efi.bs).allocate_pages)(
                ALLOCATE_ADDRESS,
                MemoryType::LOADER_CODE,
                size.div_ceil(4096) as usize,
                &mut at,
            )
        };
        if status.0 != 0 {
            efi.say(b"efistub: error: AllocatePages at ");
            efi.say_hex(pa);
            efi.refuse(b" failed");
        }
        // SAFETY: both ranges are `size` bytes: the image as loaded
        // (SizeOfImage covers up to _end) and the pages just allocated.
        unsafe { ((*efi.bs).copy_mem)(pa as *mut u8, text as *const u8, size as usize) };
        (pa, Some((index, total)))
    };

    // The initrd, if the loader offers one through LoadFile2; else the file
    // an `initrd=` word names, on the volume the image came from.
    let initrd = match load_initrd(efi) {
        Some(initrd) => Some(initrd),
        None => {
            // Room for the path, as UCS-2: a page of the firmware's (an
            // array here would be zeroed by a call to `memset`).
            let path_pa = efi
                .alloc_pages(512, MemoryType::LOADER_DATA)
                .unwrap_or_else(|| efi.refuse(b"no memory for the initrd= path"));
            // SAFETY: just allocated, 512 bytes, aligned (a page).
            let path = unsafe { core::slice::from_raw_parts_mut(path_pa as *mut u16, 256) };
            cmdline::initrd_path(options, path).map(|_| load_initrd_file(efi, li, path))
        }
    };

    // The tree's new home, in loader data (boot-services data is freed at
    // ExitBootServices).
    let tree_cap = tree_size + TREE_ROOM;
    let tree_pa = efi
        .alloc_pages(tree_cap as u64, MemoryType::LOADER_DATA)
        .unwrap_or_else(|| efi.refuse(b"no memory for the device tree copy"));
    // SAFETY: just allocated, `tree_cap` bytes.
    let tree_dst = unsafe { core::slice::from_raw_parts_mut(tree_pa as *mut u8, tree_cap) };

    let kaslr_seed = random[1].to_be_bytes();
    let mmap_start = map_pa.to_be_bytes();
    let seed_be = seed.to_be_bytes();
    let source_is_seed = slot.is_some();
    let (slot_be, slots_be) = match slot {
        Some((index, total)) => (index.to_be_bytes(), total.to_be_bytes()),
        None => ([0; 8], [0; 8]),
    };
    let (initrd_start, initrd_end) = match initrd {
        Some((start, len)) => (start.to_be_bytes(), (start + len).to_be_bytes()),
        None => ([0; 8], [0; 8]),
    };
    let mut stale = crate::mem::eq(test, b"stale-map");
    let mut tree_len = 0;
    for attempt in 0..3 {
        if !get_map(&mut map_size, &mut key, &mut desc_size, &mut desc_ver) {
            efi.refuse(b"GetMemoryMap failed");
        }
        let (mmap_size, mmap_desc_size, mmap_desc_ver) = (
            (map_size as u32).to_be_bytes(),
            (desc_size as u32).to_be_bytes(),
            desc_ver.to_be_bytes(),
        );
        let props = [
            Prop {
                name: b"bootargs",
                value: bootargs,
            },
            Prop {
                name: b"linux,uefi-mmap-start",
                value: &mmap_start,
            },
            Prop {
                name: b"linux,uefi-mmap-size",
                value: &mmap_size,
            },
            Prop {
                name: b"linux,uefi-mmap-desc-size",
                value: &mmap_desc_size,
            },
            Prop {
                name: b"linux,uefi-mmap-desc-ver",
                value: &mmap_desc_ver,
            },
            Prop {
                name: b"splitmap,efi-seed",
                value: &seed_be,
            },
            Prop {
                name: b"splitmap,efi-seed-source",
                value: source,
            },
            Prop {
                name: b"kaslr-seed",
                value: &kaslr_seed,
            },
            Prop {
                name: b"linux,initrd-start",
                value: &initrd_start,
            },
            Prop {
                name: b"linux,initrd-end",
                value: &initrd_end,
            },
            Prop {
                name: b"splitmap,efi-slot",
                value: &slot_be,
            },
            Prop {
                name: b"splitmap,efi-slots",
                value: &slots_be,
            },
        ];
        // Without the RNG there is no kaslr-seed (the kernel asks RNDR);
        // without an initrd, no initrd properties; no seed placed an image
        // the firmware's placement kept.
        let wanted = [
            true,
            true,
            true,
            true,
            true,
            source_is_seed,
            true,
            have_rng,
            initrd.is_some(),
            initrd.is_some(),
            source_is_seed,
            source_is_seed,
        ];
        let mut kept = props;
        let mut count = 0;
        for (prop, want) in props.iter().zip(wanted) {
            if let (true, Some(slot)) = (want, kept.get_mut(count)) {
                *slot = *prop;
                count += 1;
            }
        }
        let props = kept.get(..count).unwrap_or(&[]);
        tree_len = fdt::copy_with_chosen(tree, tree_dst, props).unwrap_or_else(|e| efi.refuse(e.message()));
        if stale {
            // Test only: make the map key stale, as a firmware event would.
            stale = false;
            efi.say(b"efistub: test: the memory map changes before ExitBootServices\n");
            let _ = efi.alloc_pages(4096, MemoryType::LOADER_DATA);
        }
        // SAFETY: boot services are live; `key` is from the latest map.
        let status = unsafe { ((*efi.bs).exit_boot_services)(image, key) };
        if status.0 == 0 {
            break;
        }
        if attempt == 2 {
            // After a first ExitBootServices only the memory services may be
            // called (UEFI 2.10, 7.4): no console to say why, just the
            // runtime ResetSystem.
            efi.power_off_silently();
        }
    }
    // Boot services are gone: no console, no allocations. What the kernel
    // reads with the MMU off goes to the point of coherency.
    clean_to_poc(pa, size);
    clean_to_poc(tree_pa, tree_len as u64);
    clean_to_poc(map_pa, map_size as u64);
    if let Some((start, len)) = initrd {
        clean_to_poc(start, len);
    }
    // SAFETY: the image is at `pa`, the tree at `tree_pa`, both cleaned.
    unsafe { enter(pa, tree_pa) }
}

/// The initrd through the LoadFile2 protocol on the initrd media device
/// path, as Linux's stub asks for it: (address, length), or None.
fn load_initrd(efi: &Efi) -> Option<(u64, u64)> {
    #[repr(C, packed)]
    struct InitrdPath {
        vendor: [u8; 4],
        guid: Guid,
        end: [u8; 4],
    }
    let path = InitrdPath {
        vendor: [4, 3, 20, 0], // media, vendor-defined, 20 bytes
        guid: INITRD_MEDIA_GUID,
        end: [0x7f, 0xff, 4, 0], // end of the whole path
    };
    let mut dp = &path as *const InitrdPath as *const _;
    let mut handle: Handle = null_mut();
    // SAFETY: boot services are live; `dp` points at a complete device path.
    let status = unsafe { ((*efi.bs).locate_device_path)(&LoadFile2Protocol::GUID, &mut dp, &mut handle) };
    if status.0 != 0 {
        return None;
    }
    let mut proto: *mut c_void = null_mut();
    // SAFETY: as above; `proto` is written by the firmware.
    let status = unsafe { ((*efi.bs).handle_protocol)(handle, &LoadFile2Protocol::GUID, &mut proto) };
    if status.0 != 0 || proto.is_null() {
        return None;
    }
    let lf = proto as *mut LoadFile2Protocol;
    // What LocateDevicePath left of the path (its end node): the file's
    // path relative to the handle, as LoadFile2 wants it.
    let full = dp;
    let mut size = 0usize;
    // SAFETY: asking for the size (null buffer).
    let status = unsafe { ((*lf).load_file)(lf, full, false.into(), &mut size, null_mut()) };
    if status.0 != STATUS_BUFFER_TOO_SMALL || size == 0 {
        return None;
    }
    let pa = efi.alloc_pages(size as u64, MemoryType::LOADER_DATA)?;
    // SAFETY: `pa` holds `size` bytes allocated for this.
    let status = unsafe { ((*lf).load_file)(lf, full, false.into(), &mut size, pa as *mut c_void) };
    (status.0 == 0).then_some((pa, size as u64))
}

/// The initrd from the file `path` (NUL-terminated UCS-2) on the volume the
/// image was loaded from, through EFI_SIMPLE_FILE_SYSTEM_PROTOCOL, as
/// Linux's stub reads `initrd=` when the loader offers no LoadFile2 (U-Boot's
/// `bootefi`). A named file that cannot be read is refused: booting without
/// the initrd asked for would fail later and less clearly.
fn load_initrd_file(efi: &Efi, li: *const LoadedImageProtocol, path: &[u16]) -> (u64, u64) {
    efi.say(b"efistub: no LoadFile2 initrd: reading the initrd= file from the boot volume\n");
    let mut fs: *mut c_void = null_mut();
    // SAFETY: boot services are live; `li` is the image's loaded-image
    // protocol; `fs` is written by the firmware.
    let status = unsafe { ((*efi.bs).handle_protocol)((*li).device_handle, &SimpleFileSystemProtocol::GUID, &mut fs) };
    if status.0 != 0 || fs.is_null() {
        efi.refuse(b"initrd=: the volume the kernel came from offers no file system protocol");
    }
    let fs = fs as *mut SimpleFileSystemProtocol;
    let mut root: *mut FileProtocolV1 = null_mut();
    // SAFETY: `fs` is the firmware's protocol; `root` is written by it.
    let status = unsafe { ((*fs).open_volume)(fs, &mut root) };
    if status.0 != 0 || root.is_null() {
        efi.refuse(b"initrd=: cannot open the boot volume");
    }
    let mut file: *mut FileProtocolV1 = null_mut();
    // SAFETY: `root` is an open directory; `path` is NUL-terminated UCS-2.
    let status = unsafe { ((*root).open)(root, &mut file, path.as_ptr(), FileMode::READ, FileAttribute::empty()) };
    if status.0 != 0 || file.is_null() {
        efi.refuse(b"initrd=: no such file on the boot volume");
    }
    // The size: the position at the end (SetPosition to all ones).
    let mut size = 0u64;
    // SAFETY: `file` is open for reading.
    let status = unsafe {
        let a = ((*file).set_position)(file, u64::MAX);
        let b = ((*file).get_position)(file, &mut size);
        let c = ((*file).set_position)(file, 0);
        (a.0 | b.0 | c.0) == 0
    };
    if !status || size == 0 {
        efi.refuse(b"initrd=: the file is empty or its size unreadable");
    }
    let pa = efi
        .alloc_pages(size, MemoryType::LOADER_DATA)
        .unwrap_or_else(|| efi.refuse(b"initrd=: no memory for the initrd"));
    let mut read = size as usize;
    // SAFETY: `pa` holds `size` bytes allocated for this.
    let status = unsafe { ((*file).read)(file, &mut read, pa as *mut c_void) };
    // SAFETY: both are open; closing ends their use. A failed close of a
    // file only read changes nothing the kernel needs.
    unsafe {
        let _ = ((*file).close)(file);
        let _ = ((*root).close)(root);
    }
    if status.0 != 0 || read as u64 != size {
        efi.refuse(b"initrd=: reading the file failed");
    }
    (pa, size)
}

/// Cleans `[start, start + len)` from the data cache to the point of
/// coherency, by line.
fn clean_to_poc(start: u64, len: u64) {
    if len == 0 {
        return;
    }
    // SAFETY: `dc cvac` on memory the stub owns changes no contents.
    unsafe {
        core::arch::asm!(
            "mrs {line}, ctr_el0",
            "ubfx {line}, {line}, #16, #4",
            "mov {t}, #4",
            "lsl {line}, {t}, {line}",
            "sub {t}, {line}, #1",
            "bic {p}, {p}, {t}",
            "1: dc cvac, {p}",
            "add {p}, {p}, {line}",
            "cmp {p}, {end}",
            "b.lo 1b",
            "dsb sy",
            p = inout(reg) start => _,
            end = in(reg) start + len,
            line = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Enters the image at `image` with x0 = `dtb`, x1-x3 = 0, interrupts
/// masked, MMU and data cache off, as booting.rst asks (and as Linux's
/// `efi_enter_kernel` does). The firmware's identity map makes the switch
/// safe: the instruction after the one that turns the MMU off is fetched from
/// the same address, now physical. The few lines that run with caches off are
/// cleaned first, line by line at the CPU's smallest D-cache line, so they
/// are fetched as written.
///
/// # Safety
/// Boot services have exited; the image and the tree are in place and
/// cleaned to the point of coherency.
unsafe fn enter(image: u64, dtb: u64) -> ! {
    // SAFETY: per the contract; nothing after this needs the stub's memory.
    unsafe {
        core::arch::asm!(
            "msr daifset, #0xf",
            "mov x19, x0",
            "mov x0, x1",
            "mov x1, xzr",
            "mov x2, xzr",
            "mov x3, xzr",
            // Clean [1f, 3f) by the smallest D-cache line (CTR_EL0.DminLine:
            // 4 << n bytes), which may be as short as 16 bytes.
            "adr x4, 1f",
            "adr x5, 3f",
            "mrs x6, ctr_el0",
            "ubfx x6, x6, #16, #4",
            "mov x7, #4",
            "lsl x6, x7, x6",
            "sub x7, x6, #1",
            "bic x4, x4, x7",
            "4: dc civac, x4",
            "add x4, x4, x6",
            "cmp x4, x5",
            "b.lo 4b",
            "dsb sy",
            "ic iallu",
            "dsb sy",
            "isb",
            "mrs x4, CurrentEL",
            "cmp x4, #(2 << 2)",
            "b.eq 2f",
            "1:",
            "mrs x4, sctlr_el1",
            "bic x4, x4, #1",      // M
            "bic x4, x4, #(1 << 2)", // C
            "msr sctlr_el1, x4",
            "isb",
            "br x19",
            "2:",
            "mrs x4, sctlr_el2",
            "bic x4, x4, #1",
            "bic x4, x4, #(1 << 2)",
            "msr sctlr_el2, x4",
            "isb",
            "br x19",
            "3:",
            in("x0") image,
            in("x1") dtb,
            options(noreturn),
        );
    }
}
