//! `splitmap map`: a picture of one boot's address spaces, drawn from what
//! the shell printed (`layout`, `ptdump`, `mem`, `kaslr`, and `walk` for the
//! HTML page). This file reads a transcript into a [`Model`]; `draw` makes the
//! SVG, `page` the HTML page and `table` the Start/End/Size/Use table.

pub mod draw;
pub mod page;
pub mod table;

use std::collections::BTreeMap;

/// A half-open address range.
pub type Span = (u64, u64);

/// One `layout` row: a region of the kernel's virtual address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// `text`, `linear`, `hello:text`, …
    pub name: String,
    pub va: Span,
    /// Where it maps, if it maps one physical range.
    pub pa: Option<Span>,
    /// `r-x`, `rw-`, …
    pub prot: String,
    /// Descriptors per block size, as `layout` prints them: `1G:0,2M:0,4K:60`.
    pub map: String,
}

/// One `ptdump` line: a run of leaf descriptors with the same attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub va: Span,
    pub pa: Span,
    /// `1G`, `2M`, `4K`.
    pub blk: String,
    /// How many descriptors.
    pub n: u64,
    /// `normal` or `device`.
    pub attr: String,
    /// `rw` or `ro`.
    pub ap: String,
    /// Executable by the kernel.
    pub exec: bool,
}

impl Run {
    /// What the run permits, as `layout` writes it: `r-x`, `r--` or `rw-`.
    pub fn prot(&self) -> &'static str {
        match (self.ap == "ro", self.exec) {
            (true, true) => "r-x",
            (true, false) => "r--",
            (false, _) => "rw-",
        }
    }

    /// `4K×60 ro x`: what a band between the two columns is labelled with.
    pub fn label(&self) -> String {
        let exec = if self.exec { " x" } else { "" };
        let device = if self.attr == "device" { " device" } else { "" };
        format!("{}×{} {}{exec}{device}", self.blk, self.n, self.ap)
    }
}

/// Where KASLR put things (`kaslr`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kaslr {
    /// `source=…`, up to the seed.
    pub source: String,
    pub seed: Option<u64>,
    pub offset: u64,
    /// The window the image's text may land in, and its entropy.
    pub window: Option<(Span, String)>,
    /// The modules' direct-branch window and their PLT window.
    pub direct: Option<Span>,
    pub plt: Option<Span>,
}

/// A loaded module, from `lsmod -v`: where it is and the veneers it wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub base: u64,
    /// Each veneer's address (a veneer is [`VENEER_BYTES`] long).
    pub veneers: Vec<u64>,
}

/// A veneer's size: `adrp x16; add x16; br x16`.
pub const VENEER_BYTES: u64 = 12;

/// Everything a map is drawn from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub regions: Vec<Region>,
    pub runs: Vec<Run>,
    /// RAM, from `mem`.
    pub ram: Vec<Span>,
    /// Reserved physical ranges, with what they hold (`image`, `dtb`, …).
    pub reserved: Vec<(Span, String)>,
    pub kaslr: Kaslr,
    /// `walk VA` answers, by VA.
    pub walks: BTreeMap<u64, Vec<String>>,
    /// The loaded modules, from `lsmod -v`.
    pub modules: Vec<Module>,
}

/// A piece of physical address space in the right-hand column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub pa: Span,
    /// `image`, `free`, `device`, or the region whose frames these are
    /// (`text`, `stack`, `hello:text`, …).
    pub name: String,
    /// What the drawing calls it: `free RAM`, `image: text`, `in use: stack`.
    pub what: String,
    /// The region (its `layout` name) that uses these frames, if one does.
    pub region: Option<String>,
}

impl Region {
    /// Whether it is the module window, which holds the loaded modules' own
    /// rows rather than being mapped itself.
    pub fn is_module_window(&self) -> bool {
        pi::kmap::find(&self.name).is_some_and(|r| r.place == pi::kmap::Place::Modules)
    }

    /// The module whose area it is (`hello` of `hello:text`), if it is one.
    pub fn module(&self) -> Option<&str> {
        if pi::kmap::find(&self.name).is_some() {
            return None;
        }
        self.name.split_once(':').map(|(module, _)| module)
    }

    /// Whether the kernel maps it as device memory.
    pub fn is_device(&self) -> bool {
        pi::kmap::find(&self.name)
            .and_then(|r| r.mapping)
            .is_some_and(|m| m.attrs.mem == pi::pgtable::MemType::Device)
    }
}

impl Model {
    /// The regions drawn as boxes in the virtual column, lowest first: every
    /// `layout` row but the module window (drawn as one) holding the loaded
    /// modules' own rows.
    pub fn boxes(&self) -> Vec<&Region> {
        let mut boxes: Vec<&Region> = self.regions.iter().filter(|r| !r.is_module_window()).collect();
        boxes.sort_by_key(|r| r.va);
        boxes
    }

    /// The page size the boot used, from `layout`'s `map=` (whose last
    /// entry is the page): `4K`, `16K` or `64K`.
    pub fn page_size(&self) -> &str {
        self.regions
            .first()
            .and_then(|r| r.map.split('+').next()?.rsplit(',').next()?.split(':').next())
            .unwrap_or("4K")
    }

    /// The frames a region other than the linear map uses, as (range,
    /// region): each `layout` row's `pa=`, then each `ptdump` run of a
    /// region `layout` gives no `pa=` for (the kernel stack), lowest first.
    pub fn frames_in_use(&self) -> Vec<(Span, String)> {
        let linear = |va: u64| {
            self.regions
                .iter()
                .any(|r| r.name == "linear" && r.va.0 <= va && va < r.va.1)
        };
        let mut used: Vec<(Span, String)> = Vec::new();
        let overlaps = |used: &[(Span, String)], (s, e): Span| used.iter().any(|((a, b), _)| *a < e && s < *b);
        for r in self.regions.iter().filter(|r| r.name != "linear" && !r.is_device()) {
            if let Some(pa) = r.pa
                && !overlaps(&used, pa)
            {
                used.push((pa, r.name.clone()));
            }
        }
        for run in self.runs.iter().filter(|r| r.attr == "normal" && !linear(r.va.0)) {
            let owner = self
                .boxes()
                .into_iter()
                .find(|r| r.va.0 <= run.va.0 && run.va.0 < r.va.1);
            if let Some(owner) = owner
                && !overlaps(&used, run.pa)
            {
                used.push((run.pa, owner.name.clone()));
            }
        }
        used.sort();
        used
    }

    /// Physical memory as pieces, lowest first: RAM cut by the reservations
    /// and the frames regions use (the rest `free`), and each device range
    /// a `ptdump` run maps.
    pub fn pieces(&self) -> Vec<Piece> {
        let used = self.frames_in_use();
        let mut pieces: Vec<Piece> = Vec::new();
        for &(start, end) in &self.ram {
            let mut cuts = vec![start, end];
            for &((s, e), _) in self.reserved.iter().chain(&used) {
                cuts.extend([s, e].into_iter().filter(|&a| start < a && a < end));
            }
            cuts.sort_unstable();
            cuts.dedup();
            for pair in cuts.windows(2) {
                let pa = (pair[0], pair[1]);
                let within = |list: &[(Span, String)]| {
                    list.iter()
                        .find(|((s, e), _)| *s <= pa.0 && pa.1 <= *e)
                        .map(|(_, name)| name.clone())
                };
                let piece = match (within(&used), within(&self.reserved)) {
                    (Some(region), Some(reserved)) if region == reserved => Piece {
                        pa,
                        what: reserved,
                        name: region.clone(),
                        region: Some(region),
                    },
                    (Some(region), Some(reserved)) => Piece {
                        pa,
                        what: format!("{reserved}: {region}"),
                        name: region.clone(),
                        region: Some(region),
                    },
                    (Some(region), _) => Piece {
                        pa,
                        what: format!("in use: {region}"),
                        name: region.clone(),
                        region: Some(region),
                    },
                    (None, Some(reserved)) => Piece {
                        pa,
                        what: reserved.clone(),
                        name: reserved,
                        region: None,
                    },
                    (None, None) => Piece {
                        pa,
                        what: "free RAM".into(),
                        name: "free".into(),
                        region: None,
                    },
                };
                match pieces.last_mut() {
                    Some(last) if last.pa.1 == pa.0 && last.what == piece.what => last.pa.1 = pa.1,
                    _ => pieces.push(piece),
                }
            }
        }
        for run in self.runs.iter().filter(|r| r.attr == "device") {
            if !pieces.iter().any(|p| p.pa.0 <= run.pa.0 && run.pa.1 <= p.pa.1) {
                pieces.push(Piece {
                    pa: run.pa,
                    name: "device".into(),
                    what: "device registers".into(),
                    region: None,
                });
            }
        }
        pieces.sort_by_key(|p| p.pa);
        pieces
    }
}

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x")?.replace('_', "").as_str(), 16).ok()
}

fn span(word: &str) -> Option<Span> {
    let (a, b) = word.split_once('-')?;
    let (start, end) = (hex(a)?, hex(b)?);
    // A range that ends before it starts is no range: the line is not read.
    (start <= end).then_some((start, end))
}

/// The value of `key=` among `words`.
fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The commands whose answers a map is drawn from.
pub const DRAWN_FROM: [&str; 5] = ["layout", "ptdump", "mem", "kaslr", "lsmod -v"];

impl Model {
    /// Which of [`DRAWN_FROM`] the transcript did not answer, said as an
    /// error: a saved transcript (`--from`) may lack some, and a map drawn
    /// without them would show an empty column or a KASLR it never saw.
    pub fn missing_answers(&self) -> Option<String> {
        let answered = [
            !self.regions.is_empty(),
            !self.runs.is_empty(),
            !self.ram.is_empty(),
            !self.kaslr.source.is_empty(),
            // Needed only for the veneers of the modules `layout` shows.
            !self.modules.is_empty() || !self.regions.iter().any(|r| r.module().is_some()),
        ];
        let missing: Vec<String> = DRAWN_FROM
            .iter()
            .zip(answered)
            .filter(|&(_, answered)| !answered)
            .map(|(command, _)| format!("`{command}`"))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "the transcript has no answer to {}: a map is drawn from {} (type them in the session you save, or let `splitmap map` boot)",
                missing.join(", "),
                DRAWN_FROM.join(", ")
            )
        })
    }
}

impl Model {
    /// Forgets an earlier answer to `command` as it is typed again: the map
    /// is drawn from the last answer to each command (a `layout` the user
    /// typed before the map's own is not the map's regions twice).
    fn forget_answer_to(&mut self, command: &str) {
        match command.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["layout"] => self.regions.clear(),
            ["ptdump"] => self.runs.clear(),
            ["mem"] => {
                self.ram.clear();
                self.reserved.clear();
            }
            ["lsmod", "-v"] => self.modules.clear(),
            _ => {}
        }
    }
}

/// Reads a transcript of `layout`, `ptdump`, `mem`, `kaslr`, `lsmod -v`
/// and `walk` answers (any order, other lines ignored). A command typed
/// more than once (after a `splitmap> ` prompt) counts by its last answer.
///
/// # Errors
/// If it has no `layout` rows: there is nothing to draw.
pub fn parse(transcript: &str) -> Result<Model, String> {
    let mut model = Model::default();
    let mut walking: Option<u64> = None;
    for line in transcript.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(command) = line.strip_prefix("splitmap> ") {
            model.forget_answer_to(command.trim());
            walking = command.strip_prefix("walk ").and_then(|va| hex(va.trim()));
            if let Some(va) = walking {
                // A later walk of the same address replaces an earlier one.
                model.walks.insert(va, Vec::new());
            }
            continue;
        }
        if let Some(va) = walking {
            model.walks.entry(va).or_default().push(line.to_string());
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = words.first() else { continue };
        if let (Some(va), Some(prot), Some(map)) = (
            field(&words, "va").and_then(span),
            field(&words, "prot"),
            field(&words, "map"),
        ) {
            model.regions.push(Region {
                name: first.to_string(),
                va,
                pa: field(&words, "pa").and_then(span),
                prot: prot.to_string(),
                map: map.to_string(),
            });
        } else if let (Some(va), Some(pa), Some(blk), Some(n), Some(attr), Some(ap), Some(x)) = (
            span(first),
            field(&words, "pa").and_then(span),
            field(&words, "blk"),
            field(&words, "n").and_then(|n| n.parse().ok()),
            field(&words, "attr"),
            field(&words, "ap"),
            field(&words, "x"),
        ) {
            model.runs.push(Run {
                va,
                pa,
                blk: blk.to_string(),
                n,
                attr: attr.to_string(),
                ap: ap.to_string(),
                exec: x == "kernel",
            });
        } else if first == "ram" {
            model.ram.extend(field(&words, "pa").and_then(span));
        } else if first == "reserved"
            && let (Some(pa), Some(name)) = (field(&words, "pa").and_then(span), words.get(2))
        {
            model.reserved.push((pa, name.to_string()));
        } else if let Some(source) = field(&words, "source") {
            model.kaslr.source = source.to_string();
            model.kaslr.seed = field(&words, "seed").and_then(hex);
            model.kaslr.offset = field(&words, "offset").and_then(hex).unwrap_or(0);
        } else if let Some(window) = field(&words, "window").and_then(span) {
            let entropy = line.split_once("entropy=").map_or("", |(_, e)| e);
            model.kaslr.window = Some((window, entropy.to_string()));
        } else if let (Some(base), Some(_)) = (field(&words, "base").and_then(hex), field(&words, "plt")) {
            model.modules.push(Module {
                name: first.to_string(),
                base,
                veneers: Vec::new(),
            });
        } else if first == "veneer"
            && let (Some(at), Some(module)) = (words.get(1).and_then(|w| hex(w)), model.modules.last_mut())
        {
            module.veneers.push(at);
        } else if first == "modules" && words.get(1).is_some_and(|w| w.starts_with("direct=0x")) {
            model.kaslr.direct = field(&words, "direct").and_then(span);
            model.kaslr.plt = field(&words, "plt").and_then(span);
        }
    }
    if model.regions.is_empty() {
        return Err("the transcript has no `layout` rows: nothing to draw".into());
    }
    Ok(model)
}

const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];

/// Exactly: `676 KiB`, `1 GiB`; when no unit gives a short whole number,
/// about that many of the largest unit, and the exact bytes in hex.
pub fn size(bytes: u64) -> String {
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) && bytes / unit < 10_000 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{}, {bytes:#x} bytes", about(bytes))
}

/// [`size`] when it is short (`288 KiB`), else [`about`] (`≈ 125.3 MiB`):
/// for a label that also gives the exact range.
pub fn short_size(bytes: u64) -> String {
    let exact = size(bytes);
    if exact.contains(',') { about(bytes) } else { exact }
}

/// About how big: `≈ 125.3 MiB`.
pub fn about(bytes: u64) -> String {
    match UNITS.iter().find(|(unit, _)| bytes >= *unit) {
        Some((unit, name)) => format!("≈ {:.1} {name}", bytes as f64 / *unit as f64),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real session: `--kaslr-seed 0x2a --append module.region=far`, then
    /// `insmod hello`, `layout`, `ptdump`, `mem`, `kaslr`, `lsmod -v`, `walk`
    /// (excerpts).
    pub const SESSION: &str = "\
splitmap> layout
text     va=0xffffa00061400000-0xffffa0006143c000 pa=0x40200000-0x4023c000 prot=r-x map=1G:0,2M:0,4K:60
rodata   va=0xffffa0006143c000-0xffffa00061450000 pa=0x4023c000-0x40250000 prot=r-- map=1G:0,2M:0,4K:20
data     va=0xffffa00061450000-0xffffa00061451000 pa=0x40250000-0x40251000 prot=rw- map=1G:0,2M:0,4K:1
linear   va=0xffff000000000000-0xffff000040000000 pa=0x40000000-0x80000000 prot=rw- map=1G:1,2M:0,4K:0
modules  va=0xffffa00010114000-0xffffa00090114000 prot=r-x map=1G:0,2M:0,4K:2
hello:text va=0xffffa00010114000-0xffffa00010115000 pa=0x402b6000-0x402b7000 prot=r-x map=1G:0,2M:0,4K:1
guard    va=0xffffffffff000000-0xffffffffff010000 prot=--- map=1G:0,2M:0,4K:0
stack    va=0xffffffffff010000-0xffffffffff020000 prot=rw- map=1G:0,2M:0,4K:16
mmio     va=0xfffffffff0000000-0xfffffffff0001000 pa=0x9000000-0x9001000 prot=rw- map=1G:0,2M:0,4K:1
# linear map: 1 table pages (minimum for this RAM: 1)
splitmap> ptdump
0xffff000000000000-0xffff000040000000 1G pa=0x40000000-0x80000000 blk=1G n=1 attr=normal ap=rw x=never ng=0 cont=0
0xffffa00061400000-0xffffa0006143c000 240K pa=0x40200000-0x4023c000 blk=4K n=60 attr=normal ap=ro x=kernel ng=0 cont=0
0xfffffffff0000000-0xfffffffff0001000 4K pa=0x9000000-0x9001000 blk=4K n=1 attr=device ap=rw x=never ng=0 cont=0
0xffffffffff010000-0xffffffffff020000 64K pa=0x48010000-0x48020000 blk=4K n=16 attr=normal ap=rw x=never ng=0 cont=0
splitmap> mem
ram      pa=0x40000000-0x80000000 size=1024 MiB
reserved pa=0x40200000-0x402a9000 image
reserved pa=0x48200000-0x48300000 dtb
reserved pa=0x48000000-0x4800bf44 initrd
reserved pa=0x7fc00000-0x80000000 heap
free     frames=260665 (1018 MiB) below-image=512 (2 MiB at boot)
splitmap> kaslr
source=bootarg seed=0x2a offset=0x1fffe1400000 text=0xffffa00061400000
window=0xffffa0005c000000-0xffffe00014000000 align=2M slots=33553856 entropy=25.0 bits
image=0xa9000 bytes relocations=589
modules direct=0xffffa0005e513000-0xffffa00066513000 plt=0xffffa00010114000-0xffffa00090114000
splitmap> lsmod -v
hello base=0xffffa00010114000 size=0x1000 plt=3 slots=5 direct=0 distance=0x4ff96000
  holds pages=1 frames=0x402b6000-0x402b7000 heap-blocks=0 heap-bytes=0
  section .text.init_module va=0xffffa00010114048-0xffffa00010114090 prot=r-x
  veneer 0xffffa00010114090 -> 0xffffa00061405658 splitmap_log+0x0 words=0xf027fcd0,0x91196210,0xd61f0200
  veneer 0xffffa0001011409c -> 0xffffa00061405b84 splitmap_unregister_command+0x0 words=0xf027fcd0,0x912e1210,0xd61f0200
  veneer 0xffffa000101140a8 -> 0xffffa000614057dc splitmap_register_command_usage+0x0 words=0xf027fcd0,0x911f7210,0xd61f0200
splitmap> walk 0xffffa00061400000
L0 table=0x40293000 [320] = 0x0000000040294003 table
=> pa=0x40200000 level=3 size=4K prot=r-x
splitmap> poweroff
";

    /// `map --cmd layout` (and `--from` a session that typed them twice):
    /// the user's answers come before the map's own, and each command
    /// counts once, by its last answer.
    #[test]
    fn a_command_typed_twice_counts_by_its_last_answer() {
        let once = parse(SESSION).unwrap();
        let body = SESSION.trim_end_matches("splitmap> poweroff\n");
        let twice = parse(&format!("{body}{SESSION}")).unwrap();
        assert_eq!(twice, once);
        // The last answer, not the first: an earlier `layout` of other rows
        // (another boot's, say) is not drawn.
        let earlier = "splitmap> layout\nold va=0x1000-0x2000 prot=r-- map=1G:0,2M:0,4K:1\n";
        let m = parse(&format!("{earlier}{SESSION}")).unwrap();
        assert_eq!(m.regions, once.regions);
        // Without prompts (rows pasted alone) every row is read.
        let rows: String = SESSION.lines().skip(1).take(9).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&format!("{rows}{rows}")).unwrap().regions.len(), 18);
    }

    #[test]
    fn a_session_reads_into_regions_runs_memory_and_kaslr() {
        let m = parse(SESSION).unwrap();
        assert_eq!(m.regions.len(), 9);
        assert_eq!(m.regions[5].name, "hello:text");
        assert_eq!(m.regions[6].pa, None, "the guard maps nothing");
        assert_eq!(m.runs.len(), 4);
        assert_eq!(m.runs[1].label(), "4K×60 ro x");
        assert_eq!(m.runs[2].label(), "4K×1 rw device");
        assert_eq!((m.runs[0].prot(), m.runs[1].prot()), ("rw-", "r-x"));
        assert_eq!(m.ram, [(0x4000_0000, 0x8000_0000)]);
        assert_eq!(m.reserved[2], ((0x4800_0000, 0x4800_bf44), "initrd".into()));
        assert_eq!(m.kaslr.seed, Some(0x2a));
        assert_eq!(m.kaslr.offset, 0x1fffe1400000);
        assert_eq!(m.kaslr.window.as_ref().unwrap().1, "25.0 bits");
        assert_eq!(m.kaslr.plt, Some((0xffffa00010114000, 0xffffa00090114000)));
        assert_eq!(m.walks[&0xffffa00061400000].len(), 2);
        assert_eq!(m.modules.len(), 1);
        assert_eq!(m.modules[0].base, 0xffffa00010114000);
        assert_eq!(m.modules[0].veneers[2], 0xffffa000101140a8);
        assert_eq!(m.page_size(), "4K");
        assert!(parse("splitmap> mem\n").is_err());
        assert_eq!(m.missing_answers(), None);
        // A transcript with `layout` alone names the three it lacks.
        let layout_only: String = SESSION
            .lines()
            .take_while(|l| *l != "splitmap> ptdump")
            .map(|l| format!("{l}\n"))
            .collect();
        let missing = parse(&layout_only).unwrap().missing_answers().unwrap();
        assert!(
            missing.contains("no answer to `ptdump`, `mem`, `kaslr`, `lsmod -v`:"),
            "{missing}"
        );
        // Without a module, `lsmod -v` has nothing to say: none is missing.
        let no_module: String = SESSION
            .lines()
            .filter(|l| !l.starts_with("hello") && !l.starts_with("  veneer"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&no_module).unwrap().missing_answers(), None);
        // A range that ends before it starts is not read as one.
        let row = SESSION.lines().find(|l| l.contains(" va=0x")).unwrap();
        let range = row.split_whitespace().find_map(|w| w.strip_prefix("va=")).unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let reversed = SESSION.replace(range, &format!("{end}-{start}"));
        assert_eq!(parse(&reversed).unwrap().regions.len(), 8, "{reversed}");
    }

    #[test]
    fn physical_memory_is_cut_into_reserved_used_free_and_device_pieces() {
        let m = parse(SESSION).unwrap();
        let pieces = m.pieces();
        let pieces: Vec<(Span, &str)> = pieces.iter().map(|p| (p.pa, p.what.as_str())).collect();
        assert_eq!(
            pieces,
            [
                ((0x900_0000, 0x900_1000), "device registers"),
                ((0x4000_0000, 0x4020_0000), "free RAM"),
                ((0x4020_0000, 0x4023_c000), "image: text"),
                ((0x4023_c000, 0x4025_0000), "image: rodata"),
                ((0x4025_0000, 0x4025_1000), "image: data"),
                ((0x4025_1000, 0x402a_9000), "image"),
                ((0x402a_9000, 0x402b_6000), "free RAM"),
                // A module's pages and the kernel stack's frames are in use,
                // not free RAM.
                ((0x402b_6000, 0x402b_7000), "in use: hello:text"),
                ((0x402b_7000, 0x4800_0000), "free RAM"),
                ((0x4800_0000, 0x4800_bf44), "initrd"),
                ((0x4800_bf44, 0x4801_0000), "free RAM"),
                ((0x4801_0000, 0x4802_0000), "in use: stack"),
                ((0x4802_0000, 0x4820_0000), "free RAM"),
                ((0x4820_0000, 0x4830_0000), "dtb"),
                ((0x4830_0000, 0x7fc0_0000), "free RAM"),
                ((0x7fc0_0000, 0x8000_0000), "heap"),
            ]
        );
        let names: Vec<&str> = m.boxes().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linear",
                "hello:text",
                "text",
                "rodata",
                "data",
                "mmio",
                "guard",
                "stack"
            ],
            "lowest first, the modules window left out"
        );
    }

    #[test]
    fn sizes_are_exact() {
        assert_eq!(size(0xa9000), "676 KiB");
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(0x8000_0000_0000), "128 TiB");
        assert_eq!(size(0xbf44), "≈ 47.8 KiB, 0xbf44 bytes");
        assert_eq!(size(0x7d57000), "≈ 125.3 MiB, 0x7d57000 bytes");
        assert_eq!(about(0x9c40_0000_0000), "≈ 156.2 TiB");
    }
}
