"""gdb commands for splitmap, loaded by `splitmap gdb`.

The kernel publishes where it runs in a page at a fixed address, the debug
record (kernel/src/debug/record.rs): its KASLR offset, and every loaded
module's sections. These commands read it, so symbols follow KASLR and
modules without a second boot:

  sm-early [PA]  load the kernel's symbols at the physical address it runs
               at before the MMU is on (found in QEMU's loaded images or
               below the PC, or given): break on the early code by name
  sm-link      load the kernel's symbols at its link address, where it runs
               from the MMU on until KASLR moves it: break on what runs
               before the record is published (device tree, linear map,
               KASLR's choice)
  sm-boot      run until boot has published the record, then load symbols
  sm-symbols   load the kernel's symbols at the running address and each
               loaded module's at its sections' addresses (like lx-symbols);
               re-run by itself after every insmod and rmmod
  sm-kaslr     what the record says: offset, text, image PA, modules
  sm-layout    where this boot put things: image, linear map, module windows,
               the fixed windows, each loaded module
  sm-walk VA   the page-table walk for VA, read by gdb from the live tables
               (through the linear map, which maps every table page)

`splitmap gdb` sets SPLITMAP_ELF (the kernel with symbols) and
SPLITMAP_MODULES (the folder of NAME.ko files, and of the NAME.ko.debug
copies with debug info that the build writes beside its own) in gdb's
environment.
"""

import os
import struct

import gdb

RECORD = 0xFFFFFFFFFE400000
MAGIC = int.from_bytes(b"SPLITMAP", "little")
MAX_MODULES = 16
FIELDS = ["magic", "version", "offset", "text", "image_pa", "generation", "count",
          "phys_offset", "ttbr1", "image_end", "plt_start", "plt_end"]
PAGE_OFFSET = 0xFFFF000000000000
# The kernel's link address (kernel/pi/src/layout.rs), where _text is.
KIMAGE_VADDR = 0xFFFF800080000000
MASK64 = (1 << 64) - 1
# The arm64 Image header (Documentation/arch/arm64/booting.rst): image_size
# at 16, the magic "ARM\x64" at 56.
IMAGE_MAGIC = b"ARM\x64"
# The fixed windows (kernel/pi/src/layout.rs); the debug record is one page.
FIXED = [("mmio", 0xFFFFFFFFF0000000, 0xFFFFFFFFF8000000),
         ("gic-dist", 0xFFFFFFFFF8000000, 0xFFFFFFFFF9000000),
         ("gic-cpu", 0xFFFFFFFFF9000000, 0xFFFFFFFFFE000000),
         ("dtb", 0xFFFFFFFFFE000000, 0xFFFFFFFFFE400000),
         ("debug", RECORD, None),
         ("guard", 0xFFFFFFFFFF000000, 0xFFFFFFFFFF010000),
         ("stack", 0xFFFFFFFFFF010000, 0xFFFFFFFFFF020000)]
VA_BITS = 48
ENTRY = 32 + 3 * 8  # name, base, sections pointer, sections length


def u64(addr):
    return struct.unpack("<Q", bytes(gdb.selected_inferior().read_memory(addr, 8)))[0]


def record():
    """The record as a dict, or None before boot has published it."""
    try:
        if u64(RECORD) != MAGIC:
            return None
    except gdb.MemoryError:
        return None
    fields = FIELDS
    r = {name: u64(RECORD + 8 * i) for i, name in enumerate(fields)}
    inferior = gdb.selected_inferior()
    modules = []
    for i in range(min(r["count"], MAX_MODULES)):
        at = RECORD + 8 * len(fields) + i * ENTRY
        name = bytes(inferior.read_memory(at, 32)).split(b"\0")[0].decode()
        base, pointer, length = (u64(at + 32 + 8 * k) for k in range(3))
        sections = bytes(inferior.read_memory(pointer, length)).decode() if length else ""
        modules.append((name, base, sections))
    r["modules"] = modules
    return r


def load_kernel_symbols(offset):
    """The kernel's symbols, `offset` bytes above its link address."""
    gdb.execute(f"symbol-file -o {offset & MASK64:#x} {os.environ['SPLITMAP_ELF']}", to_string=True)


def page_size():
    """The running kernel's page size, from TCR_EL1.TG1 (the granule of the
    tables behind TTBR1): 0b01 16K, 0b10 4K, 0b11 64K."""
    tg1 = (int(gdb.parse_and_eval("$TCR_EL1")) >> 30) & 3
    if tg1 not in (1, 2, 3):
        raise gdb.GdbError(f"TCR_EL1.TG1 = {tg1}: the MMU is not set up yet")
    return {1: 16 << 10, 2: 4 << 10, 3: 64 << 10}[tg1]


def size_name(size):
    return f"{size >> 30}G" if size >= 1 << 30 else f"{size >> 20}M" if size >= 1 << 20 else f"{size >> 10}K"


def need_record():
    """The record, or a gdb error saying how to get one."""
    r = record()
    if r is None:
        raise gdb.GdbError("the kernel has not published its debug record yet: run sm-boot")
    return r


class Boot(gdb.Command):
    """Runs until the kernel has published where it runs (a watchpoint on the
    debug record), then loads its symbols there: breakpoints on kernel
    functions then hit whatever KASLR chose."""

    def __init__(self):
        super().__init__("sm-boot", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        if record() is None:
            # The expression is C, whatever frame (Rust, say) gdb stopped in.
            language = gdb.parameter("language")
            gdb.execute("set language c", to_string=True)
            try:
                watch = gdb.Breakpoint(f"*(unsigned long long *){RECORD:#x}", gdb.BP_WATCHPOINT, internal=True)
            finally:
                gdb.execute(f"set language {language}", to_string=True)
            watch.silent = True
            while record() is None:
                gdb.execute("continue", to_string=True)
            watch.delete()
        gdb.execute("sm-symbols")


def image_size():
    """Bytes the image takes in memory, as its header says (`_end - _text`)."""
    return int(gdb.parse_and_eval("(unsigned long)&_end - (unsigned long)&_text"))


def holds_kernel(pa):
    """Whether an Image header of this kernel's size is at physical `pa`."""
    try:
        header = bytes(gdb.selected_inferior().read_memory(pa, 64))
    except gdb.MemoryError:
        return False
    return header[56:60] == IMAGE_MAGIC and struct.unpack("<Q", header[16:24])[0] == image_size()


def image_candidates():
    """Where a kernel image may be before the MMU is on: the pages below the
    PC, as far back as this image is long, then what QEMU loaded."""
    pc = int(gdb.parse_and_eval("$pc")) & MASK64
    candidates = []
    if pc < 1 << 48:  # MMU off: the PC is a physical address
        page = pc & ~0xFFF
        candidates += [page - k * 0x1000 for k in range(image_size() // 0x1000) if page >= k * 0x1000]
    roms = gdb.execute("monitor info roms", to_string=True)
    candidates += [int(word[5:], 16) for word in roms.split() if word.startswith("addr=")]
    return candidates


def find_image():
    """The physical address of the kernel image, before the MMU is on: the
    start of the image the PC is in, or one QEMU loaded (`info roms`)."""
    for pa in image_candidates():
        if holds_kernel(pa):
            return pa
    raise gdb.GdbError("the kernel image is not in memory yet (a loader copies it there later): "
                       "give its physical address, `sm-early 0x…`, or stop in its first instructions first")


def header_granule():
    """The page size ('4k', '16k', '64k') the first Image in memory was built
    for, from its header's flags (bits 1-2): what tells, before the MMU is
    on, which build of the kernel runs; None if no Image header is found."""
    for pa in image_candidates():
        try:
            header = bytes(gdb.selected_inferior().read_memory(pa, 64))
        except gdb.MemoryError:
            continue
        flags = struct.unpack("<Q", header[24:32])[0]
        # Bit 3, placed anywhere in RAM: the kernel's header sets it, and
        # stage-0's (also an Image, always 4 KiB) does not.
        if header[56:60] == IMAGE_MAGIC and flags & 8:
            return {1: "4k", 2: "16k", 3: "64k"}.get((flags >> 1) & 3)
    return None


class Early(gdb.Command):
    """sm-early [PA]: loads the kernel's symbols at the physical address the
    image runs at before the MMU is on (PA, or where find_image finds it), so
    `break pi::boot::create_boot_tables` hits in the early code. sm-boot (or
    sm-symbols) moves them to the virtual addresses once the MMU is on."""

    def __init__(self):
        super().__init__("sm-early", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        pa = int(gdb.parse_and_eval(arg)) & MASK64 if arg.strip() else find_image()
        load_kernel_symbols(pa - KIMAGE_VADDR)
        print(f"splitmap: early symbols at pa={pa:#x}: the code runs there until the MMU is on; "
              "sm-boot moves the symbols to where KASLR puts the kernel")


class Link(gdb.Command):
    """sm-link: loads the kernel's symbols at its link address. From the
    moment the MMU is on the kernel runs there, reading the device tree,
    building the linear map and choosing its KASLR offset, until it moves (or
    for good, with nokaslr) and only then publishes the record; so with
    `splitmap gdb --early`, `sm-link` and a breakpoint stop in that code.
    QEMU matches breakpoints on the virtual PC, so they can be set while the
    MMU is still off. sm-boot then follows the move."""

    def __init__(self):
        super().__init__("sm-link", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        load_kernel_symbols(0)
        print(f"splitmap: kernel symbols at the link address {KIMAGE_VADDR:#x}: the code runs there "
              "from the MMU on until KASLR moves it; sm-boot follows the move")


class Symbols(gdb.Command):
    """Loads the kernel's symbols at the running address and each loaded
    module's at its sections (add-symbol-file -s), from the debug record."""

    def __init__(self):
        super().__init__("sm-symbols", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        r = need_record()
        load_kernel_symbols(r["offset"])
        loaded = []
        for name, base, sections in r["modules"]:
            ko = module_file(name)
            if ko and sections:
                gdb.execute(f"add-symbol-file {ko} {sections}", to_string=True)
                loaded.append(name)
        print(f"splitmap: kernel symbols at offset {r['offset']:#x}"
              + (f"; modules: {', '.join(loaded)}" if loaded else ""))
        watch_modules()


def module_file(name):
    """The file to read module `name`'s symbols from: NAME.ko.debug, the
    copy the build keeps its debug info in (function names by their Rust
    path, source lines), else NAME.ko itself; None if neither is there."""
    ko = os.path.join(os.environ.get("SPLITMAP_MODULES", ""), name + ".ko")
    for path in (ko + ".debug", ko):
        if os.path.exists(path):
            return path
    return None


class ModulesChanged(gdb.Breakpoint):
    """A breakpoint that never stops: each time the kernel has listed the
    modules anew, it reloads their symbols and lets the kernel go on."""

    def stop(self):
        gdb.execute("sm-symbols", to_string=True)
        return False


HOOK = None


def watch_modules():
    global HOOK
    if HOOK is None:
        HOOK = ModulesChanged("splitmap_modules_changed", internal=True)


class Kaslr(gdb.Command):
    """Prints what the debug record says: KASLR offset, text, image PA and the
    loaded modules."""

    def __init__(self):
        super().__init__("sm-kaslr", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        r = need_record()
        print(f"offset={r['offset']:#x} text={r['text']:#x} image_pa={r['image_pa']:#x}")
        for name, base, _ in r["modules"]:
            print(f"module {name} base={base:#x}")


class Layout(gdb.Command):
    """Prints where this boot put things, from the debug record: one
    `NAME va=0xSTART-0xEND` line a region, as the kernel's `layout` names them."""

    def __init__(self):
        super().__init__("sm-layout", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        r = need_record()
        print(f"image    va={r['text']:#x}-{r['image_end']:#x} pa={r['image_pa']:#x}")
        print(f"linear   va={PAGE_OFFSET:#x}- pa={r['phys_offset']:#x}- (PHYS_OFFSET)")
        print(f"modules  va={r['plt_start']:#x}-{r['plt_end']:#x}")
        for name, start, end in FIXED:
            print(f"{name:<8} va={start:#x}-{end or start + page_size():#x}")
        for name, base, _ in r["modules"]:
            print(f"module   va={base:#x} {name}")


class Walk(gdb.Command):
    """sm-walk VA: the table walk the MMU does for VA, from the live tables,
    ending as the kernel's `walk` does: `=> pa=0x… level=N size=…`. In any
    granule: a level resolves log2(page size) - 3 bits of the address, and
    the walk starts at the level that leaves 48 bits covered (0 for 4K and
    16K pages, 1 for 64K)."""

    def __init__(self):
        super().__init__("sm-walk", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        r = need_record()
        va = int(gdb.parse_and_eval(arg)) & MASK64
        if va >> VA_BITS != 0xFFFF:
            raise gdb.GdbError(f"{va:#x} is not a kernel address (TTBR1 maps 0xffff...)")
        page = page_size()
        page_shift = page.bit_length() - 1
        bits = page_shift - 3
        levels = -(-(VA_BITS - page_shift) // bits)
        table = r["ttbr1"]
        for level in range(4 - levels, 4):
            shift = page_shift + bits * (3 - level)
            index = ((va & ((1 << VA_BITS) - 1)) >> shift) & ((1 << bits) - 1)
            # Every table page is RAM, which the linear map covers.
            entry = u64(PAGE_OFFSET + table - r["phys_offset"] + 8 * index)
            print(f"L{level} table={table:#x} [{index:3}] = {entry:#018x}")
            if entry & 1 == 0:
                print(f"=> fault: {va:#x} is not mapped (translation fault at level {level})")
                return
            size = 1 << shift
            if level == 3 or entry & 2 == 0:
                out = entry & ((1 << VA_BITS) - 1) & ~(size - 1)
                print(f"=> pa={out + (va & (size - 1)):#x} level={level} size={size_name(size)}")
                return
            table = entry & ((1 << VA_BITS) - 1) & ~(page - 1)


Early()
Link()
Boot()
Symbols()
Kaslr()
Layout()
Walk()
