//! `splitmap bench`: the numbers behind the 2015 thread's open questions
//! ("If we're doing this for performance it would be good to see numbers";
//! "Isn't this gain somewhat offset by having to build the kernel as a
//! PIE?"). The boots are in bench_cmd.rs; this file reads what they printed,
//! computes what needs no boot, and writes the tables.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

pub mod blocks;

/// What `phases` printed: (phase, cost), in order, and the total. The cost
/// is in instructions (a boot under `--icount`) or in microseconds of wall
/// time (without it), as [`Phases::unit`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phases {
    pub phases: Vec<(String, u64)>,
    pub total: u64,
    /// `instructions` or `us`.
    pub unit: String,
    /// The device tree phase's reading done again at `phases`, by code that
    /// has run before (`again devicetree`), in the same unit.
    pub again: Option<u64>,
    /// Structure tokens in the tree the boot read (`devicetree tokens=N`),
    /// when the kernel says.
    pub tokens: Option<u64>,
    /// What bringing up each secondary CPU cost (`secondary cpu=N …`).
    pub secondaries: Vec<Secondary>,
}

/// One secondary CPU's bring-up, as `phases` reports it: the instructions
/// retired from the boot CPU's request (PSCI `CPU_ON` or the spin-table
/// release) to the CPU reporting in (QEMU's `-icount` counts every CPU's
/// instructions in one count, so the secondary's own are in it), or the
/// microseconds that took when not counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secondary {
    pub cpu: u64,
    pub instructions: Option<u64>,
    pub micros: Option<u64>,
    /// Instructions the boot CPU spent before the request: the CPU's
    /// stacks mapped, its boot record written and cleaned (`prepare=`).
    pub prepare: Option<u64>,
}

/// The value of `key=` among the words of `line`, as a number.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Reads `phases` output; `None` if nothing was counted.
pub fn parse_phases(output: &str) -> Option<Phases> {
    let mut phases = Vec::new();
    let mut total = None;
    let mut unit = None;
    let mut again = None;
    let mut tokens = None;
    let mut secondaries = Vec::new();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let cost = words.iter().find_map(|w| {
            let (key, value) = w.split_once('=')?;
            Some((key, value.parse::<u64>().ok()?)).filter(|(key, _)| ["instructions", "us"].contains(key))
        });
        match (words.first(), words.get(1), cost) {
            (Some(&"phase"), Some(name), Some((_, n))) => phases.push((name.to_string(), n)),
            (Some(&"total"), _, Some((key, n))) => {
                total = Some(n);
                unit = Some(key.to_string());
            }
            (Some(&"again"), Some(&"devicetree"), Some((_, n))) => again = Some(n),
            (Some(&"devicetree"), Some(w), _) if w.starts_with("tokens=") => tokens = field(line, "tokens"),
            (Some(&"secondary"), Some(w), _) if w.starts_with("cpu=") => {
                if let Some(cpu) = field(line, "cpu") {
                    secondaries.push(Secondary {
                        cpu,
                        instructions: field(line, "instructions"),
                        micros: field(line, "us"),
                        prepare: field(line, "prepare"),
                    });
                }
            }
            _ => {}
        }
    }
    Some(Phases {
        phases,
        total: total?,
        unit: unit?,
        again,
        tokens,
        secondaries,
    })
}

/// The median of each phase's cost over several boots (all in one unit),
/// and the median of their totals (which need not be the medians' sum).
pub fn median_phases(boots: &[Phases]) -> Option<Phases> {
    let first = boots.first()?;
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    Some(Phases {
        phases: first
            .phases
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), median(boots.iter().map(|b| b.phases[i].1).collect())))
            .collect(),
        total: median(boots.iter().map(|b| b.total).collect()),
        unit: first.unit.clone(),
        again: boots.iter().map(|b| b.again).collect::<Option<Vec<_>>>().map(median),
        tokens: first.tokens,
        secondaries: first.secondaries.clone(),
    })
}

/// Least, middle and greatest of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// The spread of `samples` (NaN-free by construction: durations).
pub fn spread(samples: &[Duration]) -> Spread {
    spread_of(&samples.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
}

/// The spread of some numbers (all zero if there are none).
pub fn spread_of(samples: &[f64]) -> Spread {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let median = match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    };
    Spread {
        min: s.first().copied().unwrap_or(0.0),
        median,
        max: s.last().copied().unwrap_or(0.0),
    }
}

/// The CPU time one QEMU process used, in seconds (medians, as a bench
/// reports them): `user` is QEMU's own work (translating guest code and
/// running it), `system` the host kernel's work for it (starting the
/// process, mapping guest RAM, its page faults).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

/// A *null kernel*: a valid arm64 Image whose first instructions power the
/// machine off through PSCI (SYSTEM_OFF over HVC, QEMU `virt`'s conduit), the
/// floor any kernel's boot is measured against.
pub fn null_kernel() -> Vec<u8> {
    null_kernel_running(&[])
}

/// A null kernel that first runs `code` (A64 instruction words, entered as
/// booting.rst says: x0 holds the device tree's address), once, straight
/// through.
pub fn null_kernel_running(code: &[u32]) -> Vec<u8> {
    const OFF: [u32; 4] = [
        0x5280_0100, // movz w0, #0x0008
        0x72b0_8000, // movk w0, #0x8400, lsl #16: SYSTEM_OFF = 0x84000008
        0xd400_0002, // hvc #0
        0x1400_0000, // b . (if the call returns)
    ];
    let size = (0x40 + 4 * (code.len() + OFF.len())).next_multiple_of(4096);
    let mut image = vec![0u8; size];
    image[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // code0: b +0x40, past the header
    for (i, word) in code.iter().chain(&OFF).enumerate() {
        let at = 0x40 + 4 * i;
        image[at..at + 4].copy_from_slice(&word.to_le_bytes());
    }
    image[16..24].copy_from_slice(&(size as u64).to_le_bytes()); // image_size
    image[24..32].copy_from_slice(&((1u64 << 1) | (1 << 3)).to_le_bytes()); // 4 KiB pages, anywhere
    image[56..60].copy_from_slice(b"ARM\x64");
    image
}

/// A kind of code a null kernel runs more of, to price what QEMU charges
/// for code run once: one unit an instruction of `code`.
pub struct TcgProbe {
    pub what: &'static str,
    pub code: Vec<u32>,
}

/// The probes: blocks of one branch each; loads and store pairs (to the
/// device tree QEMU loaded, x0), straight through, so in blocks as long as
/// QEMU makes them.
pub fn tcg_probes() -> Vec<TcgProbe> {
    const BRANCH_TO_NEXT: u32 = 0x1400_0001; // b .+4
    const LOAD: u32 = 0xf940_0001; // ldr x1, [x0]
    const STORE_PAIR: u32 = 0xa900_0401; // stp x1, x1, [x0]
    // Enough that each probe costs QEMU tens of milliseconds: the CPU time
    // the host reports comes in scheduler ticks, and a few milliseconds
    // drown in them (1,000 blocks came out between -0.2 and 1.1 µs each).
    const BLOCKS: usize = 10_000;
    const STRAIGHT: usize = 80_000;
    vec![
        TcgProbe {
            what: "a block (a branch to the next instruction)",
            code: vec![BRANCH_TO_NEXT; BLOCKS],
        },
        TcgProbe {
            what: "a load (`ldr`) in a long block",
            code: vec![LOAD; STRAIGHT],
        },
        TcgProbe {
            what: "a store pair (`stp`) in a long block",
            code: vec![STORE_PAIR; STRAIGHT],
        },
    ]
}

/// What one probe cost over the null kernel, per unit of its code.
#[derive(Clone, Debug, PartialEq)]
pub struct TcgCost {
    pub what: String,
    pub units: u64,
    pub boots: usize,
    /// Medians over the null kernel's, per unit, in µs: wall time, and
    /// QEMU's user time.
    pub wall_us: f64,
    pub user_us: f64,
}

/// RAM ranges and reservations in [`ranges_tree`].
pub const TREE_RANGES: u64 = 32;
pub const TREE_RESERVATIONS: u64 = 28;

/// A device tree for QEMU `virt` (1 GiB) with its RAM in [`TREE_RANGES`]
/// ranges of 16 MiB, 1 MiB apart, and [`TREE_RESERVATIONS`] 4 KiB
/// `/reserved-memory` regions 8 MiB into the ranges from the fifth on (the
/// image, at +2 MiB, is in the first, and stage-0 puts the raw tree at
/// 0x46000000, inside the sixth and clear of its reservation): a tree far
/// bigger than QEMU's, for the cost per structure token. Handed over raw,
/// since QEMU's `-dtb` would rewrite `/memory` as one range; its bootargs
/// say `nokaslr`, as every row of the comparison boots.
pub fn ranges_tree() -> Vec<u8> {
    use vm_fdt::FdtWriter;
    const MIB: u64 = 1 << 20;
    let base = 0x4000_0000;
    let range = |i: u64| base + i * 17 * MIB;
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = FdtWriter::new()?;
        let root = w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        let chosen = w.begin_node("chosen")?;
        w.property_string("stdout-path", "/pl011@9000000")?;
        w.property_string("bootargs", "nokaslr")?;
        w.end_node(chosen)?;
        let memory = w.begin_node("memory@40000000")?;
        w.property_string("device_type", "memory")?;
        let reg: Vec<u64> = (0..TREE_RANGES).flat_map(|i| [range(i), 16 * MIB]).collect();
        w.property_array_u64("reg", &reg)?;
        w.end_node(memory)?;
        let reserved = w.begin_node("reserved-memory")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_null("ranges")?;
        for i in TREE_RANGES - TREE_RESERVATIONS..TREE_RANGES {
            let at = range(i) + 8 * MIB;
            let node = w.begin_node(&format!("region@{at:x}"))?;
            w.property_array_u64("reg", &[at, 0x1000])?;
            w.property_null("no-map")?;
            w.end_node(node)?;
        }
        w.end_node(reserved)?;
        let uart = w.begin_node("pl011@9000000")?;
        w.property_string("compatible", "arm,pl011")?;
        w.property_array_u64("reg", &[0x900_0000, 0x1000])?;
        w.end_node(uart)?;
        let psci = w.begin_node("psci")?;
        w.property_string("compatible", "arm,psci-0.2")?;
        w.property_string("method", "hvc")?;
        w.end_node(psci)?;
        w.end_node(root)?;
        w.finish()
    };
    build().expect("a tree of fixed, valid nodes")
}

/// A translation granule by name.
pub const GRANULES: [(&str, pi::pgtable::Granule); 3] = [
    ("4K", pi::pgtable::Granule::K4),
    ("16K", pi::pgtable::Granule::K16),
    ("64K", pi::pgtable::Granule::K64),
];

/// What a linear map costs in one granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearCost {
    /// Table pages the map adds beyond the root, which every mapping in the
    /// half shares: the count `layout` prints, so one word means one number.
    pub tables: u64,
    /// Bytes those pages take.
    pub table_bytes: u64,
    /// Leaf descriptors.
    pub descriptors: u64,
    /// Table levels one translation reads.
    pub levels: u64,
    /// Bytes one leaf (so one TLB entry) covers, the largest used.
    pub reach: u64,
}

/// The linear map of `ram` bytes of RAM at 1 GiB (QEMU `virt`'s base), in
/// `granule`, with its largest blocks or pages only, built with the kernel's
/// own mapper on host tables.
pub fn linear_cost(granule: pi::pgtable::Granule, ram: u64, largest_blocks: bool) -> LinearCost {
    use pi::addr::PhysAddr;
    use pi::layout::PAGE_OFFSET;
    use pi::pgtable::host::HostTables;
    use pi::pgtable::{Attrs, Granularity, LAST_LEVEL, map};

    let granularity = if largest_blocks {
        Granularity::LargestBlocks
    } else {
        Granularity::PagesOnly
    };
    let (mut tables, root) = HostTables::with_granule(granule, 1 << 16);
    let counts = map(
        &mut tables,
        root,
        PAGE_OFFSET,
        PhysAddr::new(1 << 30),
        ram,
        Attrs::DATA,
        granularity,
    )
    .expect("the host tables hold a linear map");
    // The deepest level a leaf sits at decides the walk's length and reach.
    let deepest = if counts.pages > 0 {
        LAST_LEVEL
    } else if counts.blocks_l2 > 0 {
        2
    } else {
        1
    };
    // `map` counts the tables it allocated; the root was there before it.
    let tables = counts.tables;
    LinearCost {
        tables,
        table_bytes: tables * granule.page_size(),
        descriptors: counts.leaves(),
        levels: (deepest - granule.first_level() + 1) as u64,
        reach: granule.level_size(deepest),
    }
}

/// One module loaded one way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLoad {
    pub name: String,
    pub far: bool,
    /// Relocations in the `.ko`'s allocated sections: what the loader applies.
    pub relocations: u64,
    /// Veneer slots counted before loading, and veneers written.
    pub slots: u64,
    pub veneers: u64,
    /// Distinct kernel symbols the module branches to (from the `.ko`).
    pub far_targets: u64,
    /// Instructions `insmod` took, `init_module` included.
    pub instructions: u64,
    /// Instructions the loader itself ran: from the start of `insmod` to the
    /// call of `init_module`.
    pub loader_instructions: u64,
}

/// The `.ko`'s relocations in allocated sections, and the distinct undefined
/// symbols its `CALL26`/`JUMP26` relocations name (what needs a veneer when
/// the module is far from the kernel).
pub fn ko_stats(ko: &[u8]) -> Result<(u64, u64), String> {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionFlags};
    let file = object::File::parse(ko).map_err(|e| e.to_string())?;
    let mut relocations = 0;
    let mut targets = std::collections::BTreeSet::new();
    for section in file.sections() {
        let allocated = matches!(section.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0);
        if !allocated {
            continue;
        }
        for (_, reloc) in section.relocations() {
            relocations += 1;
            let RelocationFlags::Elf { r_type } = reloc.flags() else {
                continue;
            };
            if !matches!(r_type, object::elf::R_AARCH64_CALL26 | object::elf::R_AARCH64_JUMP26) {
                continue;
            }
            if let RelocationTarget::Symbol(index) = reloc.target()
                && let Ok(symbol) = file.symbol_by_index(index)
                && symbol.is_undefined()
            {
                targets.insert(symbol.name().unwrap_or("").to_string());
            }
        }
    }
    Ok((relocations, targets.len() as u64))
}

/// The same kernel linked as a PIE (what ships) and statically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pie {
    /// `.text` bytes: (PIE, static).
    pub text: (u64, u64),
    /// Image bytes: (PIE, static).
    pub image: (u64, u64),
    /// Instructions to the prompt with `nokaslr`: (PIE, static).
    pub instructions: (u64, u64),
    /// The PIE's `.relr.dyn` bytes and the relocations they encode.
    pub relr_bytes: u64,
    pub relocations: u64,
    /// Instructions the KASLR move and relocation took, and that boot's total.
    pub relocating: u64,
    pub kaslr_total: u64,
}

/// Blocks and guest instructions in a QEMU `-d in_asm` log.
pub fn translated(log: &str) -> (u64, u64) {
    let blocks = blocks::blocks(log);
    (blocks.len() as u64, blocks.iter().map(|b| b.instructions).sum())
}

/// Bytes of the named section in an ELF file.
pub fn section_size(elf: &[u8], name: &str) -> Result<u64, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| e.to_string())?;
    Ok(file.section_by_name(name).map_or(0, |s| s.size()))
}

/// One boot of the instructions table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRow {
    /// The machine and anything else about the boot that is not the
    /// default (`virt`; `raspi3b`; `virt, UEFI`; a tree of the bench's own).
    pub machine: String,
    pub granule: String,
    pub ram: String,
    pub kaslr: bool,
    pub phases: Phases,
}

/// Wall time of the null kernel and of splitmap over interleaved pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wall {
    pub null: Spread,
    pub kernel: Spread,
    pub pairs: usize,
    /// Pair by pair: each splitmap boot's time over the null kernel's boot
    /// just before it (the two ran under the same load).
    pub ratio: Spread,
}

/// What the wall time against the null kernel should come to (issue 34):
/// its target, which the bench states beside the measured spread.
pub const WALL_RATIO_TARGET: f64 = 1.20;

/// Functions listed in the blocks-per-function table.
pub const TOP_FUNCTIONS: usize = 15;

/// Everything one bench run measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub boots: Vec<BootRow>,
    pub wall: Option<Wall>,
    /// The CPU time QEMU used in those boots: (null, splitmap).
    pub cpu: Option<(CpuTime, CpuTime)>,
    /// Blocks and instructions QEMU translated for each: (null, splitmap).
    pub translated: Option<((u64, u64), (u64, u64))>,
    /// What QEMU charges for code run once, by kind of code.
    pub tcg_costs: Vec<TcgCost>,
    /// Blocks translated to the prompt (4K, 1 GiB, KASLR off), by function.
    pub prompt_blocks: Option<blocks::PromptBlocks>,
    /// Where a boot's time goes, KASLR off then on: instructions per phase
    /// (one `--icount` boot) and wall time per phase (the median of boots
    /// without it), and how many boots that was.
    pub wall_phases: Vec<(bool, Phases, Phases)>,
    pub wall_phase_boots: usize,
    /// (granule, RAM bytes, largest blocks, cost).
    pub linear: Vec<(&'static str, u64, bool, LinearCost)>,
    pub modules: Vec<ModuleLoad>,
    pub pie: Option<Pie>,
    /// Where and when it ran.
    pub machine: String,
}

/// A count, or a dash where there is none.
fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "—".into(), |n| n.to_string())
}

/// The device tree phase's instructions per structure token, if the
/// kernel said how many tokens and counted instructions.
pub fn per_token(p: &Phases) -> Option<f64> {
    let tokens = p.tokens.filter(|&t| t > 0)?;
    let dt = p.phases.iter().find(|(n, _)| n == "devicetree")?.1;
    (p.unit == "instructions").then(|| dt as f64 / tokens as f64)
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "n/a".into()
    } else {
        format!("{:.2}", a as f64 / b as f64)
    }
}

impl Results {
    /// The Markdown tables, one section per question; a section without
    /// figures is left out.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.instructions_table(&mut out);
        self.wall_table(&mut out);
        self.cpu_table(&mut out);
        self.translated_note(&mut out);
        self.tcg_costs_table(&mut out);
        self.prompt_blocks_table(&mut out);
        self.wall_phases_table(&mut out);
        self.linear_table(&mut out);
        self.pie_table(&mut out);
        self.modules_table(&mut out);
        out
    }

    /// The instructions table: one row per boot, a column per phase, and
    /// the device tree phase per structure token of the tree read.
    fn instructions_table(&self, out: &mut String) {
        let Some(first) = self.boots.first() else {
            return;
        };
        out.push_str("| machine | granule | RAM | KASLR |");
        let phases = &first.phases.phases;
        for (name, _) in phases {
            let _ = write!(out, " {name} |");
        }
        out.push_str(" total | tree tokens | devicetree per token |\n|---|---|---|---|");
        out.push_str(&"---:|".repeat(phases.len() + 3));
        out.push('\n');
        for row in &self.boots {
            let p = &row.phases;
            let _ = write!(
                out,
                "| {} | {} | {} | {} |",
                row.machine,
                row.granule,
                row.ram,
                if row.kaslr { "on" } else { "off" }
            );
            for (_, n) in &p.phases {
                let _ = write!(out, " {n} |");
            }
            let _ = writeln!(
                out,
                " **{}** | {} | {} |",
                p.total,
                count(p.tokens),
                per_token(p).map_or_else(|| "—".into(), |x| format!("{x:.0}"))
            );
        }
        out.push('\n');
        if self.boots.iter().any(|r| r.phases.tokens.is_none()) {
            out.push_str("A dash for tree tokens: that boot's kernel did not say how many structure tokens its tree has (`devicetree tokens=N` after `phases`).\n\n");
        }
        self.secondaries_table(out);
    }

    /// What bringing up each secondary CPU cost, in the boots that had any.
    fn secondaries_table(&self, out: &mut String) {
        let rows: Vec<&BootRow> = self.boots.iter().filter(|r| !r.phases.secondaries.is_empty()).collect();
        if rows.is_empty() {
            return;
        }
        out.push_str("| machine | granule | RAM | KASLR | secondary CPU | preparing it (boot CPU) | from the request to its report |\n|---|---|---|---|---:|---:|---:|\n");
        for row in rows {
            for s in &row.phases.secondaries {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    row.machine,
                    row.granule,
                    row.ram,
                    if row.kaslr { "on" } else { "off" },
                    s.cpu,
                    count(s.prepare),
                    count(s.instructions)
                );
            }
        }
        out.push_str("\nInstructions per secondary CPU: the boot CPU preparing it (its stacks mapped, its boot record written and cleaned to the point of coherency), then from the request (PSCI `CPU_ON`, or the spin-table release) to the CPU reporting in; under `-icount` QEMU counts the instructions of every CPU in one count, so the second figure is the secondary's own and the boot CPU's as it waits (in `WFE`). The `shell` phase includes both.\n\n");
    }

    /// Wall time of the null kernel and of splitmap, and their ratio.
    fn wall_table(&self, out: &mut String) {
        if let Some(w) = &self.wall {
            out.push_str("| boot (wall time, s) | min | median | max |\n|---|---:|---:|---:|\n");
            for (name, s) in [
                ("null kernel (PSCI off at once)", &w.null),
                ("splitmap to the prompt and off", &w.kernel),
            ] {
                let _ = writeln!(out, "| {name} | {:.3} | {:.3} | {:.3} |", s.min, s.median, s.max);
            }
            let _ = writeln!(
                out,
                "\nRatio of medians: **{:.2}** ({} interleaved pairs). Pair by pair (each splitmap boot over the null kernel's just before it): min {:.2}, median **{:.2}**, max {:.2}. Target: ≤ {WALL_RATIO_TARGET:.2} ({}, by the median of the pairs).\n",
                w.kernel.median / w.null.median,
                w.pairs,
                w.ratio.min,
                w.ratio.median,
                w.ratio.max,
                if w.ratio.median <= WALL_RATIO_TARGET {
                    "met"
                } else {
                    "not met"
                }
            );
        }
    }

    /// The CPU time QEMU spent on those boots, user and system.
    fn cpu_table(&self, out: &mut String) {
        if let Some((null, kernel)) = &self.cpu {
            out.push_str("| QEMU's CPU time in those boots (ms, median) | user | system |\n|---|---:|---:|\n");
            for (name, c) in [("null kernel", null), ("splitmap", kernel)] {
                let _ = writeln!(out, "| {name} | {:.1} | {:.1} |", c.user * 1e3, c.system * 1e3);
            }
            out.push_str(
                "\nUser time is QEMU translating and running guest code; system time is the host kernel working for QEMU (starting it, mapping guest RAM, page faults).\n\n",
            );
        }
    }

    /// What QEMU translated for each kernel, and the cost per block it suggests.
    fn translated_note(&self, out: &mut String) {
        if let Some(((null_blocks, null_insns), (blocks, insns))) = self.translated {
            let _ = writeln!(
                out,
                "QEMU translated {null_blocks} blocks ({null_insns} instructions) for the null kernel and {blocks} blocks ({insns} instructions) for splitmap's boot and power-off (`-d in_asm`)."
            );
            if let Some(w) = &self.wall {
                let _ = writeln!(
                    out,
                    "The difference of the medians over the difference in blocks: **{:.1} µs per translated block**.",
                    (w.kernel.median - w.null.median) * 1e6 / blocks.saturating_sub(null_blocks).max(1) as f64
                );
            }
            out.push('\n');
        }
    }

    /// What QEMU charged the probes, per unit of code run once.
    fn tcg_costs_table(&self, out: &mut String) {
        if self.tcg_costs.is_empty() {
            return;
        }
        out.push_str("| what QEMU charges for code run once: the null kernel running more of it | units | boots | wall µs per unit | QEMU user µs per unit |\n|---|---:|---:|---:|---:|\n");
        for c in &self.tcg_costs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} |",
                c.what, c.units, c.boots, c.wall_us, c.user_us
            );
        }
        out.push_str("\nEach probe boots interleaved with the pairs above; its cost is the difference of its median and the null kernel's, over its units.\n\n");
    }

    /// Blocks translated to the prompt, against the target, and the
    /// functions with the most.
    fn prompt_blocks_table(&self, out: &mut String) {
        let Some(b) = &self.prompt_blocks else {
            return;
        };
        let target = blocks::TARGET;
        let _ = writeln!(
            out,
            "Translated blocks from the first instruction to the prompt (4 KiB pages, 1 GiB, KASLR off): **{}** ({} instructions) in {} functions; target ≤ {target} ({}).\n",
            b.total,
            b.instructions,
            b.functions.len(),
            if b.total <= target { "met" } else { "not met" }
        );
        out.push_str("| function | blocks translated to the prompt | instructions in them |\n|---|---:|---:|\n");
        for t in b.functions.iter().take(TOP_FUNCTIONS) {
            let _ = writeln!(out, "| `{}` | {} | {} |", t.function, t.blocks, t.instructions);
        }
        let rest = b.functions.iter().skip(TOP_FUNCTIONS);
        let (functions, blocks, instructions) =
            rest.fold((0, 0, 0), |(f, n, i), t| (f + 1, n + t.blocks, i + t.instructions));
        if functions > 0 {
            let _ = writeln!(out, "| {functions} other functions | {blocks} | {instructions} |");
        }
        out.push_str("\nEach block by its first address in QEMU's `-d in_asm` log, named by the kernel's ELF symbols (the early code ran at the image's physical address, the rest at its virtual one). A block QEMU translated twice counts twice.\n\n");
    }

    /// Phase by phase, KASLR off and on: instructions beside wall time.
    fn wall_phases_table(&self, out: &mut String) {
        if !self.wall_phases.is_empty() {
            out.push_str("| phase |");
            for (kaslr, _, _) in &self.wall_phases {
                let k = if *kaslr { "on" } else { "off" };
                let _ = write!(out, " KASLR {k}: instructions | KASLR {k}: wall µs |");
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|---:|".repeat(self.wall_phases.len()));
            out.push('\n');
            let names = self.wall_phases[0].1.phases.iter().map(|(n, _)| n.as_str());
            for (i, name) in names.enumerate() {
                let _ = write!(out, "| {name} |");
                for (_, instructions, micros) in &self.wall_phases {
                    let _ = write!(out, " {} | {} |", instructions.phases[i].1, micros.phases[i].1);
                }
                out.push('\n');
            }
            out.push_str("| **to the prompt** |");
            for (_, instructions, micros) in &self.wall_phases {
                let _ = write!(out, " **{}** | **{}** |", instructions.total, micros.total);
            }
            out.push_str("\n| devicetree read again at `phases` (not part of boot) |");
            for (_, instructions, micros) in &self.wall_phases {
                let _ = write!(out, " {} | {} |", count(instructions.again), count(micros.again));
            }
            let _ = writeln!(
                out,
                "\n\nWall µs: the median of {} boots without `-icount`, by the generic timer from the first instruction; instructions: one boot with `-icount` (QEMU's clock then follows the instruction count, so the two cannot come from one boot).\n",
                self.wall_phase_boots
            );
        }
    }

    /// The linear map in the largest blocks and in pages.
    fn linear_table(&self, out: &mut String) {
        if !self.linear.is_empty() {
            out.push_str(
                "| granule | RAM | mapped with | table pages (beyond the root) | fewest possible | table bytes | descriptors | levels per walk | one TLB entry covers (computed) |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
            );
            for (granule, ram, largest, c) in &self.linear {
                // RAM at 1 GiB is aligned to every block: the largest-block
                // map of the same RAM is the fewest tables any map can use.
                let fewest = self
                    .linear
                    .iter()
                    .find(|(g, r, l, _)| g == granule && r == ram && *l)
                    .map_or(c.tables, |(_, _, _, best)| best.tables);
                let _ = writeln!(
                    out,
                    "| {granule} | {} | {} | {} | {fewest} | {} KiB | {} | {} | {} |",
                    crate::map::size(*ram),
                    if *largest { "largest blocks" } else { "pages" },
                    c.tables,
                    c.table_bytes >> 10,
                    c.descriptors,
                    c.levels,
                    crate::map::size(c.reach)
                );
            }
            out.push('\n');
        }
    }

    /// The kernel linked as a PIE against statically, and what relocating costs.
    fn pie_table(&self, out: &mut String) {
        if let Some(p) = &self.pie {
            out.push_str("| the same kernel | linked as a PIE (ships) | linked statically |\n|---|---:|---:|\n");
            for (what, (a, b)) in [
                ("`.text` bytes", p.text),
                ("Image bytes", p.image),
                ("instructions to the prompt (`nokaslr`)", p.instructions),
            ] {
                let _ = writeln!(out, "| {what} | {a} | {b} |");
            }
            let _ = writeln!(
                out,
                "\nRelocation data: RELR, **{} bytes** for {} relocations. A KASLR boot spends **{}** instructions moving and relocating the image, {:.1} % of its {}.\n",
                p.relr_bytes,
                p.relocations,
                p.relocating,
                100.0 * p.relocating as f64 / p.kaslr_total.max(1) as f64,
                p.kaslr_total
            );
        }
    }

    /// What loading each module cost, near and far.
    fn modules_table(&self, out: &mut String) {
        if !self.modules.is_empty() {
            out.push_str(
                "| module | loaded | relocations | slots counted | veneers written | distinct far targets | veneers / targets | insmod instructions | loader instructions (to init_module) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for m in &self.modules {
                let per = if m.far {
                    ratio(m.veneers, m.far_targets)
                } else {
                    "—".into()
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {per} | {} | {} |",
                    m.name,
                    if m.far { "far" } else { "near" },
                    m.relocations,
                    m.slots,
                    m.veneers,
                    m.far_targets,
                    m.instructions,
                    m.loader_instructions
                );
            }
            out.push('\n');
        }
    }

    /// The same as JSON, for scripts.
    pub fn json(&self) -> Value {
        let spread = |s: &Spread| json!({"min": s.min, "median": s.median, "max": s.max});
        json!({
            "machine": self.machine,
            "boots": self.boots.iter().map(|r| { let p = &r.phases; json!({
                "machine": r.machine, "granule": r.granule, "ram": r.ram, "kaslr": r.kaslr, "total": p.total,
                "phases": p.phases.iter().map(|(n, c)| json!({"phase": n, "instructions": c})).collect::<Vec<_>>(),
                "devicetree_tokens": p.tokens, "devicetree_instructions_per_token": per_token(p),
                "secondaries": p.secondaries.iter().map(|s| json!({
                    "cpu": s.cpu, "prepare_instructions": s.prepare, "instructions": s.instructions, "us": s.micros,
                })).collect::<Vec<_>>(),
            })}).collect::<Vec<_>>(),
            "wall": self.wall.as_ref().map(|w| json!({
                "null_kernel_s": spread(&w.null), "splitmap_s": spread(&w.kernel), "pairs": w.pairs,
                "ratio_of_medians": w.kernel.median / w.null.median,
                "ratio_by_pair": spread(&w.ratio), "ratio_target": WALL_RATIO_TARGET,
            })),
            "prompt_blocks": self.prompt_blocks.as_ref().map(|b| json!({
                "total": b.total, "instructions": b.instructions, "target": blocks::TARGET,
                "functions": b.functions.iter().map(|t| json!({
                    "function": t.function, "blocks": t.blocks, "instructions": t.instructions,
                })).collect::<Vec<_>>(),
            })),
            "qemu_cpu_s_median": self.cpu.as_ref().map(|(null, kernel)| json!({
                "null_kernel": {"user": (null.user), "system": (null.system)},
                "splitmap": {"user": (kernel.user), "system": (kernel.system)},
            })),
            "wall_phases": self.wall_phases.iter().map(|(kaslr, instructions, micros)| json!({
                "kaslr": kaslr, "boots": self.wall_phase_boots,
                "phases": instructions.phases.iter().zip(&micros.phases).map(|((n, i), (_, us))| json!({
                    "phase": n, "instructions": i, "wall_us_median": us,
                })).collect::<Vec<_>>(),
                "total": {"instructions": instructions.total, "wall_us_median": micros.total},
                "devicetree_again": {"instructions": instructions.again, "wall_us_median": micros.again},
            })).collect::<Vec<_>>(),
            "tcg_costs": self.tcg_costs.iter().map(|c| json!({
                "what": c.what, "units": c.units, "boots": c.boots, "wall_us_per_unit": c.wall_us, "user_us_per_unit": c.user_us,
            })).collect::<Vec<_>>(),
            "translated": self.translated.map(|((nb, ni), (kb, ki))| json!({
                "null_kernel": {"blocks": nb, "instructions": ni},
                "splitmap": {"blocks": kb, "instructions": ki},
            })),
            "linear": self.linear.iter().map(|(granule, ram, largest, c)| json!({
                "granule": granule, "ram": ram, "largest_blocks": largest, "table_pages_beyond_root": c.tables,
                "table_bytes": c.table_bytes, "descriptors": c.descriptors,
                "levels_per_walk": c.levels, "tlb_entry_covers": c.reach,
            })).collect::<Vec<_>>(),
            "pie": self.pie.as_ref().map(|p| json!({
                "text_bytes": {"pie": p.text.0, "static": p.text.1},
                "image_bytes": {"pie": p.image.0, "static": p.image.1},
                "instructions_to_prompt_nokaslr": {"pie": p.instructions.0, "static": p.instructions.1},
                "relr_bytes": p.relr_bytes, "relocations": p.relocations,
                "relocating_instructions": p.relocating, "kaslr_boot_instructions": p.kaslr_total,
            })),
            "modules": self.modules.iter().map(|m| json!({
                "module": m.name, "far": m.far, "relocations": m.relocations, "slots": m.slots,
                "veneers": m.veneers, "far_targets": m.far_targets, "insmod_instructions": m.instructions,
                "loader_instructions": m.loader_instructions,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_back() {
        let out = "splitmap> phases\nphase early      instructions=10 share=10.0%\nphase shell      instructions=90 share=90.0%\ntotal instructions=100 (from …)\n";
        let p = parse_phases(out).unwrap();
        assert_eq!(p.phases, [("early".to_string(), 10), ("shell".to_string(), 90)]);
        assert_eq!((p.total, p.unit.as_str()), (100, "instructions"));
        assert_eq!(parse_phases("phases: not counted"), None);
        assert_eq!(p.again, None);
        let wall = "phase early      us=700 share=70.0%\nphase shell      us=300 share=30.0%\ntotal us=1000 (…)\nagain devicetree us=40 (…)\n";
        let w = parse_phases(wall).unwrap();
        assert_eq!((w.phases[1].1, w.total, w.unit.as_str()), (300, 1000, "us"));
        assert_eq!(w.again, Some(40));
    }

    #[test]
    fn tokens_and_secondaries_are_read_when_the_kernel_says_them() {
        let out = "phase early      instructions=10 share=10.0%\nphase devicetree instructions=700 share=70.0%\ntotal instructions=1000 (…)\ndevicetree tokens=335 bytes=7044 instructions-per-token=2\nagain devicetree instructions=650 (…)\nsecondary cpu=1 instructions=4242 prepare=3000\nsecondary cpu=2 us=17\n";
        let p = parse_phases(out).unwrap();
        assert_eq!(p.tokens, Some(335));
        assert_eq!(p.again, Some(650), "the tokens line is not the again line");
        assert_eq!(
            p.secondaries,
            [
                Secondary {
                    cpu: 1,
                    instructions: Some(4242),
                    micros: None,
                    prepare: Some(3000)
                },
                Secondary {
                    cpu: 2,
                    instructions: None,
                    micros: Some(17),
                    prepare: None
                }
            ]
        );
        assert_eq!(per_token(&p).map(|x| x.round()), Some(2.0), "700 / 335, from the phase");
        // Before the kernel says it: no tokens, no column value, no error.
        let before =
            parse_phases("phase devicetree instructions=700 share=70.0%\ntotal instructions=1000 (…)\n").unwrap();
        assert_eq!((before.tokens, per_token(&before)), (None, None));
        assert!(before.secondaries.is_empty());
        // Wall time per token would mix units: none.
        let wall = parse_phases("phase devicetree us=700 share=70.0%\ntotal us=1000 (…)\ndevicetree tokens=10 bytes=1 instructions-per-token=0\n").unwrap();
        assert_eq!((wall.tokens, per_token(&wall)), (Some(10), None));
    }

    fn row(machine: &str, tokens: Option<u64>, secondaries: Vec<Secondary>) -> BootRow {
        BootRow {
            machine: machine.into(),
            granule: "4K".into(),
            ram: "1G".into(),
            kaslr: false,
            phases: Phases {
                phases: vec![("early".into(), 100), ("devicetree".into(), 600)],
                total: 700,
                unit: "instructions".into(),
                again: None,
                tokens,
                secondaries,
            },
        }
    }

    /// A function's blocks, two instructions each.
    fn translated(function: String, blocks: u64) -> blocks::Translated {
        blocks::Translated {
            function,
            blocks,
            instructions: 2 * blocks,
        }
    }

    #[test]
    fn the_tables_state_the_targets_and_the_spread() {
        let s = |min, median, max| Spread { min, median, max };
        let mut blocks: Vec<_> = (0..20).map(|i| translated(format!("f{i:02}"), 40 - i)).collect();
        blocks[0].function = "walk_tokens".into();
        let results = Results {
            boots: vec![
                row("virt", Some(300), Vec::new()),
                row("raspi3b", None, Vec::new()),
                row(
                    "virt, --smp 2",
                    Some(300),
                    vec![Secondary {
                        cpu: 1,
                        instructions: Some(5000),
                        micros: None,
                        prepare: Some(3000),
                    }],
                ),
            ],
            wall: Some(Wall {
                null: s(0.05, 0.08, 0.1),
                kernel: s(0.06, 0.1, 0.2),
                pairs: 15,
                ratio: s(1.1, 1.19, 1.5),
            }),
            translated: Some(((3, 10), (1003, 5000))),
            prompt_blocks: Some(blocks::PromptBlocks {
                total: 701,
                instructions: 4000,
                functions: blocks,
            }),
            ..Results::default()
        };
        let md = results.markdown();
        assert!(
            md.contains(
                "| machine | granule | RAM | KASLR | early | devicetree | total | tree tokens | devicetree per token |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| virt | 4K | 1G | off | 100 | 600 | **700** | 300 | 2 |"),
            "{md}"
        );
        assert!(
            md.contains("| raspi3b | 4K | 1G | off | 100 | 600 | **700** | — | — |"),
            "{md}"
        );
        assert!(md.contains("did not say how many structure tokens"), "{md}");
        assert!(
            md.contains("| virt, --smp 2 | 4K | 1G | off | 1 | 3000 | 5000 |"),
            "{md}"
        );
        assert!(
            md.contains("min 1.10, median **1.19**, max 1.50. Target: ≤ 1.20 (met, by the median of the pairs)"),
            "{md}"
        );
        assert!(md.contains("(15 interleaved pairs)"), "{md}");
        assert!(
            md.contains("**701** (4000 instructions) in 20 functions; target ≤ 700 (not met)"),
            "{md}"
        );
        assert!(md.contains("| `walk_tokens` | 40 | 80 |"), "{md}");
        assert!(
            md.contains("| `f14` | 26 |") && !md.contains("`f15`"),
            "the top 15 only:\n{md}"
        );
        assert!(
            md.contains("| 5 other functions | 115 | 230 |"),
            "25 + 24 + 23 + 22 + 21:\n{md}"
        );
        let json = results.json();
        assert_eq!(json["prompt_blocks"]["total"], 701);
        assert_eq!(json["wall"]["ratio_by_pair"]["median"], 1.19);
        assert_eq!(json["wall"]["ratio_target"], 1.2);
        assert_eq!(json["boots"][0]["devicetree_tokens"], 300);
        assert_eq!(json["boots"][1]["devicetree_tokens"], Value::Null);
        assert_eq!(json["boots"][2]["secondaries"][0]["instructions"], 5000);
    }

    #[test]
    fn the_big_tree_has_its_ranges_and_reservations() {
        use kernel::boot::dtb;
        let blob = ranges_tree();
        let tree = dtb::parse(&blob).unwrap();
        assert_eq!(tree.memory.len() as u64, TREE_RANGES, "1 MiB gaps keep them apart");
        assert_eq!(tree.reserved.len() as u64, TREE_RESERVATIONS);
        assert_eq!(tree.bootargs, "nokaslr");
        // The raw tree's place (stage-0's) is RAM, and no reservation's.
        let place = pi::addr::PhysAddr::new(0x4600_0000);
        assert!(tree.memory.iter().any(|r| r.contains(place)));
        assert!(!tree.reserved.iter().any(|r| r.contains(place)));
    }

    #[test]
    fn medians_phase_by_phase() {
        let boot = |early, shell| Phases {
            phases: vec![("early".into(), early), ("shell".into(), shell)],
            total: early + shell,
            unit: "us".into(),
            again: Some(shell * 2),
            tokens: None,
            secondaries: Vec::new(),
        };
        let m = median_phases(&[boot(5, 50), boot(9, 10), boot(7, 30)]).unwrap();
        assert_eq!(m.phases, [("early".to_string(), 7), ("shell".to_string(), 30)]);
        assert_eq!(m.total, 37, "the median of the totals, not the sum of the medians");
        assert_eq!(m.again, Some(60));
        let missing = Phases {
            again: None,
            ..boot(1, 1)
        };
        assert_eq!(median_phases(&[boot(5, 50), missing]).unwrap().again, None);
        assert_eq!(median_phases(&[]), None);
    }

    #[test]
    fn spreads_and_the_null_kernel() {
        let ms = |v: u64| Duration::from_millis(v);
        let s = spread(&[ms(30), ms(10), ms(20), ms(40)]);
        assert_eq!((s.min, s.median, s.max), (0.01, 0.025, 0.04));
        let r = spread_of(&[1.3, 1.1, 1.2]);
        assert_eq!((r.min, r.median, r.max), (1.1, 1.2, 1.3));
        let image = null_kernel();
        assert_eq!(&image[56..60], b"ARM\x64");
        assert_eq!(
            u32::from_le_bytes(image[0..4].try_into().unwrap()) >> 26,
            0b000101,
            "code0 is a branch"
        );
    }

    #[test]
    fn a_probe_runs_its_code_between_the_header_and_the_power_off() {
        let word = |image: &[u8], at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
        for probe in tcg_probes() {
            let image = null_kernel_running(&probe.code);
            let size = u64::from_le_bytes(image[16..24].try_into().unwrap());
            assert_eq!(size, image.len() as u64, "{}: image_size covers the code", probe.what);
            assert_eq!(size % 4096, 0);
            assert_eq!(word(&image, 0x40), probe.code[0]);
            let end = 0x40 + 4 * probe.code.len();
            assert_eq!(word(&image, end - 4), *probe.code.last().unwrap());
            assert_eq!(word(&image, end + 8), 0xd400_0002, "{}: then hvc #0", probe.what);
        }
        assert_eq!(null_kernel_running(&[]), null_kernel());
        assert_eq!(word(&null_kernel(), 0x48), 0xd400_0002);
    }

    #[test]
    fn blocks_cost_a_fraction_of_pages() {
        use pi::pgtable::Granule;
        // 4 GiB at 1 GiB in 4 KiB: one level-1 table below the root, four
        // 1 GiB blocks; the kernel's `layout` says "1 table pages" for it too.
        let c = linear_cost(Granule::K4, 4 << 30, true);
        assert_eq!((c.tables, c.descriptors, c.levels, c.reach), (1, 4, 2, 1 << 30));
        // The same in pages: 2048 level-3 tables, 4 level-2, 1 level-1.
        let c = linear_cost(Granule::K4, 4 << 30, false);
        assert_eq!(
            (c.tables, c.descriptors, c.levels, c.reach),
            (2048 + 4 + 1, 1 << 20, 4, 4096)
        );
        // 64 KiB: the walk starts at level 1 (the root); eight 512 MiB
        // blocks in one level-2 table.
        let c = linear_cost(Granule::K64, 4 << 30, true);
        assert_eq!((c.tables, c.table_bytes, c.descriptors, c.levels), (1, 64 << 10, 8, 2));
        // 16 KiB: 128 blocks of 32 MiB, three levels read, two below the root.
        let c = linear_cost(Granule::K16, 4 << 30, true);
        assert_eq!((c.tables, c.descriptors, c.levels, c.reach), (2, 128, 3, 32 << 20));
    }
}
