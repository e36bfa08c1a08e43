//! Stage-1 translation tables: descriptor encoding, one mapper, one walker.
//!
//! The shape of the tables (page size, bits per level, the first level, which
//! levels may hold blocks) is the table owner's [`Granule`], asked through
//! [`TableAccess::granule`]; the logic is the same for every granule. The
//! kernel uses [`crate::layout::GRANULE`], and the free functions
//! ([`level_shift`], [`level_size`], [`ENTRIES`]) describe that one.
//!
//! The same code builds the early tables before the MMU is on (tables reached by
//! their physical address) and the linear map afterwards (tables reached through
//! the image or the linear map): [`TableAccess`] says how a table page is reached.
//! Nothing here panics, allocates or touches a system register: it is pure logic,
//! safe to run at any address, and unit-tested on the host.

use crate::addr::PhysAddr;
use crate::layout::GRANULE;

pub mod granule;
pub use granule::{Granule, LAST_LEVEL};

/// Entries per table page of the kernel's granule.
pub const ENTRIES: usize = GRANULE.entries();
/// The shallowest level that may hold a block in the kernel's granule.
pub const FIRST_BLOCK_LEVEL: usize = GRANULE.first_block_level();

/// log2 of the bytes one entry covers at `level`, in the kernel's granule.
pub const fn level_shift(level: usize) -> u32 {
    GRANULE.level_shift(level)
}

/// Bytes mapped by one entry at `level`, in the kernel's granule.
pub const fn level_size(level: usize) -> u64 {
    GRANULE.level_size(level)
}

/// Size of a table page (one granule).
pub const TABLE_SIZE: u64 = GRANULE.page_size();

// Descriptor bits (ARM ARM D8.3, VMSAv8-64 descriptor formats).
const VALID: u64 = 1 << 0;
/// At levels 0-2: the entry points to a table. At level 3 it must be set for a page.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u32 = 2;
/// AP[2]: read-only at every exception level.
const AP_READ_ONLY: u64 = 1 << 7;
/// SH = 0b11: inner shareable.
const INNER_SHAREABLE: u64 = 3 << 8;
/// Access flag: set up front so no access-flag faults are taken.
const ACCESS_FLAG: u64 = 1 << 10;
/// Contiguous: this entry is one of an aligned run of like entries (see
/// [`Granule::contiguous_entries`]) that one TLB entry may cover.
pub const CONTIGUOUS: u64 = 1 << 52;
/// Privileged execute-never.
const PXN: u64 = 1 << 53;
/// Unprivileged execute-never: EL0 never runs kernel memory.
const UXN: u64 = 1 << 54;
/// Output address bits [47:12].
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
/// The first physical address a descriptor cannot hold.
const OUTPUT_ADDRESS_END: u64 = 1 << 48;

/// MAIR_EL1 attribute index of Device-nGnRE memory.
pub const MAIR_IDX_DEVICE: u64 = 0;
/// MAIR_EL1 attribute index of Normal write-back cacheable memory.
pub const MAIR_IDX_NORMAL: u64 = 1;
/// MAIR_EL1 value matching the indices above: 0x04 = Device-nGnRE,
/// 0xff = Normal, inner and outer write-back, read- and write-allocate.
pub const MAIR_VALUE: u64 = (0x04 << (8 * MAIR_IDX_DEVICE)) | (0xff << (8 * MAIR_IDX_NORMAL));

/// What a mapping permits. Nothing is ever writable and executable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// Kernel text.
    ReadExec,
    /// Read-only data.
    ReadOnly,
    /// Data, stacks, the linear map, devices.
    ReadWrite,
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Cacheable RAM.
    Normal,
    /// Device registers: Device-nGnRE, never executable.
    Device,
}

/// Attributes of a leaf mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Permissions.
    pub prot: Prot,
    /// Memory type.
    pub mem: MemType,
}

impl Attrs {
    /// Kernel text.
    pub const TEXT: Attrs = Attrs {
        prot: Prot::ReadExec,
        mem: MemType::Normal,
    };
    /// Read-only data.
    pub const RODATA: Attrs = Attrs {
        prot: Prot::ReadOnly,
        mem: MemType::Normal,
    };
    /// Writable data, never executable.
    pub const DATA: Attrs = Attrs {
        prot: Prot::ReadWrite,
        mem: MemType::Normal,
    };
    /// Device registers.
    pub const DEVICE: Attrs = Attrs {
        prot: Prot::ReadWrite,
        mem: MemType::Device,
    };

    /// The descriptor bits (everything but the output address and type bits).
    const fn bits(self) -> u64 {
        let index = match self.mem {
            MemType::Normal => MAIR_IDX_NORMAL,
            MemType::Device => MAIR_IDX_DEVICE,
        };
        let exec = matches!((self.prot, self.mem), (Prot::ReadExec, MemType::Normal));
        let read_only = !matches!(self.prot, Prot::ReadWrite);
        (index << ATTR_INDEX_SHIFT)
            | INNER_SHAREABLE
            | ACCESS_FLAG
            | UXN
            | if exec { 0 } else { PXN }
            | if read_only { AP_READ_ONLY } else { 0 }
    }
}

/// Permissions as decoded from a live descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedProt {
    /// AP\[2\] clear.
    pub write: bool,
    /// PXN clear.
    pub exec: bool,
    /// AttrIndx names Device memory.
    pub device: bool,
}

impl DecodedProt {
    /// `rwx`-style string: `r-x`, `r--`, `rw-` (or `rwx`, which must never appear).
    pub const fn as_str(self) -> &'static str {
        match (self.write, self.exec) {
            (false, true) => "r-x",
            (false, false) => "r--",
            (true, false) => "rw-",
            (true, true) => "rwx",
        }
    }
}

/// One decoded table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Translation fault.
    Invalid,
    /// Points to the next-level table.
    Table(PhysAddr),
    /// A block (levels 1-2) or page (level 3) mapping.
    Leaf {
        /// Output address.
        pa: PhysAddr,
        /// Permissions and type.
        prot: DecodedProt,
    },
}

impl Entry {
    /// Decodes `raw` found at `level`.
    pub const fn decode(raw: u64, level: usize) -> Entry {
        if raw & VALID == 0 {
            return Entry::Invalid;
        }
        let pa = PhysAddr::new(raw & ADDR_MASK);
        let table_bit = raw & TABLE_OR_PAGE != 0;
        if level < LAST_LEVEL && table_bit {
            return Entry::Table(pa);
        }
        if level == LAST_LEVEL && !table_bit {
            // A level-3 entry without bit 1 is reserved and faults like an invalid one.
            return Entry::Invalid;
        }
        let prot = DecodedProt {
            write: raw & AP_READ_ONLY == 0,
            exec: raw & PXN == 0,
            device: (raw >> ATTR_INDEX_SHIFT) & 7 == MAIR_IDX_DEVICE,
        };
        Entry::Leaf { pa, prot }
    }
}

/// Encodes a table descriptor.
pub const fn table_descriptor(next: PhysAddr) -> u64 {
    (next.raw() & ADDR_MASK) | TABLE_OR_PAGE | VALID
}

/// Encodes a leaf descriptor (block at levels 1-2, page at level 3).
pub const fn leaf_descriptor(pa: PhysAddr, level: usize, attrs: Attrs) -> u64 {
    let kind = if level == LAST_LEVEL { TABLE_OR_PAGE } else { 0 };
    (pa.raw() & ADDR_MASK) | attrs.bits() | kind | VALID
}

/// How table pages are reached from the code that is running.
///
/// Reading a table needs `&self`; writing one needs `&mut self`. So every
/// function of this module that writes entries ([`map`], [`unmap`],
/// [`build_split`], [`set_entry`]) takes `&mut A`, and only the holder of the
/// implementor's exclusive borrow (in the kernel: the holder of the tables'
/// lock) can change a table; [`walk`] and [`count`] take `&A`.
///
/// A shared borrow is not enough to unmap:
///
/// ```compile_fail
/// # use pi::addr::PhysAddr;
/// # use pi::pgtable::{self, TableAccess};
/// # struct Page([u64; 512]);
/// # // SAFETY: the one page is reached at every PA, through `self`.
/// # unsafe impl TableAccess for Page {
/// #     fn table_ptr(&self, _: PhysAddr) -> *const u64 { self.0.as_ptr() }
/// #     fn table_ptr_mut(&mut self, _: PhysAddr) -> *mut u64 { self.0.as_mut_ptr() }
/// # }
/// let page = Page([0; 512]);
/// pgtable::unmap(&page, PhysAddr::new(0), 0, 4096);
/// ```
///
/// An exclusive one is:
///
/// ```
/// # use pi::addr::PhysAddr;
/// # use pi::pgtable::{self, TableAccess};
/// # struct Page([u64; 512]);
/// # // SAFETY: the one page is reached at every PA, through `self`.
/// # unsafe impl TableAccess for Page {
/// #     fn table_ptr(&self, _: PhysAddr) -> *const u64 { self.0.as_ptr() }
/// #     fn table_ptr_mut(&mut self, _: PhysAddr) -> *mut u64 { self.0.as_mut_ptr() }
/// # }
/// let mut page = Page([0; 512]);
/// assert_eq!(pgtable::unmap(&mut page, PhysAddr::new(0), 0, 4096), Ok(0));
/// ```
///
/// # Safety
/// The functions of this module call these methods only with a `pa` that is
/// the root they were given or a table page reached from it (the next-level
/// address in a table descriptor, or a page from [`TableAlloc::alloc_table`]).
/// For every such `pa` the implementor guarantees:
///
/// - `table_ptr(pa)` returns a pointer, 8-byte aligned, to the [`Granule::entries`]
///   entries of that table page, valid for reads for as long as the `&self`
///   borrow it was obtained through lasts.
/// - `table_ptr_mut(pa)` returns such a pointer valid for reads *and writes* for
///   as long as the `&mut self` borrow it was obtained through lasts. If the
///   pages are memory that `self` owns, the pointer must be derived from a
///   mutable borrow of it, never from a shared one.
/// - While either pointer is in use, no Rust reference (`&` or `&mut`) to those
///   entries exists and nothing else writes them. Writes happen only through
///   `table_ptr_mut`, so the implementor must make sure that whoever can get
///   `&mut self` is the only writer of its pages: no other value that reaches
///   the same pages may be mutably borrowed at the same time (one owner, or a
///   lock around the only such value, ensures it). Readers outside Rust, such
///   as the MMU's table walker, are allowed: entries are read and written with
///   single volatile 64-bit accesses.
pub unsafe trait TableAccess {
    /// The granule the tables are built in (the kernel's, unless said).
    fn granule(&self) -> Granule {
        GRANULE
    }

    /// Pointer to the first entry of the table page at `pa`, for reading.
    fn table_ptr(&self, pa: PhysAddr) -> *const u64;

    /// Pointer to the first entry of the table page at `pa`, for reading and
    /// writing.
    fn table_ptr_mut(&mut self, pa: PhysAddr) -> *mut u64;
}

/// Where new table pages come from.
pub trait TableAlloc: TableAccess {
    /// A zeroed table page, or `None` when none is left.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
}

/// A table page [`unmap_free`] unlinked: it held no valid entry, and the
/// descriptor that pointed to it is cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreedTable {
    /// The table page.
    pub table: PhysAddr,
    /// The level of its entries (the descriptor that pointed to it was one
    /// level up).
    pub level: usize,
    /// The first virtual address it translated; it translated the granule's
    /// `level_size(level - 1)` bytes from there.
    pub va: u64,
}

/// Where table pages go back to.
pub trait TableFree: TableAccess {
    /// Takes back the table page [`unmap_free`] just unlinked.
    ///
    /// The descriptor that pointed to it is already cleared (one 64-bit
    /// store), but a table walk in flight, or a walk cache, may still reach
    /// the page: this is the break of break-before-make. Before the page is
    /// written or handed to anyone, the implementor makes the store visible
    /// to the walker and invalidates what the TLBs cached through it (for
    /// the `va` range it translated). On the host there is no walker.
    fn free_table(&mut self, freed: FreedTable);
}

/// Why a mapping was refused. Nothing was changed for the part of the range at
/// and after the reported address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `va`, `pa` or `len` is not a multiple of the page size, or `len` is zero.
    Misaligned,
    /// The physical range reaches past the 48 bits a descriptor holds.
    BeyondOutputAddress,
    /// Something is already mapped at this address: live entries are never
    /// rewritten (that would need break-before-make).
    AlreadyMapped {
        /// First virtual address found mapped.
        va: u64,
    },
    /// No table page was left.
    OutOfTables,
}

/// Descriptors written or found, by level (their sizes are the granule's:
/// with 4 KiB pages, 1 GiB blocks, 2 MiB blocks and 4 KiB pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCounts {
    /// Blocks at level 1.
    pub blocks_l1: u64,
    /// Blocks at level 2.
    pub blocks_l2: u64,
    /// Pages (level 3).
    pub pages: u64,
    /// Table pages allocated (by [`map`]) or visited below the root (by [`count`]).
    pub tables: u64,
    /// Runs of leaves marked with the contiguous bit.
    pub contiguous: u64,
}

impl core::ops::Add for MapCounts {
    type Output = MapCounts;

    fn add(self, o: MapCounts) -> MapCounts {
        MapCounts {
            blocks_l1: self.blocks_l1 + o.blocks_l1,
            blocks_l2: self.blocks_l2 + o.blocks_l2,
            pages: self.pages + o.pages,
            tables: self.tables + o.tables,
            contiguous: self.contiguous + o.contiguous,
        }
    }
}

impl core::ops::AddAssign for MapCounts {
    fn add_assign(&mut self, o: MapCounts) {
        *self = *self + o;
    }
}

impl MapCounts {
    /// Leaf descriptors at `level` (none at level 0, which holds no leaf).
    pub fn at_level(&self, level: usize) -> u64 {
        match level {
            1 => self.blocks_l1,
            2 => self.blocks_l2,
            LAST_LEVEL => self.pages,
            _ => 0,
        }
    }

    /// Leaf descriptors at every level.
    pub fn leaves(&self) -> u64 {
        self.blocks_l1 + self.blocks_l2 + self.pages
    }

    fn add_leaves(&mut self, level: usize, n: u64) {
        match level {
            1 => self.blocks_l1 += n,
            2 => self.blocks_l2 += n,
            _ => self.pages += n,
        }
    }
}

/// Shape limits for [`map`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Largest block that fits (with 4 KiB pages: 1 GiB, then 2 MiB, then pages).
    LargestBlocks,
    /// Pages only.
    PagesOnly,
    /// The largest blocks, and the contiguous bit on every aligned run of
    /// like leaves (the linear map): it saves no descriptor, but one TLB
    /// entry may cover the run.
    Contiguous,
}

impl Granularity {
    fn blocks(self) -> bool {
        self != Granularity::PagesOnly
    }
}

/// Reads entry `index` of the table at `table`.
fn read_entry<A: TableAccess + ?Sized>(mem: &A, table: PhysAddr, index: usize) -> u64 {
    TableView::of(mem, table).get(index)
}

/// One table page, for a run of reads of its entries under one shared
/// borrow of the tables: where the page is is asked once, not once an
/// entry (see [`TablePage`]; counting the linear map of a tree of 32 RAM
/// ranges read ~24 k entries, and asking for each cost 295 k instructions).
struct TableView<'a> {
    base: *const u64,
    /// Entries in the page, less one: indices are masked with it.
    mask: usize,
    _tables: core::marker::PhantomData<&'a ()>,
}

impl<'a> TableView<'a> {
    fn of<A: TableAccess + ?Sized>(mem: &'a A, table: PhysAddr) -> Self {
        TableView {
            mask: mem.granule().entries() - 1,
            base: mem.table_ptr(table),
            _tables: core::marker::PhantomData,
        }
    }

    /// Entry `index`, raw.
    fn get(&self, index: usize) -> u64 {
        // SAFETY: `TableAccess` guarantees a table page of the granule's
        // entries behind `base`, valid for reads while the borrow it came
        // through lasts (`'a`, which `self` carries), and `index` is masked
        // below that count. Volatile because the hardware walker reads the
        // same memory.
        unsafe { self.base.add(index & self.mask).read_volatile() }
    }
}

/// Writes entry `index` of the table at `table` with a single 64-bit store, so
/// the walker sees either the old or the new descriptor, never a mix.
fn write_entry<A: TableAccess + ?Sized>(mem: &mut A, table: PhysAddr, index: usize, raw: u64) {
    TablePage::of(mem, table).set(index, raw);
}

/// One table page, for a run of reads and writes of its entries under one
/// exclusive borrow of the tables: where the page is is asked once, not once
/// an entry. (The kernel's answer is a range check and an offset; asked
/// twice for each of the ~430 leaves of the image that a KASLR move maps
/// and unmaps, it was 15 k instructions.)
struct TablePage<'a> {
    base: *mut u64,
    /// Entries in the page, less one: indices are masked with it.
    mask: usize,
    _tables: core::marker::PhantomData<&'a mut ()>,
}

impl<'a> TablePage<'a> {
    fn of<A: TableAccess + ?Sized>(mem: &'a mut A, table: PhysAddr) -> Self {
        TablePage {
            mask: mem.granule().entries() - 1,
            base: mem.table_ptr_mut(table),
            _tables: core::marker::PhantomData,
        }
    }

    /// Entry `index`, raw.
    fn get(&self, index: usize) -> u64 {
        // SAFETY: `TableAccess` guarantees a table page of the granule's
        // entries behind `base`, valid for reads and writes while the `&mut`
        // borrow it came through lasts (`'a`, which `self` carries), and
        // `index` is masked below that count. Volatile because the hardware
        // walker reads the same memory.
        unsafe { self.base.add(index & self.mask).read_volatile() }
    }

    /// Writes entry `index` with a single 64-bit store, so the walker sees
    /// either the old or the new descriptor, never a mix.
    fn set(&mut self, index: usize, raw: u64) {
        // SAFETY: as in `get`; `&mut self` is the one writer for `'a`.
        unsafe { self.base.add(index & self.mask).write_volatile(raw) }
    }

    /// Entries `index..index + n` as a first index and a count that stay
    /// inside the page (the count cut short at its end), so that a batch is
    /// checked once, not once an entry.
    fn run(&self, index: usize, n: usize) -> (usize, usize) {
        let start = index & self.mask;
        (start, n.min(self.mask + 1 - start))
    }

    /// The bitwise OR of entries `index..index + n` (see [`TablePage::run`]):
    /// one load and one `orr` an entry.
    fn or_of(&self, index: usize, n: usize) -> u64 {
        let (start, n) = self.run(index, n);
        let mut any = 0;
        for i in start..start + n {
            // SAFETY: as in `get`; `run` keeps `i` below the page's entries.
            any |= unsafe { self.base.add(i).read_volatile() };
        }
        any
    }

    /// Writes entries `index..index + n` (see [`TablePage::run`]) with
    /// `first`, `first + step`, and so on, each with a single 64-bit store.
    fn fill(&mut self, index: usize, n: usize, first: u64, step: u64) {
        let (start, n) = self.run(index, n);
        let mut raw = first;
        for i in start..start + n {
            // SAFETY: as in `set`; `run` keeps `i` below the page's entries.
            unsafe { self.base.add(i).write_volatile(raw) };
            raw = raw.wrapping_add(step);
        }
    }
}

/// Maps `[va, va + len)` to `[pa, pa + len)` below `root`, using at each level the
/// largest block whose virtual address, physical address and remaining length are
/// all aligned to it (unless `granularity` forbids blocks), and allocating a
/// next-level table only when no block fits. This is the descent of Linux's
/// `__create_pgd_mapping`, written once for every caller.
///
/// Returns what was written. The caller makes the new entries visible to the
/// walker (DSB) before relying on them.
///
/// # Errors
/// - [`MapError::Misaligned`]: an argument is not page-aligned or `len` is zero.
/// - [`MapError::AlreadyMapped`]: an entry in the way is already valid.
/// - [`MapError::OutOfTables`]: the allocator ran dry.
pub fn map<A: TableAlloc + ?Sized>(
    mem: &mut A,
    root: PhysAddr,
    va: u64,
    pa: PhysAddr,
    len: u64,
    attrs: Attrs,
    granularity: Granularity,
) -> Result<MapCounts, MapError> {
    let g = mem.granule();
    let page = g.page_size();
    if len == 0 || !va.is_multiple_of(page) || !pa.is_aligned(page) || !len.is_multiple_of(page) {
        return Err(MapError::Misaligned);
    }
    // Past 2^48 a descriptor would silently drop the high bits.
    if pa.raw().checked_add(len).is_none_or(|end| end > OUTPUT_ADDRESS_END) {
        return Err(MapError::BeyondOutputAddress);
    }
    let mut counts = MapCounts::default();
    map_level(mem, root, g.first_level(), va, pa, len, attrs, granularity, &mut counts)?;
    Ok(counts)
}

/// How much of `[va, va + len)` the entry of `size` bytes (a power of
/// two) that holds `va` covers: the bytes from `va` to the end of that
/// entry's span, or `len` if less. Every walk of a range level by level
/// steps by it. Always inlined, as the four walks had it written out.
#[inline(always)]
fn in_entry(va: u64, len: u64, size: u64) -> u64 {
    let span_left = size - (va & (size - 1));
    if len < span_left { len } else { span_left }
}

#[allow(clippy::too_many_arguments)]
fn map_level<A: TableAlloc + ?Sized>(
    mem: &mut A,
    table: PhysAddr,
    level: usize,
    mut va: u64,
    mut pa: PhysAddr,
    mut len: u64,
    attrs: Attrs,
    granularity: Granularity,
    counts: &mut MapCounts,
) -> Result<(), MapError> {
    let g = mem.granule();
    let size = g.level_size(level);
    while len > 0 {
        let index = g.index(va, level);
        let chunk = in_entry(va, len, size);
        let blocks_allowed = g.block_allowed(level) && granularity.blocks();
        let whole_entry = chunk == size && pa.is_aligned(size);
        let done = if level == LAST_LEVEL || (blocks_allowed && whole_entry) {
            // Leaves from `index` on, in one batch: a whole aligned run,
            // every entry marked; or else as many like entries as this
            // table and the range hold (with the contiguous bit wanted, only
            // up to the next run boundary, where a run may start). So the
            // descent runs once per table, not once per page.
            let run = g.contiguous_entries(level);
            let run_bytes = run as u64 * size;
            let marked = granularity == Granularity::Contiguous
                && run > 0
                && va.is_multiple_of(run_bytes)
                && pa.is_aligned(run_bytes)
                && len >= run_bytes;
            let n = if marked {
                run
            } else {
                let in_table = g.entries_at(level) - index;
                let mut n = in_table.min((len / size) as usize);
                if granularity == Granularity::Contiguous && run > 0 {
                    n = n.min(run - index % run);
                }
                n
            };
            let contiguous = if marked { CONTIGUOUS } else { 0 };
            write_leaves(mem, table, level, index, n, va, pa, attrs, contiguous)?;
            counts.add_leaves(level, n as u64);
            counts.contiguous += u64::from(marked);
            n as u64 * size
        } else {
            let next = match Entry::decode(read_entry(mem, table, index), level) {
                Entry::Table(next) => next,
                Entry::Invalid => {
                    let next = mem.alloc_table().ok_or(MapError::OutOfTables)?;
                    // The new table is zeroed, so publishing it maps nothing yet.
                    write_entry(mem, table, index, table_descriptor(next));
                    counts.tables += 1;
                    next
                }
                Entry::Leaf { .. } => return Err(MapError::AlreadyMapped { va }),
            };
            map_level(mem, next, level + 1, va, pa, chunk, attrs, granularity, counts)?;
            chunk
        };
        va = va.wrapping_add(done);
        pa = pa.add(done);
        len -= done;
    }
    Ok(())
}

/// Writes `n` leaves at `level` from entry `index` of `table` on, mapping
/// `va` onwards to `pa` onwards, each with `extra` bits (the contiguous bit,
/// or none), after checking that none of the entries is valid: a refusal
/// leaves the batch unwritten.
#[allow(clippy::too_many_arguments)]
fn write_leaves<A: TableAccess + ?Sized>(
    mem: &mut A,
    table: PhysAddr,
    level: usize,
    index: usize,
    n: usize,
    va: u64,
    pa: PhysAddr,
    attrs: Attrs,
    extra: u64,
) -> Result<(), MapError> {
    let size = mem.granule().level_size(level);
    let mut page = TablePage::of(mem, table);
    // Every entry without VALID is invalid: one OR over the batch clears it
    // (in the boot's batches, 9 instructions an entry against 17 for the
    // decode of each: 3.7 k of the early phase with 4 KiB pages); only a
    // batch with a VALID bit in it is decoded entry by entry.
    if page.or_of(index, n) & VALID != 0
        && let Some(i) = (0..n).find(|&i| Entry::decode(page.get(index + i), level) != Entry::Invalid)
    {
        return Err(MapError::AlreadyMapped {
            va: va.wrapping_add(i as u64 * size),
        });
    }
    // The output address is the only field that changes along a batch, and
    // adding to it never carries into the attribute bits above: the batch
    // ends below 2^48 (`map` checks; `build_split` stays inside a block).
    page.fill(index, n, leaf_descriptor(pa, level, attrs) | extra, size);
    Ok(())
}

/// Removes the leaf mappings of `[va, va + len)` below `root`; returns how many
/// leaves were cleared. Tables stay, even empty ones ([`unmap_free`] frees
/// those). The caller invalidates the TLB afterwards.
///
/// # Errors
/// - [`MapError::Misaligned`]: not page-aligned, or a block or a contiguous
///   run reaches outside the range (splitting it would need break-before-make;
///   clearing part of a run would leave the rest marked for a run that no
///   longer exists); nothing was cleared from that block or run on.
pub fn unmap<A: TableAccess + ?Sized>(mem: &mut A, root: PhysAddr, va: u64, len: u64) -> Result<u64, MapError> {
    let g = mem.granule();
    if !va.is_multiple_of(g.page_size()) || !len.is_multiple_of(g.page_size()) {
        return Err(MapError::Misaligned);
    }
    let mut done = Unmapped::default();
    unmap_level(
        mem,
        root,
        g.first_level(),
        va,
        len,
        NEVER_FREE,
        &mut done,
        &mut |_, _| {},
    )?;
    Ok(done.leaves)
}

/// What [`unmap_free`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmapped {
    /// Leaf descriptors cleared.
    pub leaves: u64,
    /// Table pages unlinked and handed to [`TableFree::free_table`].
    pub tables: u64,
}

/// A `first_freeable` no table has: [`unmap`] frees nothing.
const NEVER_FREE: usize = LAST_LEVEL + 1;

/// [`unmap`], and then every table page at `first_freeable` or deeper that
/// translates any of `[va, va + len)` and holds no valid entry any more (or
/// held none already: a table an earlier [`unmap`] left behind) is unlinked,
/// deepest first, and handed to [`TableFree::free_table`] right after its
/// descriptor is cleared. The root and every table shallower than
/// `first_freeable` stay, empty or not: the caller says which levels are
/// its own to free (the kernel keeps the tables its own mappings hang from).
///
/// # Errors
/// As [`unmap`]. Tables emptied before the refused block or run were
/// already unlinked and handed back; nothing from it on was touched.
pub fn unmap_free<A: TableFree + ?Sized>(
    mem: &mut A,
    root: PhysAddr,
    va: u64,
    len: u64,
    first_freeable: usize,
) -> Result<Unmapped, MapError> {
    let g = mem.granule();
    if !va.is_multiple_of(g.page_size()) || !len.is_multiple_of(g.page_size()) {
        return Err(MapError::Misaligned);
    }
    let mut done = Unmapped::default();
    // Never the root: it is no table's entry, and whatever walks starts there.
    let first = first_freeable.max(g.first_level() + 1);
    unmap_level(mem, root, g.first_level(), va, len, first, &mut done, &mut |m, f| {
        m.free_table(f)
    })?;
    Ok(done)
}

/// Whether the table page at `table` (of `level` entries) holds no valid entry.
fn is_empty<A: TableAccess + ?Sized>(mem: &A, table: PhysAddr, level: usize) -> bool {
    (0..mem.granule().entries()).all(|i| Entry::decode(read_entry(mem, table, i), level) == Entry::Invalid)
}

#[allow(clippy::too_many_arguments)]
fn unmap_level<A: TableAccess + ?Sized>(
    mem: &mut A,
    table: PhysAddr,
    level: usize,
    mut va: u64,
    mut len: u64,
    first_freeable: usize,
    done: &mut Unmapped,
    free: &mut impl FnMut(&mut A, FreedTable),
) -> Result<(), MapError> {
    let g = mem.granule();
    let size = g.level_size(level);
    let (from, total) = (va, len);
    // Whether the contiguous run holding `va` lies inside `[from, +total)`.
    let run_inside = |va: u64| {
        let run = size * g.contiguous_entries(level) as u64;
        let offset = (va & !(run - 1)).wrapping_sub(from);
        offset <= total && run <= total - offset
    };
    let mut page = TablePage::of(mem, table);
    while len > 0 {
        let chunk = in_entry(va, len, size);
        let index = g.index(va, level);
        let raw = page.get(index);
        match Entry::decode(raw, level) {
            Entry::Invalid => {}
            Entry::Table(next) => {
                unmap_level(mem, next, level + 1, va, chunk, first_freeable, done, free)?;
                if level + 1 >= first_freeable && is_empty(mem, next, level + 1) {
                    // Break: from this store on no new walk reaches `next`;
                    // `free` makes it visible and invalidates before reuse.
                    write_entry(mem, table, index, 0);
                    done.tables += 1;
                    free(
                        mem,
                        FreedTable {
                            table: next,
                            level: level + 1,
                            va: va & !(size - 1),
                        },
                    );
                }
                // The descent borrowed the tables: ask for this page again.
                page = TablePage::of(mem, table);
            }
            Entry::Leaf { .. } if raw & CONTIGUOUS != 0 && !run_inside(va) => return Err(MapError::Misaligned),
            Entry::Leaf { .. } if chunk == size => {
                page.set(index, 0);
                done.leaves += 1;
            }
            Entry::Leaf { .. } => return Err(MapError::Misaligned),
        }
        va = va.wrapping_add(chunk);
        len -= chunk;
    }
    Ok(())
}

/// Builds, detached from the live tree, the next-level table that can replace
/// the `level` block mapping `[block_va, +size)` to `block_pa`: the same
/// translation, with `[inner_va, inner_va + inner_len)` (inside the block)
/// mapped in pages with `inner`, and the rest in the largest blocks with
/// `outer` (contiguous runs marked, as in the linear map). The caller swaps it
/// in with break-before-make. Returns the new table and what it holds.
///
/// # Errors
/// [`MapError::Misaligned`] if the inner range is not page-aligned or not
/// inside the block; [`MapError::OutOfTables`] if the allocator runs dry.
#[allow(clippy::too_many_arguments)]
pub fn build_split<A: TableAlloc + ?Sized>(
    mem: &mut A,
    level: usize,
    block_va: u64,
    block_pa: PhysAddr,
    inner_va: u64,
    inner_len: u64,
    inner: Attrs,
    outer: Attrs,
) -> Result<(PhysAddr, MapCounts), MapError> {
    let g = mem.granule();
    let size = g.level_size(level);
    let page = g.page_size();
    let inside = inner_va >= block_va && inner_len <= size && inner_va - block_va <= size - inner_len;
    if level == LAST_LEVEL
        || !inside
        || inner_len == 0
        || !inner_va.is_multiple_of(page)
        || !inner_len.is_multiple_of(page)
    {
        return Err(MapError::Misaligned);
    }
    let table = mem.alloc_table().ok_or(MapError::OutOfTables)?;
    let mut counts = MapCounts {
        tables: 1,
        ..MapCounts::default()
    };
    let pa_of = |va: u64| block_pa.add(va - block_va);
    let pieces = [
        (block_va, inner_va - block_va, outer, Granularity::Contiguous),
        (inner_va, inner_len, inner, Granularity::PagesOnly),
        (
            inner_va + inner_len,
            block_va + size - (inner_va + inner_len),
            outer,
            Granularity::Contiguous,
        ),
    ];
    for (va, len, attrs, granularity) in pieces {
        if len > 0 {
            map_level(
                mem,
                table,
                level + 1,
                va,
                pa_of(va),
                len,
                attrs,
                granularity,
                &mut counts,
            )?;
        }
    }
    Ok((table, counts))
}

/// Entry `index` of the table at `table`, raw.
pub fn entry<A: TableAccess + ?Sized>(mem: &A, table: PhysAddr, index: usize) -> u64 {
    read_entry(mem, table, index)
}

/// The entries of the contiguous run that entry `index` of a `level` table
/// belongs to: its first index and how many (1 when it is in no run).
pub fn run_of<A: TableAccess + ?Sized>(mem: &A, table: PhysAddr, index: usize, level: usize) -> (usize, usize) {
    let run = mem.granule().contiguous_entries(level);
    if run == 0 || read_entry(mem, table, index) & CONTIGUOUS == 0 {
        return (index, 1);
    }
    (index & !(run - 1), run)
}

/// Writes entry `index` of the table at `table` (one 64-bit store). For
/// break-before-make sequences, whose barriers the caller provides.
pub fn set_entry<A: TableAccess + ?Sized>(mem: &mut A, table: PhysAddr, index: usize, raw: u64) {
    write_entry(mem, table, index, raw);
}

/// One table visited by [`walk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStep {
    /// Level of the table.
    pub level: usize,
    /// Physical address of the table page.
    pub table: PhysAddr,
    /// Index used in it.
    pub index: usize,
    /// The raw descriptor found.
    pub raw: u64,
}

/// Where a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address `va` translates to.
    pub pa: PhysAddr,
    /// Level of the leaf descriptor.
    pub level: usize,
    /// Bytes mapped by the leaf (with 4 KiB pages: 1 GiB, 2 MiB or 4 KiB).
    pub size: u64,
    /// Its permissions.
    pub prot: DecodedProt,
}

/// The path of a table walk, as the MMU would take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    steps: [Option<WalkStep>; 4],
    /// The translation, or `None` for a translation fault.
    pub translation: Option<Translation>,
}

impl Walk {
    /// The tables visited, root first.
    pub fn steps(&self) -> impl Iterator<Item = &WalkStep> {
        self.steps.iter().flatten()
    }
}

/// Walks the tables below `root` for `va`.
pub fn walk<A: TableAccess + ?Sized>(mem: &A, root: PhysAddr, va: u64) -> Walk {
    let mut result = Walk {
        steps: [None; 4],
        translation: None,
    };
    let g = mem.granule();
    let mut table = root;
    for level in g.first_level()..=LAST_LEVEL {
        let index = g.index(va, level);
        let raw = read_entry(mem, table, index);
        result.steps[level] = Some(WalkStep {
            level,
            table,
            index,
            raw,
        });
        match Entry::decode(raw, level) {
            Entry::Invalid => break,
            Entry::Table(next) => table = next,
            Entry::Leaf { pa, prot } => {
                let size = g.level_size(level);
                let pa = pa.align_down(size).add(va & (size - 1));
                result.translation = Some(Translation { pa, level, size, prot });
                break;
            }
        }
    }
    result
}

/// What a descent over a range of the tables meets, in address order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visited {
    /// A table descriptor, followed.
    Table,
    /// A block or page descriptor.
    Leaf {
        /// The virtual address the leaf starts at (aligned to its size).
        va: u64,
        /// The physical address it maps there.
        pa: PhysAddr,
        /// Its level (with 4 KiB pages: 1 for 1 GiB, 2 for 2 MiB, 3 for 4 KiB).
        level: usize,
        /// The raw descriptor, attributes and all.
        raw: u64,
    },
}

/// Calls `f` for every table and leaf descriptor that maps any of
/// `[va, va + len)` below `root`, lowest address first. Invalid entries are
/// skipped without a call.
pub fn visit<A: TableAccess + ?Sized>(mem: &A, root: PhysAddr, va: u64, len: u64, f: &mut impl FnMut(Visited)) {
    if len > 0 {
        visit_level(mem, root, mem.granule().first_level(), va, len, f);
    }
}

fn visit_level<A: TableAccess + ?Sized>(
    mem: &A,
    table: PhysAddr,
    level: usize,
    mut va: u64,
    mut len: u64,
    f: &mut impl FnMut(Visited),
) {
    let g = mem.granule();
    let size = g.level_size(level);
    let page = TableView::of(mem, table);
    while len > 0 {
        let chunk = in_entry(va, len, size);
        let raw = page.get(g.index(va, level));
        match Entry::decode(raw, level) {
            Entry::Invalid => {}
            Entry::Leaf { pa, .. } => f(Visited::Leaf {
                va: va & !(size - 1),
                pa,
                level,
                raw,
            }),
            Entry::Table(next) => {
                f(Visited::Table);
                visit_level(mem, next, level + 1, va, chunk, f);
            }
        }
        va = va.wrapping_add(chunk);
        len -= chunk;
    }
}

/// Calls `f(table, first, n)` for every table below and including `root`
/// whose entries `first..first + n` a descent for `[va, va + len)` reads:
/// the entries [`map`] writes for that range, and no others.
pub fn entry_runs<A: TableAccess + ?Sized>(
    mem: &A,
    root: PhysAddr,
    va: u64,
    len: u64,
    f: &mut impl FnMut(PhysAddr, usize, usize),
) {
    if len > 0 {
        runs_level(mem, root, mem.granule().first_level(), va, len, f);
    }
}

fn runs_level<A: TableAccess + ?Sized>(
    mem: &A,
    table: PhysAddr,
    level: usize,
    va: u64,
    len: u64,
    f: &mut impl FnMut(PhysAddr, usize, usize),
) {
    let g = mem.granule();
    let size = g.level_size(level);
    let first = g.index(va, level);
    let last = g.index(va.wrapping_add(len - 1), level);
    f(table, first, last - first + 1);
    if level == LAST_LEVEL {
        return;
    }
    let page = TableView::of(mem, table);
    let (mut va, mut len) = (va, len);
    while len > 0 {
        let chunk = in_entry(va, len, size);
        if let Entry::Table(next) = Entry::decode(page.get(g.index(va, level)), level) {
            runs_level(mem, next, level + 1, va, chunk, f);
        }
        va = va.wrapping_add(chunk);
        len -= chunk;
    }
}

/// Descriptors of each size, and table pages below the root, that map any of
/// `[va, va + len)`.
pub fn count<A: TableAccess + ?Sized>(mem: &A, root: PhysAddr, va: u64, len: u64) -> MapCounts {
    let g = mem.granule();
    let mut counts = MapCounts::default();
    visit(mem, root, va, len, &mut |v| match v {
        Visited::Table => counts.tables += 1,
        Visited::Leaf { level, raw, va, .. } => {
            counts.add_leaves(level, 1);
            // A run counts once, at its first entry.
            let run_bytes = g.contiguous_entries(level) as u64 * g.level_size(level);
            if raw & CONTIGUOUS != 0 && run_bytes > 0 && va.is_multiple_of(run_bytes) {
                counts.contiguous += 1;
            }
        }
    });
    counts
}

#[cfg(any(test, feature = "host-tables"))]
pub mod host;
#[cfg(test)]
mod tests;
