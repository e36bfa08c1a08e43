//! The CPUs the device tree lists under `/cpus`: each `cpu@…` node's `reg`
//! (its MPIDR affinity) and how it is started (`enable-method`: `psci`, or
//! `spin-table` with a `cpu-release-addr`). `dtb::parse`'s one walk keeps
//! each node as it is written ([`CpuNodes`]); they are judged once RAM is
//! known ([`CpuNodes::judge`]): a bad CPU node is one CPU left off, not a bad
//! tree. A node that cannot be used is kept by name with why, so boot can
//! say which CPU it skipped.

use super::be_number;
use crate::arch::percpu::MAX_CPUS;
use crate::mm::ranges::RangeList;
use pi::addr::PhysAddr;

/// How a CPU is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI `CPU_ON`, over the tree's `/psci` conduit.
    Psci,
    /// The CPU waits in firmware until the 64-bit word at this physical
    /// address holds where to jump.
    SpinTable(PhysAddr),
}

/// One CPU the tree lists and the kernel could start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu<'dt> {
    /// The node's name (`cpu@1`): bytes from the tree, printed escaped.
    pub name: &'dt [u8],
    /// MPIDR_EL1's affinity fields, as `reg` gives them (Aff3 at bits 39:32).
    pub mpidr: u64,
    /// How to start it.
    pub method: EnableMethod,
}

/// Why a CPU node was left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip<'dt> {
    /// Its `reg` is missing or not one MPIDR value.
    NoReg,
    /// No `enable-method`, for the CPU with this MPIDR (fine for the boot
    /// CPU, which needs no starting: QEMU `virt` with one CPU names none).
    NoMethod(u64),
    /// An `enable-method` the kernel does not know.
    UnknownMethod(&'dt [u8]),
    /// `spin-table` without a readable `cpu-release-addr`.
    NoReleaseAddr,
    /// A `cpu-release-addr` outside RAM: the kernel could not write it.
    ReleaseOutsideRam(u64),
    /// Another node has the same `reg`: two nodes cannot be one CPU.
    RepeatedReg(u64),
    /// More CPUs than the kernel keeps ([`MAX_CPUS`]).
    TooMany,
}

impl core::fmt::Display for Skip<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Skip::NoReg => f.write_str("its reg is not one MPIDR value"),
            Skip::NoMethod(_) => f.write_str("it has no enable-method"),
            Skip::UnknownMethod(m) => write!(f, "enable-method \"{}\" is neither psci nor spin-table", Text(m)),
            Skip::NoReleaseAddr => f.write_str("spin-table without a 64-bit cpu-release-addr"),
            Skip::ReleaseOutsideRam(a) => write!(f, "cpu-release-addr {a:#x} is outside RAM"),
            Skip::RepeatedReg(r) => write!(f, "reg {r:#x} repeats an earlier CPU's"),
            Skip::TooMany => write!(f, "the kernel starts at most {MAX_CPUS} CPUs"),
        }
    }
}

/// Bytes from the tree, escaped as `console::escape` does text from
/// outside: printable ASCII as it is, every other byte `\xNN` (device-tree
/// strings need not be UTF-8, so this works on bytes).
#[derive(Clone, Copy, Debug)]
pub struct Text<'a>(pub &'a [u8]);

impl core::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

/// A node under `/cpus`, usable or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed<'dt> {
    /// The node's name.
    pub name: &'dt [u8],
    /// The CPU, or why it is left off.
    pub cpu: Result<Cpu<'dt>, Skip<'dt>>,
}

/// Most nodes kept, usable and not (the rest are counted).
pub const MAX_LISTED: usize = 2 * MAX_CPUS;

/// The `/cpus` nodes judged one by one in tree order ([`CpuNodes::judge`]),
/// each against the CPUs found usable before it. An iterator, not a list:
/// a list of [`MAX_LISTED`] slots was set to `None` slot by slot and copied
/// out whole (912 bytes) at every boot, for the one node of a machine with
/// one CPU.
pub struct Judged<'a, 'dt> {
    nodes: core::slice::Iter<'a, Seen<'dt>>,
    ram: &'a RangeList,
    /// The MPIDRs of the usable CPUs so far: the first `usable` slots.
    mpidrs: [u64; MAX_CPUS],
    usable: usize,
}

impl<'dt> Iterator for Judged<'_, 'dt> {
    type Item = Listed<'dt>;

    fn next(&mut self) -> Option<Listed<'dt>> {
        let node = self.nodes.next()?;
        let cpu = judge(node, self.ram, &self.mpidrs[..self.usable]);
        if let (Ok(c), Some(slot)) = (cpu, self.mpidrs.get_mut(self.usable)) {
            *slot = c.mpidr;
            self.usable += 1;
        }
        Some(Listed { name: node.name, cpu })
    }
}

/// What one `cpu` node holds that matters here, as the tree writes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen<'dt> {
    /// The node's name.
    pub name: &'dt [u8],
    /// `reg`.
    pub reg: Option<&'dt [u8]>,
    /// `enable-method`, up to its NUL.
    pub method: Option<&'dt [u8]>,
    /// `cpu-release-addr`.
    pub release: Option<&'dt [u8]>,
    /// `/cpus`' `#address-cells`, which sizes `reg`.
    pub address_cells: u32,
}

/// MPIDR_EL1's affinity bits: Aff3 (39:32), Aff2, Aff1, Aff0 (23:0).
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// The nodes under `/cpus` whose `device_type` is `cpu`, in tree order, as
/// the walk found them.
#[derive(Clone, Copy, Debug)]
pub struct CpuNodes<'dt> {
    nodes: [Seen<'dt>; MAX_LISTED],
    len: usize,
    /// Nodes past [`MAX_LISTED`], not kept.
    dropped: usize,
}

impl<'dt> CpuNodes<'dt> {
    /// No CPU nodes.
    pub const EMPTY: CpuNodes<'static> = CpuNodes {
        nodes: [Seen {
            name: b"",
            reg: None,
            method: None,
            release: None,
            address_cells: 0,
        }; MAX_LISTED],
        len: 0,
        dropped: 0,
    };

    /// Keeps one more node (or counts it, past [`MAX_LISTED`]).
    pub(super) fn push(&mut self, node: Seen<'dt>) {
        match self.nodes.get_mut(self.len) {
            Some(slot) => {
                *slot = node;
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    /// Each node judged in tree order: a `cpu-release-addr` must lie in
    /// `ram`.
    pub fn judge<'a>(&'a self, ram: &'a RangeList) -> Judged<'a, 'dt> {
        Judged {
            nodes: self.nodes[..self.len].iter(),
            ram,
            mpidrs: [0; MAX_CPUS],
            usable: 0,
        }
    }

    /// Nodes past [`MAX_LISTED`], not kept (nor judged).
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

/// Whether the node names a CPU the kernel can start, and how, after the
/// usable CPUs whose MPIDRs are `so_far`.
fn judge<'dt>(node: &Seen<'dt>, ram: &RangeList, so_far: &[u64]) -> Result<Cpu<'dt>, Skip<'dt>> {
    // `#address-cells` cells, read as one number: `be_number` reads 4 or 8
    // bytes only, so this is one or two cells (one test of each kind fewer
    // than checking the cell count first).
    let mpidr = node
        .reg
        .filter(|reg| reg.len() == 4 * node.address_cells as usize)
        .and_then(be_number)
        .ok_or(Skip::NoReg)?
        & MPIDR_AFFINITY;
    if so_far.contains(&mpidr) {
        return Err(Skip::RepeatedReg(mpidr));
    }
    let method = match node.method.ok_or(Skip::NoMethod(mpidr))? {
        b"psci" => EnableMethod::Psci,
        b"spin-table" => {
            let at = node
                .release
                .filter(|r| r.len() == 8)
                .and_then(be_number)
                .ok_or(Skip::NoReleaseAddr)?;
            // The whole 8-byte word in one RAM range.
            let inside = at.checked_add(7).is_some_and(|last| {
                ram.iter()
                    .any(|r| r.contains(PhysAddr::new(at)) && r.contains(PhysAddr::new(last)))
            });
            if !inside || !at.is_multiple_of(8) {
                return Err(Skip::ReleaseOutsideRam(at));
            }
            EnableMethod::SpinTable(PhysAddr::new(at))
        }
        other => return Err(Skip::UnknownMethod(other)),
    };
    if so_far.len() >= MAX_CPUS {
        return Err(Skip::TooMany);
    }
    Ok(Cpu {
        name: node.name,
        mpidr,
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::ranges::PhysRange;
    use vm_fdt::FdtWriter;

    /// The `/cpus` of `blob` as `dtb::parse` reads them, judged against `ram`.
    fn read<'dt>(blob: &'dt [u8], ram: &RangeList) -> Vec<Listed<'dt>> {
        crate::boot::dtb::parse(blob).unwrap().cpus.judge(ram).collect()
    }

    fn usable<'a, 'dt>(cpus: &'a [Listed<'dt>]) -> impl Iterator<Item = Cpu<'dt>> + 'a {
        cpus.iter().filter_map(|l| l.cpu.ok())
    }

    /// One `cpu` node: name, reg cells, enable-method, cpu-release-addr.
    type Node<'a> = (&'a str, &'a [u32], Option<&'a str>, Option<u64>);

    fn tree(address_cells: u32, nodes: &[Node<'_>]) -> Vec<u32> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", address_cells).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for &(name, reg, method, release) in nodes {
            let n = w.begin_node(name).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_string("compatible", "arm,cortex-a57").unwrap();
            w.property_array_u32("reg", reg).unwrap();
            if let Some(m) = method {
                w.property_string("enable-method", m).unwrap();
            }
            if let Some(a) = release {
                w.property_u64("cpu-release-addr", a).unwrap();
            }
            w.end_node(n).unwrap();
        }
        // Not a CPU: ignored.
        let map = w.begin_node("cpu-map").unwrap();
        w.end_node(map).unwrap();
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        crate::boot::dtb::tests::aligned(&w.finish().unwrap())
    }

    use crate::boot::dtb::tests::as_bytes as bytes;

    fn ram() -> RangeList {
        let mut r = RangeList::new();
        r.insert(PhysRange {
            start: PhysAddr::new(0),
            end: PhysAddr::new(0x4000_0000),
        })
        .unwrap();
        r
    }

    #[test]
    fn qemu_virt_cpus_start_with_psci() {
        let t = tree(
            1,
            &[
                ("cpu@0", &[0], Some("psci"), None),
                ("cpu@1", &[1], Some("psci"), None),
                ("cpu@2", &[2], Some("psci"), None),
            ],
        );
        let cpus = read(bytes(&t), &ram());
        let usable: Vec<_> = usable(&cpus).map(|c| (c.name, c.mpidr, c.method)).collect();
        assert_eq!(
            usable,
            [
                (&b"cpu@0"[..], 0, EnableMethod::Psci),
                (b"cpu@1", 1, EnableMethod::Psci),
                (b"cpu@2", 2, EnableMethod::Psci)
            ]
        );
        assert_eq!(cpus.len(), 3, "cpu-map is no CPU");
    }

    #[test]
    fn raspi_cpus_spin_on_release_words_and_two_cell_regs_read() {
        let t = tree(
            2,
            &[
                ("cpu@0", &[0, 0], Some("spin-table"), Some(0xd8)),
                ("cpu@1", &[0, 1], Some("spin-table"), Some(0xe0)),
                ("cpu@100", &[1, 0x100], Some("spin-table"), Some(0xe8)),
            ],
        );
        let cpus = read(bytes(&t), &ram());
        let usable: Vec<_> = usable(&cpus).map(|c| (c.mpidr, c.method)).collect();
        assert_eq!(
            usable,
            [
                (0, EnableMethod::SpinTable(PhysAddr::new(0xd8))),
                (1, EnableMethod::SpinTable(PhysAddr::new(0xe0))),
                (0x1_0000_0100, EnableMethod::SpinTable(PhysAddr::new(0xe8)))
            ]
        );
    }

    #[test]
    fn bad_cpu_nodes_are_named_and_skipped() {
        let t = tree(
            1,
            &[
                ("cpu@0", &[0], Some("psci"), None),
                ("cpu@1", &[1], Some("magic-wand"), None),
                ("cpu@2", &[2], Some("spin-table"), Some(0x8000_0000)),
                ("cpu@3", &[0], Some("psci"), None),
                ("cpu@4", &[4], Some("spin-table"), None),
                ("cpu@5", &[5, 6], Some("psci"), None),
                ("cpu@6", &[6], None, None),
                ("cpu@7", &[7], Some("psci"), None),
            ],
        );
        let cpus = read(bytes(&t), &ram());
        let all: Vec<_> = cpus.iter().map(|l| (l.name, l.cpu.map(|c| c.mpidr))).collect();
        assert_eq!(
            all,
            [
                (&b"cpu@0"[..], Ok(0)),
                (b"cpu@1", Err(Skip::UnknownMethod(b"magic-wand"))),
                (b"cpu@2", Err(Skip::ReleaseOutsideRam(0x8000_0000))),
                (b"cpu@3", Err(Skip::RepeatedReg(0))),
                (b"cpu@4", Err(Skip::NoReleaseAddr)),
                (b"cpu@5", Err(Skip::NoReg)),
                (b"cpu@6", Err(Skip::NoMethod(6))),
                (b"cpu@7", Ok(7)),
            ]
        );
        assert_eq!(
            Skip::UnknownMethod(b"magic\nwand").to_string(),
            "enable-method \"magic\\x0awand\" is neither psci nor spin-table"
        );
    }

    #[test]
    fn reg_is_one_or_two_cells_only() {
        // Three cells: the reg matches `#address-cells` but is no MPIDR.
        let t = tree(3, &[("cpu@0", &[0, 0, 1], Some("psci"), None)]);
        let cpus = read(bytes(&t), &ram());
        assert_eq!(cpus[0].cpu, Err(Skip::NoReg));
        // No cells, no reg bytes.
        let t = tree(0, &[("cpu@0", &[], Some("psci"), None)]);
        let cpus = read(bytes(&t), &ram());
        assert_eq!(cpus[0].cpu, Err(Skip::NoReg));
    }

    #[test]
    fn more_cpus_than_the_kernel_keeps_are_skipped() {
        let regs: Vec<[u32; 1]> = (0..10).map(|i| [i]).collect();
        let names: Vec<String> = (0..10).map(|i| format!("cpu@{i}")).collect();
        let nodes: Vec<Node<'_>> = (0..10)
            .map(|i| (names[i].as_str(), &regs[i][..], Some("psci"), None))
            .collect();
        let t = tree(1, &nodes);
        let cpus = read(bytes(&t), &ram());
        assert_eq!(usable(&cpus).count(), MAX_CPUS);
        assert!(cpus.iter().skip(MAX_CPUS).all(|l| l.cpu == Err(Skip::TooMany)));
    }
}
