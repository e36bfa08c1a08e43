//! `splitmap bench`: the numbers behind the 2015 thread's open questions
//! ("If we're doing this for performance it would be good to see numbers";
//! "Isn't this gain somewhat offset by having to build the kernel as a
//! PIE?"). The boots are in bench_cmd.rs; this file reads what they printed,
//! computes what needs no boot, and writes the tables.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

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
}

/// Reads `phases` output; `None` if nothing was counted.
pub fn parse_phases(output: &str) -> Option<Phases> {
    let mut phases = Vec::new();
    let mut total = None;
    let mut unit = None;
    let mut again = None;
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
            _ => {}
        }
    }
    Some(Phases {
        phases,
        total: total?,
        unit: unit?,
        again,
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
    let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
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
    let mut image = vec![0u8; 4096];
    let mut put = |offset: usize, word: u32| image[offset..offset + 4].copy_from_slice(&word.to_le_bytes());
    put(0, 0x1400_0010); // code0: b +0x40, past the header
    put(0x40, 0x5280_0100); // movz w0, #0x0008
    put(0x44, 0x72b0_8000); // movk w0, #0x8400, lsl #16: SYSTEM_OFF = 0x84000008
    put(0x48, 0xd400_0002); // hvc #0
    put(0x4c, 0x1400_0000); // b . (if the call returns)
    image[16..24].copy_from_slice(&4096u64.to_le_bytes()); // image_size
    image[24..32].copy_from_slice(&((1u64 << 1) | (1 << 3)).to_le_bytes()); // 4 KiB pages, anywhere
    image[56..60].copy_from_slice(b"ARM\x64");
    image
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
    let blocks = log.lines().filter(|l| l.starts_with("IN:")).count() as u64;
    let instructions = log.lines().filter(|l| l.starts_with("0x")).count() as u64;
    (blocks, instructions)
}

/// Bytes of the named section in an ELF file.
pub fn section_size(elf: &[u8], name: &str) -> Result<u64, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| e.to_string())?;
    Ok(file.section_by_name(name).map_or(0, |s| s.size()))
}

/// Everything one bench run measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// (granule, RAM, KASLR on, phases).
    pub boots: Vec<(String, String, bool, Phases)>,
    /// Wall time of the null kernel and of splitmap, and how many pairs.
    pub wall: Option<(Spread, Spread, usize)>,
    /// The CPU time QEMU used in those boots: (null, splitmap).
    pub cpu: Option<(CpuTime, CpuTime)>,
    /// Blocks and instructions QEMU translated for each: (null, splitmap).
    pub translated: Option<((u64, u64), (u64, u64))>,
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
        self.wall_phases_table(&mut out);
        self.linear_table(&mut out);
        self.pie_table(&mut out);
        self.modules_table(&mut out);
        out
    }

    /// The instructions table: one row per boot, a column per phase.
    fn instructions_table(&self, out: &mut String) {
        if !self.boots.is_empty() {
            out.push_str("| granule | RAM | KASLR |");
            let phases = &self.boots[0].3.phases;
            for (name, _) in phases {
                let _ = write!(out, " {name} |");
            }
            out.push_str(" total |\n|---|---|---|");
            out.push_str(&"---:|".repeat(phases.len() + 1));
            out.push('\n');
            for (granule, ram, kaslr, p) in &self.boots {
                let _ = write!(out, "| {granule} | {ram} | {} |", if *kaslr { "on" } else { "off" });
                for (_, n) in &p.phases {
                    let _ = write!(out, " {n} |");
                }
                let _ = writeln!(out, " **{}** |", p.total);
            }
            out.push('\n');
        }
    }

    /// Wall time of the null kernel and of splitmap, and their ratio.
    fn wall_table(&self, out: &mut String) {
        if let Some((null, kernel, pairs)) = &self.wall {
            out.push_str("| boot (wall time, s) | min | median | max |\n|---|---:|---:|---:|\n");
            for (name, s) in [
                ("null kernel (PSCI off at once)", null),
                ("splitmap to the prompt and off", kernel),
            ] {
                let _ = writeln!(out, "| {name} | {:.3} | {:.3} | {:.3} |", s.min, s.median, s.max);
            }
            let _ = writeln!(
                out,
                "\nRatio of medians: **{:.2}** ({pairs} interleaved pairs).\n",
                kernel.median / null.median
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
            if let Some((null, kernel, _)) = &self.wall {
                let _ = writeln!(
                    out,
                    "The difference of the medians over the difference in blocks: **{:.1} µs per translated block**.",
                    (kernel.median - null.median) * 1e6 / blocks.saturating_sub(null_blocks).max(1) as f64
                );
            }
            out.push('\n');
        }
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
            "boots": self.boots.iter().map(|(granule, ram, kaslr, p)| json!({
                "granule": granule, "ram": ram, "kaslr": kaslr, "total": p.total,
                "phases": p.phases.iter().map(|(n, c)| json!({"phase": n, "instructions": c})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "wall": self.wall.as_ref().map(|(null, kernel, pairs)| json!({
                "null_kernel_s": spread(null), "splitmap_s": spread(kernel), "pairs": pairs,
                "ratio_of_medians": kernel.median / null.median,
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
    fn medians_phase_by_phase() {
        let boot = |early, shell| Phases {
            phases: vec![("early".into(), early), ("shell".into(), shell)],
            total: early + shell,
            unit: "us".into(),
            again: Some(shell * 2),
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
        let image = null_kernel();
        assert_eq!(&image[56..60], b"ARM\x64");
        assert_eq!(
            u32::from_le_bytes(image[0..4].try_into().unwrap()) >> 26,
            0b000101,
            "code0 is a branch"
        );
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
