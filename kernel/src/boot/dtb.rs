//! What the kernel needs from the flattened device tree, read once at boot.
//!
//! fdt-rs tokenises the blob; this module follows the node structure (paths,
//! `#address-cells`/`#size-cells`) and collects RAM, reservations, the initrd,
//! the console and the PSCI conduit. No allocation: it runs before the heap.

use core::fmt;

use fdt_rs::base::DevTree;
use fdt_rs::base::parse::ParsedTok;
use fdt_rs::prelude::FallibleIterator;

use crate::mm::ranges::{PhysRange, RangeList, TooManyRanges};

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

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `hvc #0` (QEMU `virt` without EL2/EL3 firmware).
    Hvc,
    /// `smc #0`.
    Smc,
}

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
    /// `/psci` `method`.
    pub psci: Option<PsciConduit>,
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
            psci: None,
            kaslr_seed: None,
            rng_seed: None,
            problems: [None; MAX_PROBLEMS],
            blob: &[],
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
    /// No FDT magic at the address in x0.
    BadMagic(u32),
    /// The header's `totalsize` is below the header size or above the 2 MiB cap.
    BadSize(u64),
    /// fdt-rs could not tokenise the structure block.
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
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Node::Memory => "memory",
            Node::ReservedMemory => "reserved-memory",
            Node::Memreserve => "/memreserve/",
            Node::StdoutPath => "stdout-path",
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
            _ => "node ignored",
        }
    }
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
    /// `device_type = "memory"`.
    is_memory: bool,
    /// `compatible` lists `arm,pl011`.
    is_pl011: bool,
}

/// What to look for by path, found in a first pass over `/chosen` and `/aliases`.
#[derive(Default)]
struct Wanted<'dt> {
    stdout_path: Option<&'dt str>,
}

/// Parses `blob`, which must start with an FDT header and be 4-byte aligned.
///
/// # Errors
/// Any [`DtbError`]; nothing is half-returned.
pub fn parse(blob: &[u8]) -> Result<DeviceTree<'_>, DtbError> {
    let tree = checked_tree(blob)?;
    let blob = tree.buf();
    let mut info = DeviceTree {
        totalsize: blob.len() as u64,
        blob,
        ..DeviceTree::empty()
    };
    for entry in memreserve(blob, &tree) {
        info.reserved
            .insert_up_to(entry?, MAX_RESERVED_RANGES)
            .map_err(|TooManyRanges| DtbError::TooManyRanges(Node::Memreserve))?;
    }

    // Pass 1: /chosen and /aliases, which name other nodes.
    let mut wanted = Wanted::default();
    let mut aliases: [(&str, &str); 8] = [("", ""); 8];
    walk(&tree, |path, _frame, name, value| {
        match (path, name) {
            (["", "chosen"], "stdout-path") => wanted.stdout_path = Some(cstr(value)),
            (["", "chosen"], "bootargs") => info.bootargs = cstr(value),
            (["", "chosen"], "kaslr-seed") => {
                let offset = value.as_ptr() as usize - blob.as_ptr() as usize;
                info.kaslr_seed = value.try_into().ok().map(|b| (u64::from_be_bytes(b), offset));
            }
            (["", "chosen"], "rng-seed") => info.rng_seed = fold_seed(value),
            (["", "chosen"], "linux,initrd-start") => {
                let start = be_number(value).unwrap_or(0);
                let end = info.initrd.map_or(start, |r| r.end.raw());
                info.initrd = PhysRange::new(start, end.saturating_sub(start));
            }
            (["", "chosen"], "linux,initrd-end") => {
                let start = info.initrd.map_or(0, |r| r.start.raw());
                let end = be_number(value).unwrap_or(0);
                info.initrd = PhysRange::new(start, end.saturating_sub(start));
            }
            (["", "aliases"], alias) => {
                if let Some(slot) = aliases.iter_mut().find(|a| a.0.is_empty()) {
                    *slot = (alias, cstr(value));
                }
            }
            (["", "psci"], "method") => {
                info.psci = match cstr(value) {
                    "hvc" => Some(PsciConduit::Hvc),
                    "smc" => Some(PsciConduit::Smc),
                    _ => None,
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if info.initrd.is_some_and(|r| r.size() == 0) {
        info.initrd = None;
    }

    // stdout-path is "PATH[:OPTIONS]", where PATH may be an alias.
    let stdout = wanted.stdout_path.map(|p| p.split(':').next().unwrap_or(""));
    let stdout = stdout.map(|p| {
        if p.starts_with('/') {
            p
        } else {
            aliases.iter().find(|a| a.0 == p).map_or(p, |a| a.1)
        }
    });

    // Pass 2: nodes found by path or by type, at end of node when all their
    // properties are known.
    walk_nodes(&tree, |path, frame, parent| {
        let reg_of = |what: Node| -> Result<Option<PhysRange>, DtbError> {
            let Some(reg) = frame.reg else { return Ok(None) };
            let mut first = None;
            for_each_reg(reg, parent, what, |r| {
                if r.size() > 0 {
                    first.get_or_insert(r);
                }
                Ok(())
            })?;
            Ok(first)
        };
        // A malformed RAM or reserved-memory node is ignored and reported:
        // the rest of the tree is still good.
        if path.len() == 2
            && frame.is_memory
            && let Some(reg) = frame.reg
        {
            let mut found = RangeList::new();
            let mut notes: [Option<DtbError>; 3] = [None; 3];
            match for_each_reg(reg, parent, Node::Memory, |r| {
                if r.size() == 0 {
                    notes[0].get_or_insert(DtbError::EmptyRange(r.start.raw()));
                    return Ok(());
                }
                if let Some(o) = info
                    .memory
                    .iter()
                    .chain(found.iter())
                    .find(|m| m.start < r.end && r.start < m.end)
                {
                    let (start, end) = (o.start.max(r.start), o.end.min(r.end));
                    notes[1].get_or_insert(DtbError::Overlap(start.raw(), end.raw()));
                }
                if found.insert_up_to(r, MAX_MEMORY_RANGES).is_err() {
                    notes[2].get_or_insert(DtbError::TooManyRanges(Node::Memory));
                }
                Ok(())
            }) {
                Ok(()) => {
                    for r in found.iter() {
                        if info.memory.insert_up_to(*r, MAX_MEMORY_RANGES).is_err() {
                            notes[2].get_or_insert(DtbError::TooManyRanges(Node::Memory));
                        }
                    }
                }
                Err(e) => info.problem(e),
            }
            notes.into_iter().flatten().for_each(|n| info.problem(n));
        }
        if path.len() == 3
            && path[1] == "reserved-memory"
            && let Some(reg) = frame.reg
        {
            match for_each_reg(reg, parent, Node::ReservedMemory, |r| {
                info.reserved
                    .insert_up_to(r, MAX_RESERVED_RANGES)
                    .map_err(|TooManyRanges| DtbError::TooManyRanges(Node::ReservedMemory))
            }) {
                // Ignoring a reservation could hand reserved RAM out: refuse.
                Err(e @ DtbError::TooManyRanges(_)) => return Err(e),
                Err(e) => info.problem(e),
                Ok(()) => {}
            }
        }
        if let Some(stdout) = stdout
            && path_matches(path, stdout)
        {
            match reg_of(Node::StdoutPath) {
                Ok(Some(regs)) => {
                    info.uart = Some(Uart {
                        regs,
                        pl011: frame.is_pl011,
                    })
                }
                Ok(None) => {}
                Err(e) => info.problem(e),
            }
        }
        Ok(())
    })?;

    // No RAM is not a parse error: the kernel reports it on the console
    // (which the tree may still describe) and stops.
    Ok(info)
}

/// Whether the node at `path` (components, root first as "") is `wanted`, a
/// full path whose components may omit the unit address.
fn path_matches(path: &[&str], wanted: &str) -> bool {
    let mut parts = wanted.split('/').filter(|p| !p.is_empty());
    for node in &path[1..] {
        match parts.next() {
            Some(p) if p == *node || node.split('@').next() == Some(p) => {}
            _ => return false,
        }
    }
    parts.next().is_none() && path.len() > 1
}

/// Calls `f` for each `(address, size)` entry of a `reg` property, sized by the
/// parent's cells.
fn for_each_reg(
    reg: &[u8],
    parent: &Frame<'_>,
    what: Node,
    mut f: impl FnMut(PhysRange) -> Result<(), DtbError>,
) -> Result<(), DtbError> {
    let (ac, sc) = (parent.address_cells as usize, parent.size_cells as usize);
    if !(1..=2).contains(&ac) || !(0..=2).contains(&sc) {
        return Err(DtbError::BadCells(what));
    }
    let entry = 4 * (ac + sc);
    if reg.is_empty() || !reg.len().is_multiple_of(entry) {
        return Err(DtbError::BadReg(what));
    }
    for chunk in reg.chunks_exact(entry) {
        let (addr, size) = chunk.split_at(4 * ac);
        let addr = be_number(addr).ok_or(DtbError::BadReg(what))?;
        let size = if sc == 0 {
            0
        } else {
            be_number(size).ok_or(DtbError::BadReg(what))?
        };
        // Empty ranges too: the caller decides whether they matter.
        f(PhysRange::saturating(addr, size))?;
    }
    Ok(())
}

/// A big-endian number of one or two cells.
fn be_number(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// Folds seed bytes into 64 bits (XOR of big-endian 8-byte chunks), or `None`
/// for an empty property.
fn fold_seed(bytes: &[u8]) -> Option<u64> {
    (!bytes.is_empty()).then(|| {
        bytes.chunks(8).fold(0, |acc, chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            acc ^ u64::from_be_bytes(word)
        })
    })
}

/// A property value as a string, up to its first NUL.
fn cstr(value: &[u8]) -> &str {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    core::str::from_utf8(&value[..end]).unwrap_or("")
}

/// The tree in `blob`, cut to the header's `totalsize`.
fn checked_tree(blob: &[u8]) -> Result<DevTree<'_>, DtbError> {
    let blob = &blob[..totalsize(blob)? as usize];
    if !(blob.as_ptr() as usize).is_multiple_of(4) {
        return Err(DtbError::Malformed);
    }
    // SAFETY: `blob` is 4-byte aligned and exactly `totalsize` long, which is
    // what `DevTree::new` requires; fdt-rs bounds-checks every read inside it.
    unsafe { DevTree::new(blob) }.map_err(|_| DtbError::Malformed)
}

/// The `/memreserve/` block: (address, size) pairs of big-endian u64, ended by
/// a pair of zeros; an error if the blob ends first.
fn memreserve<'a>(blob: &'a [u8], tree: &DevTree<'_>) -> impl Iterator<Item = Result<PhysRange, DtbError>> + 'a {
    let mut entries = blob.get(tree.off_mem_rsvmap()..).unwrap_or_default().chunks(16);
    core::iter::from_fn(move || match entries.next() {
        Some(entry) if entry.len() == 16 => {
            let (addr, size) = (be_number(&entry[..8])?, be_number(&entry[8..])?);
            (addr != 0 || size != 0).then(|| Ok(PhysRange::saturating(addr, size)))
        }
        _ => Some(Err(DtbError::Malformed)),
    })
    .scan(false, |failed, entry| {
        // Nothing after the first error.
        (!core::mem::replace(failed, entry.is_err())).then_some(entry)
    })
}

/// Calls `prop(path, frame, name, value)` for every property, with `path` the
/// node's components from the root ("").
fn walk<'dt>(
    tree: &DevTree<'dt>,
    mut prop: impl FnMut(&[&'dt str], &Frame<'dt>, &'dt str, &'dt [u8]) -> Result<(), DtbError>,
) -> Result<(), DtbError> {
    walk_tokens(tree, &mut prop, &mut |_, _, _| Ok(()))
}

/// Calls `node(path, frame, parent)` at the end of every node but the root,
/// once all its properties are known.
fn walk_nodes<'dt>(
    tree: &DevTree<'dt>,
    mut node: impl FnMut(&[&'dt str], &Frame<'dt>, &Frame<'dt>) -> Result<(), DtbError>,
) -> Result<(), DtbError> {
    walk_tokens(tree, &mut |_, _, _, _| Ok(()), &mut node)
}

type PropFn<'a, 'dt> = dyn FnMut(&[&'dt str], &Frame<'dt>, &'dt str, &'dt [u8]) -> Result<(), DtbError> + 'a;
type NodeFn<'a, 'dt> = dyn FnMut(&[&'dt str], &Frame<'dt>, &Frame<'dt>) -> Result<(), DtbError> + 'a;

fn walk_tokens<'dt>(
    tree: &DevTree<'dt>,
    prop: &mut PropFn<'_, 'dt>,
    node: &mut NodeFn<'_, 'dt>,
) -> Result<(), DtbError> {
    let strings = tree.off_dt_strings();
    let buf = tree.buf();
    let mut frames = [Frame::default(); MAX_DEPTH];
    let mut names: [&str; MAX_DEPTH] = [""; MAX_DEPTH];
    let mut depth = 0usize;
    let mut tokens = tree.parse_iter();
    while let Some(tok) = tokens.next().map_err(|_| DtbError::Malformed)? {
        match tok {
            ParsedTok::BeginNode(n) => {
                if depth == MAX_DEPTH {
                    return Err(DtbError::TooDeep);
                }
                let name = core::str::from_utf8(n.name).map_err(|_| DtbError::Malformed)?;
                // Defaults from the devicetree specification: 2 address cells, 1 size cell.
                frames[depth] = Frame {
                    address_cells: 2,
                    size_cells: 1,
                    reg: None,
                    is_memory: false,
                    is_pl011: false,
                };
                names[depth] = name;
                depth += 1;
            }
            ParsedTok::EndNode => {
                if depth == 0 {
                    return Err(DtbError::Malformed);
                }
                depth -= 1;
                if depth > 0 {
                    node(&names[..=depth], &frames[depth], &frames[depth - 1])?;
                }
            }
            ParsedTok::Prop(p) => {
                if depth == 0 {
                    return Err(DtbError::Malformed);
                }
                let name_at = strings.checked_add(p.name_offset).ok_or(DtbError::Malformed)?;
                let name = cstr(buf.get(name_at..).ok_or(DtbError::Malformed)?);
                let value = p.prop_buf;
                let frame = &mut frames[depth - 1];
                match name {
                    "#address-cells" => frame.address_cells = be_number(value).map_or(0, |n| n as u32),
                    "#size-cells" => frame.size_cells = be_number(value).map_or(u32::MAX, |n| n as u32),
                    "reg" => frame.reg = Some(value),
                    "device_type" => frame.is_memory = cstr(value) == "memory",
                    "compatible" => frame.is_pl011 = value.split(|&b| b == 0).any(|c| c == b"arm,pl011"),
                    _ => {}
                }
                prop(&names[..depth], &frames[depth - 1], name, value)?;
            }
            ParsedTok::Nop => {}
        }
    }
    Ok(())
}

pub mod source;
#[cfg(test)]
mod tests;
