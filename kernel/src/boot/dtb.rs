//! What the kernel needs from the flattened device tree, read once at boot.
//!
//! `walk` tokenises the blob; this module follows the node structure (paths,
//! `#address-cells`/`#size-cells`) and collects, in one walk, everything boot
//! takes from the tree: RAM, reservations, the initrd, the console, the PSCI
//! conduit or the board's power block, the EFI stub's handover, the
//! interrupt controller and timer (`intc`) and the CPUs (`cpus`). No
//! allocation: it runs before the heap.

use core::fmt;

use crate::mm::ranges::{PhysRange, RangeList, TooManyRanges};
use walk::Blocks;
use words::Word;

/// Deepest node nesting we follow (QEMU's trees are 4 deep).
const MAX_DEPTH: usize = 16;

/// RAM ranges kept from `/memory` nodes (after merging); more are reported
/// and ignored.
pub const MAX_MEMORY_RANGES: usize = 32;
/// Reserved ranges (`/memreserve/` and `/reserved-memory`, after merging);
/// a tree with more is refused: ignoring one could hand reserved RAM out.
pub const MAX_RESERVED_RANGES: usize = 28;

// RAM with every reservation punched out — the tree's and the kernel's own
// four (image, DTB, initrd, heap) — must fit one RangeList: each hole splits
// at most one range in two.
const _: () = assert!(MAX_MEMORY_RANGES + MAX_RESERVED_RANGES + 4 <= crate::mm::ranges::MAX_RANGES);

pub use crate::arch::conduit::PsciConduit;

/// The console UART named by `/chosen/stdout-path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Its registers.
    pub regs: PhysRange,
    /// Whether it is an `arm,pl011` (the only driver we have).
    pub pl011: bool,
}

/// Everything the kernel takes from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct DeviceTree<'dt> {
    /// Bytes the blob occupies (its header's `totalsize`).
    pub totalsize: u64,
    /// RAM: every `/memory` node's `reg`, merged and sorted.
    pub memory: RangeList,
    /// `/memreserve/` entries and `/reserved-memory` children.
    pub reserved: RangeList,
    /// `/chosen/linux,initrd-start` to `-end`.
    pub initrd: Option<PhysRange>,
    /// `/chosen/bootargs`.
    pub bootargs: &'dt str,
    /// The console.
    pub uart: Option<Uart>,
    /// The path `/chosen/stdout-path` names (an alias resolved, options
    /// dropped; an alias the tree lacks stays as written), for messages;
    /// empty without a `stdout-path`.
    pub uart_node: &'dt str,
    /// Whether the tree has the node `uart_node` names (with or without a
    /// `reg`).
    pub uart_node_found: bool,
    /// `/psci` `method`.
    pub psci: Option<PsciConduit>,
    /// The BCM2835 power-management block (`brcm,bcm2835-pm-wdt`): the
    /// board's reset and power-off where there is no PSCI (Raspberry Pi).
    pub power: Option<PhysRange>,
    /// `/chosen/kaslr-seed`: exactly 8 bytes (for the kernel's KASLR), and
    /// where its value sits in the blob, so the kernel can zero it.
    pub kaslr_seed: Option<(u64, usize)>,
    /// Nodes that were malformed and ignored (the first few), for the kernel
    /// to report once it has a console.
    pub problems: [Option<DtbError>; MAX_PROBLEMS],
    /// `/chosen/rng-seed`, folded to 64 bits (for the stage-0 loader's random
    /// placement, so physical and virtual randomisation stay independent).
    pub rng_seed: Option<u64>,
    /// The blob itself, `totalsize` bytes (for `dtb`, which prints it).
    pub blob: &'dt [u8],
    /// What the EFI stub (kernel/efistub) handed over in `/chosen`: the UEFI
    /// memory map and how it placed the image. None without the stub.
    pub efi: Option<super::efi::EfiHandover<'dt>>,
    /// The root node's `compatible` (its first NUL-separated entries, the
    /// last NUL dropped), which names the board (`pi::board`).
    pub compatible: Option<&'dt [u8]>,
    /// The GIC and the virtual timer's interrupt.
    pub interrupts: intc::Interrupts,
    /// The `/cpus` nodes as the tree lists them, judged against RAM by
    /// [`cpus::CpuNodes::judge`] once RAM is known.
    pub cpus: cpus::CpuNodes<'dt>,
    /// The tree's size, for the cost of reading it per token (`phases`).
    pub size: TreeSize,
}

/// How big a tree is, as its reading goes: every structure token (each
/// `FDT_NOP` and the `FDT_END` included) and the structure block's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeSize {
    /// Tokens in the structure block.
    pub tokens: u64,
    /// Bytes of the structure block.
    pub bytes: u64,
}

/// How many ignored-node problems [`DeviceTree`] keeps.
pub const MAX_PROBLEMS: usize = 4;

impl DeviceTree<'_> {
    /// A tree that says nothing.
    pub const fn empty() -> Self {
        DeviceTree {
            totalsize: 0,
            memory: RangeList::new(),
            reserved: RangeList::new(),
            initrd: None,
            bootargs: "",
            uart: None,
            uart_node: "",
            uart_node_found: false,
            psci: None,
            power: None,
            kaslr_seed: None,
            rng_seed: None,
            problems: [None; MAX_PROBLEMS],
            blob: &[],
            efi: None,
            compatible: None,
            interrupts: intc::Interrupts::NONE,
            cpus: cpus::CpuNodes::EMPTY,
            size: TreeSize { tokens: 0, bytes: 0 },
        }
    }

    fn problem(&mut self, e: DtbError) {
        if let Some(slot) = self.problems.iter_mut().find(|p| p.is_none()) {
            *slot = Some(e);
        }
    }
}

/// Why the device tree (or one of its nodes) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// x0 is 0 or not 8-byte aligned, which the boot protocol requires: the
    /// early code mapped no tree there, so nothing at it is read.
    BadAddress(u64),
    /// No FDT magic at the address in x0.
    BadMagic(u32),
    /// The header's `totalsize` is below the header size or above the 2 MiB cap.
    BadSize(u64),
    /// The structure block does not tokenise (`walk`), or a block is not
    /// where the header says.
    Malformed,
    /// Nodes nested deeper than we follow.
    TooDeep,
    /// A `#address-cells` or `#size-cells` outside 1..=2 (or 0 for sizes).
    BadCells(Node),
    /// A `reg` whose length is not a whole number of entries.
    BadReg(Node),
    /// More ranges than a [`RangeList`] holds.
    TooManyRanges(Node),
    /// No usable `/memory` node (reported by the kernel, not by [`parse`]).
    NoMemory,
    /// A memory range of size zero (at this address).
    EmptyRange(u64),
    /// Memory ranges that overlap (this much of them).
    Overlap(u64, u64),
    /// A `/chosen/kaslr-seed` of this many bytes, not the 8 the kernel reads.
    BadKaslrSeed(usize),
    /// A header `version` other than 16 or 17, the layouts this reader knows.
    BadVersion(u32),
    /// A `reg` the CPU cannot reach: an ancestor's `ranges` does not map it.
    Untranslatable(Node, ranges::Untranslatable),
}

/// The node (or list) a problem is in. Names, not strings: a problem found
/// before the KASLR move is printed after it, and must not hold an address
/// in the image's old mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A `/memory` node.
    Memory,
    /// A child of `/reserved-memory`.
    ReservedMemory,
    /// The header's `/memreserve/` list.
    Memreserve,
    /// The node `/chosen/stdout-path` names.
    StdoutPath,
    /// The power-management block (`brcm,bcm2835-pm-wdt`).
    Power,
    /// The GIC's node.
    InterruptController,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Node::Memory => "memory",
            Node::ReservedMemory => "reserved-memory",
            Node::Memreserve => "/memreserve/",
            Node::StdoutPath => "stdout-path",
            Node::Power => "brcm,bcm2835-pm-wdt",
            Node::InterruptController => "interrupt-controller",
        })
    }
}

impl DtbError {
    /// What the kernel does about it, when it is a problem in one node.
    pub fn consequence(&self) -> &'static str {
        match self {
            DtbError::EmptyRange(_) => "ignored",
            DtbError::TooManyRanges(Node::Memory) => "those past the limit ignored",
            DtbError::Overlap(..) => "merged",
            DtbError::BadKaslrSeed(_) => "not used as a seed",
            _ => "node ignored",
        }
    }
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbError::BadAddress(pa) => write!(
                f,
                "x0 ({pa:#x}) must hold a device tree's address, 8-byte aligned, as the boot protocol says"
            ),
            DtbError::BadMagic(m) => write!(
                f,
                "no device tree: magic is {m:#010x}, expected 0xd00dfeed (x0 must hold the DTB's address)"
            ),
            DtbError::BadSize(s) => write!(f, "device tree totalsize {s:#x} is outside 40 bytes..2 MiB"),
            DtbError::Malformed => write!(f, "device tree structure block is malformed"),
            DtbError::TooDeep => write!(f, "device tree nests deeper than {MAX_DEPTH} levels"),
            DtbError::BadCells(node) => write!(
                f,
                "device tree node {node} has an unsupported #address-cells/#size-cells"
            ),
            DtbError::BadReg(node) => write!(f, "device tree node {node} has a malformed reg property"),
            DtbError::TooManyRanges(Node::Memory) => {
                write!(f, "device tree lists more than {MAX_MEMORY_RANGES} memory ranges")
            }
            DtbError::TooManyRanges(_) => write!(
                f,
                "device tree lists more than {MAX_RESERVED_RANGES} reserved ranges, which splitmap cannot all honour"
            ),
            DtbError::NoMemory => write!(f, "device tree has no /memory node with a non-empty reg"),
            DtbError::EmptyRange(at) => write!(f, "device tree memory range at {at:#x} has size 0"),
            DtbError::Overlap(start, end) => write!(f, "device tree memory ranges overlap at {start:#x}-{end:#x}"),
            DtbError::BadKaslrSeed(len) => write!(f, "/chosen/kaslr-seed is {len} bytes, not 8"),
            DtbError::BadVersion(v) => write!(f, "device tree header version {v} is not 16 or 17"),
            DtbError::Untranslatable(node, why) => {
                write!(f, "device tree node {node}'s reg does not reach the CPU: ")?;
                match why {
                    ranges::Untranslatable::NoRanges(d) => write!(f, "its ancestor at depth {d} has no ranges"),
                    ranges::Untranslatable::Outside(d) => {
                        write!(f, "no ranges entry of its ancestor at depth {d} covers it")
                    }
                    ranges::Untranslatable::BadRanges(d) => {
                        write!(f, "its ancestor at depth {d} has a malformed ranges")
                    }
                }
            }
        }
    }
}

/// Size of the FDT header.
const HEADER_SIZE: u64 = 40;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// Reads the header's `totalsize` after checking the magic and the protocol's
/// bounds. Only the first 8 bytes of `header` are read.
///
/// # Errors
/// [`DtbError::BadMagic`] or [`DtbError::BadSize`].
pub fn header_totalsize(header: &[u8]) -> Result<u64, DtbError> {
    let word = |i: usize| {
        header
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0).unwrap_or(0);
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic(magic));
    }
    let size = u64::from(word(4).unwrap_or(0));
    if !(HEADER_SIZE..=pi::layout::DTB_MAX_SIZE).contains(&size) {
        return Err(DtbError::BadSize(size));
    }
    Ok(size)
}

/// Like [`header_totalsize`], and the blob must hold that many bytes.
///
/// # Errors
/// [`DtbError::BadMagic`] or [`DtbError::BadSize`].
pub fn totalsize(blob: &[u8]) -> Result<u64, DtbError> {
    let size = header_totalsize(blob)?;
    if size > blob.len() as u64 {
        return Err(DtbError::BadSize(size));
    }
    Ok(size)
}

/// One open node while walking the structure block.
#[derive(Clone, Copy, Default)]
struct Frame<'dt> {
    /// This node's `#address-cells` / `#size-cells`, which describe its children.
    address_cells: u32,
    size_cells: u32,
    reg: Option<&'dt [u8]>,
    /// `ranges`, if present (see [`ranges::translate`]).
    ranges: Option<&'dt [u8]>,
    /// `interrupts` and `#interrupt-cells`, for the GIC and the timer.
    interrupts: Option<&'dt [u8]>,
    interrupt_cells: Option<u32>,
    /// `device_type`, if it is a word the kernel knows: [`Word::Memory`]
    /// or [`Word::Cpu`]. The word itself, stored as looked up: two flags
    /// set from it were a test each, four translated blocks of the walk.
    device_type: Option<Word>,
    /// The first entry of its `compatible` that the kernel knows: a node
    /// is one device.
    known: Option<Compatible>,
    /// A GICv3's `#redistributor-regions` and `redistributor-stride`, 0
    /// where absent (neither may be 0): plain numbers, one store each to
    /// open a frame.
    redistributor_regions: u32,
    redistributor_stride: u64,
}

impl<'dt> Frame<'dt> {
    /// Makes this frame a node's before its properties: the devicetree
    /// specification's defaults, 2 address cells and 1 size cell, and
    /// nothing else known. Field by field: a node opens about once every six
    /// tokens, and a copy of a whole constant frame costs a call to `memcpy`.
    fn open(&mut self) {
        self.address_cells = 2;
        self.size_cells = 1;
        self.reg = None;
        self.ranges = None;
        self.interrupts = None;
        self.interrupt_cells = None;
        self.device_type = None;
        self.known = None;
        self.redistributor_regions = 0;
        self.redistributor_stride = 0;
    }

    /// Notes a property of this node that some reader needs.
    #[inline]
    fn set(&mut self, name: Name, value: &'dt [u8]) {
        match name {
            // One read for the three.
            Name::AddressCells | Name::SizeCells | Name::InterruptCells => {
                let number = be_number(value).map(|n| n as u32);
                match name {
                    Name::AddressCells => self.address_cells = number.unwrap_or(0),
                    Name::SizeCells => self.size_cells = number.unwrap_or(u32::MAX),
                    _ => self.interrupt_cells = number,
                }
            }
            Name::Reg => self.reg = Some(value),
            Name::Ranges => self.ranges = Some(value),
            Name::DeviceType => self.device_type = words::lookup(cbytes(value)),
            Name::Compatible => self.known = Compatible::first_in(value),
            Name::Interrupts => self.interrupts = Some(value),
            // A count no `reg` can hold is refused with the GIC's `reg`.
            Name::RedistributorRegions => {
                self.redistributor_regions = be_number(value).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
            }
            Name::RedistributorStride => self.redistributor_stride = be_number(value).unwrap_or(0),
            _ => {}
        }
    }
}

impl ranges::AsBus for Frame<'_> {
    fn bus(&self) -> ranges::Bus<'_> {
        ranges::Bus {
            address_cells: self.address_cells,
            size_cells: self.size_cells,
            ranges: self.ranges,
        }
    }
}

/// `compatible` entries the kernel acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compatible {
    Pl011,
    PowerManagement,
    Gic(intc::GicVersion),
    Timer,
}

impl Compatible {
    /// The first entry of the `compatible` value `value` the kernel knows.
    /// Out of line: one node in six has one (QEMU's `virt`).
    #[inline(never)]
    fn first_in(value: &[u8]) -> Option<Compatible> {
        let mut rest = value;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if let Some(Word::Compatible(known)) = words::lookup(&rest[..end]) {
                return Some(known);
            }
            rest = rest.get(end + 1..).unwrap_or_default();
        }
        None
    }
}

/// Parses `blob`, which must start with an FDT header.
///
/// One walk over the tree reads everything; a second, for the console
/// alone, runs only when `/chosen/stdout-path` comes after the node it
/// names and that node is no PL011 the first walk kept (no tree a board
/// here passes: QEMU virt's console is a PL011 before `/chosen`, the
/// Raspberry Pi's a PL011 after it).
///
/// # Errors
/// Any [`DtbError`]; nothing is half-returned.
pub fn parse(blob: &[u8]) -> Result<DeviceTree<'_>, DtbError> {
    let mut info = DeviceTree::empty();
    parse_into(blob, &mut info)?;
    Ok(info)
}

/// [`parse`], into `info`, which must be [`DeviceTree::empty`]: the boot
/// reads the tree straight into its [`super::info::BootInfo`], where a
/// `DeviceTree` returned would be copied (a few KiB, at about one
/// instruction for every three bytes).
///
/// # Errors
/// As [`parse`]; `info` is then half-filled, to be thrown away.
pub fn parse_into<'dt>(blob: &'dt [u8], info: &mut DeviceTree<'dt>) -> Result<(), DtbError> {
    let blocks = walk::blocks(blob)?;
    info.totalsize = blocks.blob.len() as u64;
    info.blob = blocks.blob;
    let mut reader = Reader {
        info,
        stdout_path: None,
        aliases: [None; 8],
        target: None,
        uart_found: false,
        only_uart: false,
        pl011s: [None; MAX_KEPT_UARTS],
        interrupts: intc::Found::new(),
        cpu: cpus::Seen::default(),
        initrd: [None; 2],
    };
    for entry in memreserve(blocks.memreserve) {
        reader
            .info
            .reserved
            .insert_up_to(entry?, MAX_RESERVED_RANGES)
            .map_err(|TooManyRanges| DtbError::TooManyRanges(Node::Memreserve))?;
    }
    let tokens = walk_tokens(&blocks, &mut reader)?;
    reader.info.size = TreeSize {
        tokens: tokens as u64,
        bytes: blocks.structure.len() as u64,
    };
    reader.interrupts.finish(&mut reader.info.interrupts);
    if reader.stdout_path.is_some() && !reader.uart_found {
        // `stdout-path` came after its node (or named an alias): look among
        // the PL011s the walk kept, and walk again only if it is not one.
        // A full path's target is set already; an alias's, now.
        if reader.target.is_none() {
            reader.target = reader.stdout().map(Target::of);
        }
        reader.uart_from_kept();
        if !reader.uart_found {
            reader.only_uart = true;
            walk_tokens(&blocks, &mut reader)?;
        }
    }
    reader.info.uart_node = reader.stdout().unwrap_or("");
    reader.info.uart_node_found = reader.uart_found;
    // Without a start, from 0 (as it always has been read); without an
    // end, or one before the start, none.
    let start = reader.initrd[0].unwrap_or(0);
    let end = reader.initrd[1].unwrap_or(start);
    reader.info.initrd = PhysRange::new(start, end.saturating_sub(start)).filter(|r| r.size() > 0);
    // No RAM is not a parse error: the kernel reports it on the console
    // (which the tree may still describe) and stops.
    Ok(())
}

/// What the walk has found so far.
struct Reader<'r, 'dt> {
    info: &'r mut DeviceTree<'dt>,
    /// `/chosen/stdout-path`, as written.
    stdout_path: Option<&'dt str>,
    /// `/aliases`: (name, path), the first in use. Options, whose `None`
    /// is one zero word each to start from, where an empty pair was two.
    aliases: [Option<(&'dt [u8], &'dt str)>; 8],
    /// The console's node, once its path is known.
    target: Option<Target<'dt>>,
    /// The node `stdout-path` names was seen (with or without a `reg`).
    uart_found: bool,
    /// The second walk, for the UART alone.
    only_uart: bool,
    /// PL011 nodes with a `reg`, shallow enough to keep, in case `stdout-path`
    /// comes after them, the first in use (`None` is a byte to start from,
    /// where an empty node was a dozen words).
    pl011s: [Option<KeptNode<'dt>>; MAX_KEPT_UARTS],
    /// The GIC and the timer's `interrupts`, as found so far.
    interrupts: intc::Found<'dt>,
    /// `/chosen/linux,initrd-start` and `-end`, as read (`None` for one
    /// absent or not one or two cells).
    initrd: [Option<u64>; 2],
    /// The `/cpus` child being read (its `enable-method` and
    /// `cpu-release-addr`, which no other node needs).
    cpu: cpus::Seen<'dt>,
}

/// How many PL011 nodes the first walk keeps (QEMU's `virt` has one).
const MAX_KEPT_UARTS: usize = 4;
/// How deep a kept node may be, the root included.
const MAX_KEPT_DEPTH: usize = 5;

/// A node kept for later: its path (the root first, as `""`), the path's
/// length, and what it says as the console (read while its ancestors were
/// known).
type KeptNode<'dt> = ([&'dt [u8]; MAX_KEPT_DEPTH], usize, Result<Option<Uart>, DtbError>);

impl<'dt> Reader<'_, 'dt> {
    /// The console's node path: stdout-path is "PATH[:OPTIONS]", where PATH
    /// may be an alias.
    fn stdout(&self) -> Option<&'dt str> {
        let (path, _options) = ranges::split_options(self.stdout_path?);
        if path.starts_with('/') {
            return Some(path);
        }
        Some(
            self.aliases
                .iter()
                .flatten()
                .find(|a| a.0 == path.as_bytes())
                .map_or(path, |a| a.1),
        )
    }

    /// An `/aliases` entry.
    fn alias(&mut self, name: &'dt [u8], value: &'dt [u8]) {
        if let Some(slot) = self.aliases.iter_mut().find(|a| a.is_none()) {
            *slot = Some((name, cstr(value)));
        }
    }

    /// A field the EFI stub set in `/chosen`.
    fn efi(&mut self, field: super::efi::Field, value: &'dt [u8]) {
        let efi = self.info.efi.get_or_insert_with(super::efi::EfiHandover::default);
        efi.set(field, value);
    }

    /// A property of `/chosen`.
    fn chosen(&mut self, name: Name, value: &'dt [u8]) {
        let info = &mut self.info;
        match name {
            Name::StdoutPath => {
                self.stdout_path = Some(cstr(value));
                // A full path can be looked for from here on; an alias waits
                // for the second walk, when every alias is known.
                self.target = self.stdout().filter(|p| p.starts_with('/')).map(Target::of);
            }
            Name::Bootargs => info.bootargs = cstr(value),
            Name::KaslrSeed => {
                let offset = value.as_ptr() as usize - info.blob.as_ptr() as usize;
                // Exactly eight bytes: one big-endian number.
                info.kaslr_seed = be_number(value).filter(|_| value.len() == 8).map(|seed| (seed, offset));
                if info.kaslr_seed.is_none() {
                    info.problem(DtbError::BadKaslrSeed(value.len()));
                }
            }
            Name::RngSeed => info.rng_seed = fold_seed(value),
            // Made a range once the walk is over, whichever came first.
            Name::InitrdStart => self.initrd[0] = be_number(value),
            Name::InitrdEnd => self.initrd[1] = be_number(value),
            Name::Efi(field) => self.efi(field, value),
            _ => {}
        }
    }

    /// The end of the node at `path`, all its properties known. A malformed
    /// RAM or reserved-memory node is ignored and reported: the rest of the
    /// tree is still good. Inline, in [`Walk`]'s loop, and only tests: most
    /// nodes are nothing to the kernel, and what is done for the others is
    /// out of line.
    #[inline]
    fn node_end(&mut self, path: &[&'dt [u8]], kind: Kind, frames: &[Frame<'dt>]) -> Result<(), DtbError> {
        let (frame, parent) = (&frames[frames.len() - 1], &frames[frames.len() - 2]);
        if !self.only_uart {
            match frame.known {
                Some(Compatible::PowerManagement) if self.info.power.is_none() => self.power(frames),
                Some(Compatible::Gic(_) | Compatible::Timer) => self.interrupts.node_end(frames),
                _ => {}
            }
            // By depth, then kind.
            match path.len() {
                2 if frame.device_type == Some(Word::Memory) => {
                    if let Some(reg) = frame.reg {
                        self.memory(reg, parent);
                    }
                }
                3 => match kind {
                    Kind::Cpus if frame.device_type == Some(Word::Cpu) => self.cpu_node(path[2], frame, parent),
                    Kind::ReservedMemory => {
                        if let Some(reg) = frame.reg {
                            self.reserved(reg, parent)?;
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if !self.uart_found {
            // Its depth and its own name first: most nodes are told apart
            // without the whole path.
            let console = self
                .target
                .is_some_and(|t| path.len() == t.depth && component_matches(path[t.depth - 1], t.name))
                && self.console(path, frames);
            if !console && !self.only_uart && frame.known == Some(Compatible::Pl011) {
                self.keep_pl011(path, frames);
            }
        }
        Ok(())
    }

    /// The power-management block at the last of `frames`.
    #[inline(never)]
    fn power(&mut self, frames: &[Frame<'dt>]) {
        if let Some(reg) = frames[frames.len() - 1].reg {
            match first_translated(reg, frames, Node::Power) {
                Ok(found) => self.info.power = found,
                Err(e) => self.info.problem(e),
            }
        }
    }

    /// A CPU node, named `name`, under `/cpus` (`parent`).
    #[inline(never)]
    fn cpu_node(&mut self, name: &'dt [u8], frame: &Frame<'dt>, parent: &Frame<'dt>) {
        self.info.cpus.push(cpus::Seen {
            name,
            reg: frame.reg,
            address_cells: parent.address_cells,
            ..self.cpu
        });
    }

    /// A `/reserved-memory` child's `reg`.
    ///
    /// # Errors
    /// [`DtbError::TooManyRanges`]: ignoring a reservation could hand
    /// reserved RAM out.
    #[inline(never)]
    fn reserved(&mut self, reg: &[u8], parent: &Frame<'dt>) -> Result<(), DtbError> {
        match Regs::of(reg, parent, Node::ReservedMemory) {
            // A malformed `reg` names no range to honour: reported and
            // skipped, as Linux does.
            Err(e) => self.info.problem(e),
            Ok(regs) => {
                for r in regs {
                    self.info
                        .reserved
                        .insert_up_to(r, MAX_RESERVED_RANGES)
                        .map_err(|TooManyRanges| DtbError::TooManyRanges(Node::ReservedMemory))?;
                }
            }
        }
        Ok(())
    }

    /// Whether the node at `path`, as deep as the console's, is the one
    /// `stdout-path` names; if so, it is read as the console.
    #[inline(never)]
    fn console(&mut self, path: &[&'dt [u8]], frames: &[Frame<'dt>]) -> bool {
        let Some(Target { path: stdout, .. }) = self.target else {
            return false;
        };
        if path_matches(path, stdout) {
            self.uart_found = true;
            self.uart(uart_of(frames));
        }
        self.uart_found
    }

    /// A PL011 before `stdout-path` is known: kept, if it has a `reg` and
    /// there is room, in case it is the one.
    #[inline(never)]
    fn keep_pl011(&mut self, path: &[&'dt [u8]], frames: &[Frame<'dt>]) {
        if frames[frames.len() - 1].reg.is_some()
            && path.len() <= MAX_KEPT_DEPTH
            && let Some(slot) = self.pl011s.iter_mut().find(|s| s.is_none())
        {
            let kept = slot.insert(([&b""[..]; MAX_KEPT_DEPTH], path.len(), uart_of(frames)));
            kept.0[..path.len()].copy_from_slice(path);
        }
    }

    /// The UART `target` names, if the first walk kept it.
    fn uart_from_kept(&mut self) {
        let Some(Target {
            path: stdout, depth, ..
        }) = self.target
        else {
            return;
        };
        // By reference: a node copied out is a `memcpy`.
        let kept =
            (self.pl011s.iter().flatten()).find(|(path, len, _)| *len == depth && path_matches(&path[..*len], stdout));
        if let Some(&(_, _, found)) = kept {
            self.uart_found = true;
            self.uart(found);
        }
    }

    /// A `/memory` node's `reg`, merged into RAM.
    #[inline(never)]
    fn memory(&mut self, reg: &[u8], parent: &Frame<'dt>) {
        let info = &mut self.info;
        let mut notes: [Option<DtbError>; 3] = [None; 3];
        // Straight into RAM, not through a list of the node's own (a
        // kilobyte to clear): `Regs::of` refuses a `reg` before its first
        // range, so a node ignored adds nothing.
        let regs = match Regs::of(reg, parent, Node::Memory) {
            Ok(regs) => regs,
            Err(e) => return info.problem(e),
        };
        for r in regs {
            if r.size() == 0 {
                notes[0].get_or_insert(DtbError::EmptyRange(r.start.raw()));
                continue;
            }
            if let Some(o) = info.memory.iter().find(|m| m.start < r.end && r.start < m.end) {
                let (start, end) = (o.start.max(r.start), o.end.min(r.end));
                notes[1].get_or_insert(DtbError::Overlap(start.raw(), end.raw()));
            }
            if info.memory.insert_up_to(r, MAX_MEMORY_RANGES).is_err() {
                notes[2].get_or_insert(DtbError::TooManyRanges(Node::Memory));
            }
        }
        notes.into_iter().flatten().for_each(|n| info.problem(n));
    }

    /// The node `stdout-path` names, as [`uart_of`] read it.
    fn uart(&mut self, found: Result<Option<Uart>, DtbError>) {
        match found {
            Ok(Some(uart)) => self.info.uart = Some(uart),
            Ok(None) => {}
            Err(e) => self.info.problem(e),
        }
    }
}

/// The UART at the last of `frames` (its ancestors before it): its first
/// non-empty `reg` range, in CPU physical addresses.
fn uart_of(frames: &[Frame<'_>]) -> Result<Option<Uart>, DtbError> {
    let frame = &frames[frames.len() - 1];
    let Some(reg) = frame.reg else { return Ok(None) };
    Ok(first_translated(reg, frames, Node::StdoutPath)?.map(|regs| Uart {
        regs,
        pl011: frame.known == Some(Compatible::Pl011),
    }))
}

/// The first non-empty range of `reg`, the property of the last of `frames`,
/// translated through every ancestor's `ranges` to a CPU physical address.
fn first_translated(reg: &[u8], frames: &[Frame<'_>], what: Node) -> Result<Option<PhysRange>, DtbError> {
    let ancestors = &frames[..frames.len() - 1];
    let parent = &ancestors[ancestors.len() - 1];
    let Some(r) = Regs::of(reg, parent, what)?.find(|r| r.size() > 0) else {
        return Ok(None);
    };
    let r = to_cpu(r, ancestors).map_err(|why| DtbError::Untranslatable(what, why))?;
    Ok(Some(r))
}

/// `r`, in the address space of the last of `ancestors`, as the CPU sees
/// it: translated through every ancestor's `ranges`.
#[inline(never)]
fn to_cpu(r: PhysRange, ancestors: &[Frame<'_>]) -> Result<PhysRange, ranges::Untranslatable> {
    let start = ranges::translate(r.start.raw(), r.size(), ancestors)?;
    Ok(PhysRange::saturating(start, r.size()))
}

/// Whether the node at `path` (components, root first as "") is `wanted`, a
/// full path whose components may omit the unit address.
///
/// Root first: callers have already matched the depth and the node's own
/// name (what tells apart the dozens of devices under a board's `/soc`).
/// Split as bytes: `str::split` on a `char` sets up a `memchr` each time,
/// which cost the Raspberry Pi's tree 1,000 instructions (`--icount`).
fn path_matches<N: AsRef<[u8]>>(path: &[N], wanted: &str) -> bool {
    let mut parts = wanted.as_bytes().split(|&b| b == b'/').filter(|p| !p.is_empty());
    path.len() > 1
        && path[1..]
            .iter()
            .all(|node| parts.next().is_some_and(|p| component_matches(node.as_ref(), p)))
        && parts.next().is_none()
}

/// Whether the node named `node` is the path component `part`, which may
/// omit the unit address. Out of line: it is for the nodes as deep as the
/// console's, and inline it cost each node's end more than it saved.
#[inline(never)]
fn component_matches(node: &[u8], part: &[u8]) -> bool {
    part == node || node.split(|&b| b == b'@').next() == Some(part)
}

/// The node `stdout-path` names: its path, its depth (its components, the
/// root included) and its own name, the path's last component.
#[derive(Clone, Copy)]
struct Target<'dt> {
    path: &'dt str,
    depth: usize,
    name: &'dt [u8],
}

impl<'dt> Target<'dt> {
    #[inline(never)]
    fn of(path: &'dt str) -> Self {
        let mut target = Target {
            path,
            depth: 1,
            name: b"",
        };
        for part in path.as_bytes().split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            target.depth += 1;
            target.name = part;
        }
        target
    }
}

/// The `(address, size)` entries of a `reg` property, sized by the
/// parent's cells; empty ranges too: the caller decides whether they
/// matter. One reader, not generic, for every caller: a function taking
/// each caller's closure was a copy per caller, a dozen translated blocks
/// each.
#[derive(Clone)]
struct Regs<'a> {
    /// Whole entries ([`Regs::of`] checks).
    rest: &'a [u8],
    /// Bytes of an entry, and of its address (4 or 8; the size is 0, 4 or 8).
    entry: usize,
    address: usize,
}

impl<'a> Regs<'a> {
    /// The entries of `reg`, or why it is refused (before any is read).
    #[inline(never)]
    fn of(reg: &'a [u8], parent: &Frame<'_>, what: Node) -> Result<Self, DtbError> {
        let (ac, sc) = (parent.address_cells as usize, parent.size_cells as usize);
        if !(1..=2).contains(&ac) || !(0..=2).contains(&sc) {
            return Err(DtbError::BadCells(what));
        }
        let entry = 4 * (ac + sc);
        if reg.is_empty() || !reg.len().is_multiple_of(entry) {
            return Err(DtbError::BadReg(what));
        }
        Ok(Regs {
            rest: reg,
            entry,
            address: 4 * ac,
        })
    }
}

impl Iterator for Regs<'_> {
    type Item = PhysRange;

    #[inline(never)]
    fn next(&mut self) -> Option<PhysRange> {
        let (entry, rest) = self.rest.split_at_checked(self.entry)?;
        self.rest = rest;
        let (addr, size) = entry.split_at(self.address);
        // Both sizes `of` allows read; no size cells is size 0.
        Some(PhysRange::saturating(
            be_number(addr).unwrap_or(0),
            be_number(size).unwrap_or(0),
        ))
    }
}

/// A big-endian number of one or two cells. Out of line: inlined, each of
/// its dozen callers was a copy of its own, about four translated blocks
/// each (`splitmap bench`).
#[inline(never)]
fn be_number(bytes: &[u8]) -> Option<u64> {
    match *bytes {
        [a, b, c, d] => Some(u64::from(u32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Some(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

/// Folds seed bytes into 64 bits (XOR of big-endian 8-byte chunks, the last
/// padded with zeros), or `None` for an empty property. Whole chunks read
/// by [`be_number`]: each copied into a word was a call to `memcpy`, and
/// read in line the compiler unrolled and vectorised the loop, a hundred
/// instructions more to translate.
#[inline(never)]
fn fold_seed(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let whole = bytes.chunks_exact(8);
    let tail = whole.remainder();
    let folded = whole.fold(0, |acc, chunk| acc ^ be_number(chunk).unwrap_or(0));
    Some(if tail.is_empty() { folded } else { folded ^ padded(tail) })
}

/// The last, partial chunk of a seed, padded with zeros to 8 bytes. Out of
/// line: QEMU's seeds are whole chunks.
#[cold]
fn padded(tail: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..tail.len()].copy_from_slice(tail);
    u64::from_be_bytes(word)
}

/// A property value as a string, up to its first NUL. Out of line, for
/// the same reason as [`be_number`].
#[inline(never)]
fn cstr(value: &[u8]) -> &str {
    core::str::from_utf8(cbytes(value)).unwrap_or("")
}

/// The bytes up to the first NUL. Out of line, for the same reason as
/// [`be_number`].
#[inline(never)]
fn cbytes(value: &[u8]) -> &[u8] {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    &value[..end]
}

/// The `/memreserve/` block: (address, size) pairs of big-endian u64, ended by
/// a pair of zeros; an error if the blob ends first.
fn memreserve(block: &[u8]) -> impl Iterator<Item = Result<PhysRange, DtbError>> + '_ {
    // `None` once the list has ended, well or not: nothing after an error.
    let mut rest = Some(block);
    core::iter::from_fn(move || {
        let Some((entry, after)) = rest.take()?.split_first_chunk::<16>() else {
            return Some(Err(DtbError::Malformed));
        };
        let (addr, size) = (be_number(&entry[..8])?, be_number(&entry[8..])?);
        rest = Some(after).filter(|_| addr != 0 || size != 0);
        rest.map(|_| Ok(PhysRange::saturating(addr, size)))
    })
}

/// The children of the root the kernel reads, told apart once per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Chosen,
    Aliases,
    Psci,
    ReservedMemory,
    Cpus,
    Other,
}

impl Kind {
    fn of(name: &[u8]) -> Kind {
        match words::lookup(name) {
            Some(Word::Kind(kind)) => kind,
            _ => Kind::Other,
        }
    }

    /// How deep the nodes are, in a child of the root of this kind, whose
    /// properties [`prop`] reads beyond what their frames keep: `/chosen`,
    /// `/psci` and `/aliases` themselves, the CPU nodes under `/cpus`; 0
    /// for none.
    fn reader_depth(self) -> usize {
        match self {
            Kind::Chosen | Kind::Psci | Kind::Aliases => 2,
            Kind::Cpus => 3,
            Kind::ReservedMemory | Kind::Other => 0,
        }
    }
}

/// Property names the kernel acts on; the rest are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    AddressCells,
    SizeCells,
    Reg,
    DeviceType,
    Compatible,
    StdoutPath,
    Bootargs,
    KaslrSeed,
    RngSeed,
    InitrdStart,
    InitrdEnd,
    Method,
    Ranges,
    Interrupts,
    InterruptCells,
    RedistributorRegions,
    RedistributorStride,
    EnableMethod,
    CpuReleaseAddr,
    /// One the EFI stub sets.
    Efi(super::efi::Field),
    Other,
}

impl Name {
    fn of(name: &[u8]) -> Name {
        match words::lookup(name) {
            Some(Word::Name(name)) => name,
            _ => Name::Other,
        }
    }
}

/// Property names by their offset in the strings block: a tree names a few
/// dozen properties hundreds of times, so each name is read and compared
/// once, and then found by its offset. QEMU's trees' strings blocks are
/// 160 (raspi3b) to 500 bytes (virt); a name further in is read every time.
struct Names<'n, 'dt> {
    blocks: Blocks<'dt>,
    /// The caller's: a table made inside a value is made on the stack and
    /// copied in (half a kilobyte, about 300 instructions).
    seen: &'n mut [Option<Name>; SEEN_NAMES],
}

/// Offsets [`Names`] remembers (a byte each).
const SEEN_NAMES: usize = 512;

impl Names<'_, '_> {
    #[inline]
    fn get(&mut self, offset: u32) -> Result<Name, DtbError> {
        match self.seen.get(offset as usize) {
            Some(&Some(name)) => Ok(name),
            _ => self.first_sight(offset),
        }
    }

    /// A name not seen before (or too far in to be remembered).
    #[cold]
    fn first_sight(&mut self, offset: u32) -> Result<Name, DtbError> {
        let name = Name::of(self.blocks.name(offset)?);
        if let Some(slot) = self.seen.get_mut(offset as usize) {
            *slot = Some(name);
        }
        Ok(name)
    }
}

/// Walks every token once ([`Walk`]); the tokens read, for [`TreeSize`].
fn walk_tokens<'dt>(blocks: &Blocks<'dt>, reader: &mut Reader<'_, 'dt>) -> Result<usize, DtbError> {
    let mut walk = Walk {
        blocks: *blocks,
        names: Names {
            blocks: *blocks,
            seen: &mut [None; SEEN_NAMES],
        },
        // Each frame is opened (`Frame::open`) when its node begins, before
        // anything reads it; all zeros is the cheapest start (one `memset`,
        // where sixteen copies of a constant frame were a `memcpy` each,
        // about 900 instructions).
        frames: [Frame::default(); MAX_DEPTH],
        path: [b""; MAX_DEPTH],
        kind: Kind::Other,
        reader_depth: 1,
        reader,
    };
    walk::walk(blocks.structure, &mut walk)
}

/// One walk over the tree: the nodes' properties into their frames, and
/// into `reader` what a child of the root says (`reader.prop`) or a CPU
/// node; `reader.node_end` at the end of every node but the root, with the
/// node's path and its ancestors' frames.
///
/// Its three calls are the boot's hottest code (a few hundred tokens, each
/// through one of them): what every node needs is done inline, everything
/// rarer in functions of its own, out of line.
struct Walk<'w, 'r, 'dt> {
    blocks: Blocks<'dt>,
    names: Names<'w, 'dt>,
    /// The open nodes', root first.
    frames: [Frame<'dt>; MAX_DEPTH],
    path: [&'dt [u8]; MAX_DEPTH],
    /// The kind of the child of the root the walk is in.
    kind: Kind,
    /// The depth whose properties [`prop`] reads: 1 (the root's), or
    /// [`Kind::reader_depth`] inside a child of the root.
    reader_depth: usize,
    reader: &'w mut Reader<'r, 'dt>,
}

// `depth` is in 1..=MAX_DEPTH for a property and a node's start, and in
// 0..MAX_DEPTH after a node's end (`walk::walk` checks).
impl<'dt> walk::Visit<'dt> for Walk<'_, '_, 'dt> {
    type Error = DtbError;

    #[inline]
    fn begin(&mut self, depth: usize, name: &'dt [u8]) -> Result<(), DtbError> {
        self.frames[depth - 1].open();
        self.path[depth - 1] = name;
        if depth == 2 {
            self.kind = Kind::of(name);
            self.reader_depth = self.kind.reader_depth();
        } else if depth == 3 && self.kind == Kind::Cpus {
            self.reader.cpu = cpus::Seen::default();
        }
        Ok(())
    }

    #[inline]
    fn prop(&mut self, depth: usize, offset: u32, value: &'dt [u8]) -> Result<(), DtbError> {
        let name = self.names.get(offset)?;
        // A third of the properties are no name the kernel knows: skipped
        // at once, but for an alias, whose name is whatever the tree calls it.
        if name == Name::Other {
            if self.kind == Kind::Aliases && depth == self.reader_depth {
                prop(self.reader, depth, self.kind, name, offset, value, &self.blocks);
            }
            return Ok(());
        }
        self.frames[depth - 1].set(name, value);
        // Most of the others are only their frame's business.
        if depth == self.reader_depth {
            prop(self.reader, depth, self.kind, name, offset, value, &self.blocks);
        }
        Ok(())
    }

    #[inline]
    fn end(&mut self, depth: usize) -> Result<(), DtbError> {
        if depth > 0 {
            self.reader
                .node_end(&self.path[..=depth], self.kind, &self.frames[..=depth])?;
        }
        if depth == 1 {
            // Back in the root, whose properties should all come before
            // its children, but are read wherever they are.
            self.reader_depth = 1;
        }
        Ok(())
    }
}

/// A property the reader may take ([`Walk::reader_depth`]), `depth` nodes
/// down, in a child of the root of `kind`; `offset` is its name's in the
/// strings block.
#[inline(never)]
fn prop<'dt>(
    reader: &mut Reader<'_, 'dt>,
    depth: usize,
    kind: Kind,
    name: Name,
    offset: u32,
    value: &'dt [u8],
    blocks: &Blocks<'dt>,
) {
    if reader.only_uart {
        return;
    }
    // `depth` is the root's, 1, or else the one `kind` is read at
    // ([`Kind::reader_depth`]): one `match` on each, not one on the three
    // together, whose tree of tests was a dozen translated blocks more.
    if depth == 1 {
        if name == Name::Compatible {
            reader.info.compatible = Some(value.strip_suffix(&[0]).unwrap_or(value));
        }
        return;
    }
    match kind {
        Kind::Chosen => reader.chosen(name, value),
        Kind::Aliases => reader.alias(blocks.name(offset).unwrap_or_default(), value),
        Kind::Psci if name == Name::Method => {
            reader.info.psci = match words::lookup(cbytes(value)) {
                Some(Word::Conduit(conduit)) => Some(conduit),
                _ => None,
            }
        }
        Kind::Cpus => match name {
            Name::EnableMethod => reader.cpu.method = Some(cbytes(value)),
            Name::CpuReleaseAddr => reader.cpu.release = Some(value),
            _ => {}
        },
        _ => {}
    }
}

pub mod cpus;
pub mod intc;
pub mod ranges;
pub mod source;
#[cfg(test)]
mod tests;
pub mod walk;
mod words;
