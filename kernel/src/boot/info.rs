//! Everything the bootloader handed over, read once per boot into one value
//! the boot phases take in order: the device tree (RAM, reservations, initrd,
//! console, PSCI, seeds), the command line in it, and what was wrong with
//! either, kept to be reported once there is a console.
//!
//! The value crosses the KASLR move, so it holds no address of the image:
//! its strings point into the DTB window (which the move leaves alone) and
//! its problems are enums and numbers, never messages from rodata.

use pi::addr::PhysAddr;

use super::bootargs::{self, BootArgIssue, BootArgs};
use super::dtb::cpus::Judged;
use super::dtb::{self, DeviceTree, DtbError};
use crate::mm::ranges::PhysRange;

/// How many boot-argument problems are kept (the rest are only counted).
pub const MAX_ARG_ISSUES: usize = 8;

/// The boot's inputs, read and checked.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'dt> {
    /// The device tree's findings, RAM cut to what the CPU can address.
    pub dt: DeviceTree<'dt>,
    /// Where the DTB blob sits.
    pub dtb: PhysRange,
    /// The parsed command line.
    pub args: BootArgs<'dt>,
    /// The first command-line problems, in order.
    pub arg_issues: [Option<BootArgIssue<'dt>>; MAX_ARG_ISSUES],
    /// All command-line problems, kept or not.
    pub arg_issue_count: usize,
    /// RAM beyond the CPU's physical address width was dropped.
    pub ram_cut: bool,
    /// The initrd the tree named, dropped because RAM does not hold it all.
    pub initrd_outside_ram: Option<PhysRange>,
    /// x1|x2|x3 at entry, which the boot protocol wants zero.
    pub boot_regs: u64,
    /// The board the root node's `compatible` names (`pi::board`).
    pub board: usize,
}

impl BootInfo<'_> {
    /// The board the tree describes.
    pub fn board(&self) -> &'static pi::board::Board {
        pi::board::board(self.board)
    }
}

impl<'dt> BootInfo<'dt> {
    /// Nothing read yet: what [`BootInfo::read_into`] starts from. A
    /// constant, so the boot's static starts as it and is read in place.
    pub const EMPTY: BootInfo<'dt> = BootInfo {
        dt: DeviceTree::empty(),
        dtb: PhysRange {
            start: PhysAddr::new(0),
            end: PhysAddr::new(0),
        },
        args: BootArgs::DEFAULT,
        arg_issues: [None; MAX_ARG_ISSUES],
        arg_issue_count: 0,
        ram_cut: false,
        initrd_outside_ram: None,
        boot_regs: 0,
        board: 0,
    };

    /// Reads the DTB `blob` found at `dtb_pa`, for a CPU with `pa_bits` of
    /// physical address.
    ///
    /// # Errors
    /// A [`DtbError`] if the tree cannot be read at all; problems in single
    /// nodes or words are kept in the value instead.
    pub fn read(blob: &'dt [u8], dtb_pa: u64, pa_bits: u32, boot_regs: u64) -> Result<Self, DtbError> {
        let mut info = BootInfo::EMPTY;
        info.read_into(blob, dtb_pa, pa_bits, boot_regs)?;
        Ok(info)
    }

    /// [`BootInfo::read`], into `self`, which must be [`BootInfo::EMPTY`]:
    /// the boot reads straight into its static, where a value returned is
    /// copied on its way (4 KiB, two thousand instructions a copy, and a
    /// `Once` made three).
    ///
    /// # Errors
    /// As [`BootInfo::read`]; `self` is then half-filled, to be thrown away.
    pub fn read_into(&mut self, blob: &'dt [u8], dtb_pa: u64, pa_bits: u32, boot_regs: u64) -> Result<(), DtbError> {
        self.boot_regs = boot_regs;
        dtb::parse_into(blob, &mut self.dt)?;
        let dt = &mut self.dt;
        // Cut in place, not into a new list (a kilobyte to clear and copy).
        let limit = 1u64.checked_shl(pa_bits).unwrap_or(u64::MAX);
        self.ram_cut = dt.memory.iter().any(|r| r.end.raw() > limit);
        if self.ram_cut {
            // Only ever shortens or drops ranges: cannot overflow.
            let _ = dt.memory.remove(PhysRange::saturating(limit, u64::MAX));
        }
        // Every address from the tree is checked against RAM before use.
        self.initrd_outside_ram = dt.initrd.filter(|&r| !dt.memory.covers(r));
        if self.initrd_outside_ram.is_some() {
            dt.initrd = None;
        }
        let (issues, count) = (&mut self.arg_issues, &mut self.arg_issue_count);
        bootargs::parse_into(&mut self.args, dt.bootargs, |issue| {
            if let Some(slot) = issues.get_mut(*count) {
                *slot = Some(issue);
            }
            *count += 1;
        });
        self.dtb = PhysRange::new(dtb_pa, dt.totalsize).unwrap_or_default();
        self.board = pi::board::of_compatible(dt.compatible);
        Ok(())
    }

    /// The CPUs `/cpus` lists, each judged against RAM as the CPU can
    /// address it (a spin-table release word must be in it).
    pub fn cpus(&self) -> Judged<'_, 'dt> {
        self.dt.cpus.judge(&self.dt.memory)
    }

    /// The command-line problems kept, in order.
    pub fn arg_issues(&self) -> impl Iterator<Item = &BootArgIssue<'dt>> {
        // Only the slots filled are looked at: a boot without problems runs
        // one test, not one a slot (the loop over all eight was unrolled
        // into eight blocks QEMU translated at every boot).
        self.arg_issues[..self.arg_issue_count.min(MAX_ARG_ISSUES)]
            .iter()
            .flatten()
    }

    /// Whether the DTB blob itself lies in RAM (and so in the linear map):
    /// a bootloader may leave it anywhere.
    pub fn dtb_in_ram(&self) -> bool {
        self.dt.memory.covers(self.dtb)
    }

    /// Command-line problems beyond those kept.
    pub fn arg_issues_dropped(&self) -> usize {
        self.arg_issue_count.saturating_sub(MAX_ARG_ISSUES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A tree with RAM at 1 GiB and at 2^40, and `bootargs`.
    fn tree(bootargs: &str) -> Vec<u8> {
        tree_with_initrd(bootargs, None)
    }

    /// The same, with an initrd at `[start, end)`.
    fn tree_with_initrd(bootargs: &str, initrd: Option<(u64, u64)>) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", bootargs).unwrap();
        if let Some((start, end)) = initrd {
            w.property_u64("linux,initrd-start", start).unwrap();
            w.property_u64("linux,initrd-end", end).unwrap();
        }
        w.end_node(chosen).unwrap();
        let memory = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 1 << 30, 1 << 40, 1 << 30])
            .unwrap();
        w.end_node(memory).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// `bytes`, copied to 8-byte-aligned memory as a loader leaves a DTB.
    struct Aligned(Vec<u64>, usize);

    impl Aligned {
        fn new(bytes: &[u8]) -> Self {
            let mut words = vec![0u64; bytes.len().div_ceil(8)];
            for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
                let mut b = [0; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                *word = u64::from_ne_bytes(b);
            }
            Aligned(words, bytes.len())
        }

        fn bytes(&self) -> &[u8] {
            // SAFETY: the words hold at least `self.1` initialised bytes.
            unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast(), self.1) }
        }
    }

    /// Reads `tree(bootargs)` from an aligned copy, as the kernel would.
    fn read(bootargs: &str, pa_bits: u32, check: impl FnOnce(BootInfo<'_>, usize)) {
        let blob = tree(bootargs);
        let copy = Aligned::new(&blob);
        check(
            BootInfo::read(copy.bytes(), 0x4820_0000, pa_bits, 0).unwrap(),
            blob.len(),
        );
    }

    #[test]
    fn one_read_gives_ram_arguments_and_their_problems() {
        read("nokaslr frob loglevel=loud", 48, |info, len| {
            assert!(info.args.nokaslr);
            let issues: Vec<String> = info.arg_issues().map(|i| i.to_string()).collect();
            assert_eq!(issues.len(), 2, "{issues:?}");
            assert!(issues[0].contains("'frob'") && issues[1].contains("loglevel=loud"));
            assert_eq!(info.dt.memory.total(), 2 << 30);
            assert!(!info.ram_cut);
            assert_eq!(info.dtb.start.raw(), 0x4820_0000);
            assert_eq!(info.dtb.size(), len as u64);
        });
    }

    #[test]
    fn ram_past_the_cpus_reach_is_cut_and_said() {
        read("", 40, |info, _| {
            assert!(info.ram_cut);
            assert_eq!(info.dt.memory.total(), 1 << 30);
        });
    }

    #[test]
    fn many_problems_keep_the_first_and_count_the_rest() {
        read(&"x ".repeat(MAX_ARG_ISSUES + 5), 48, |info, _| {
            assert_eq!(info.arg_issues().count(), MAX_ARG_ISSUES);
            assert_eq!(info.arg_issues_dropped(), 5);
        });
    }

    #[test]
    fn an_initrd_or_dtb_outside_ram_is_caught_before_use() {
        let inside = (0x4800_0000, 0x4810_0000);
        let straddling = (0x7ff0_0000, 0x8010_0000);
        for (initrd, kept) in [(inside, true), (straddling, false)] {
            let blob = tree_with_initrd("", Some(initrd));
            let copy = Aligned::new(&blob);
            let info = BootInfo::read(copy.bytes(), 0x4820_0000, 48, 0).unwrap();
            assert_eq!(info.dt.initrd.is_some(), kept, "{initrd:x?}");
            assert_eq!(info.initrd_outside_ram.is_none(), kept, "{initrd:x?}");
            assert!(info.dtb_in_ram());
        }
        let blob = tree("");
        let copy = Aligned::new(&blob);
        let info = BootInfo::read(copy.bytes(), 0x3000_0000, 48, 0).unwrap();
        assert!(!info.dtb_in_ram(), "RAM starts at 1 GiB");
    }

    #[test]
    fn an_unreadable_tree_is_an_error() {
        assert!(BootInfo::read(&[0; 64], 0, 48, 0).is_err());
    }
}
