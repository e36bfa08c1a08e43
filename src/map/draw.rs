//! The map as SVG: the kernel's virtual address space on the left, physical
//! memory on the right, a band for every `ptdump` run between them.
//!
//! The two spaces differ by a factor of 10^6 and more, so neither is drawn
//! to scale: a box's height grows with the logarithm of its size, and the
//! space between two boxes is cut out and drawn as a break (≈) labelled
//! with its size. A window's edge or a marked address inside such a space
//! splits it, so that a window's bar runs exactly as far as the window.
//! Every box says its exact range and size.

use std::fmt::Write;

use pi::layout::{KIMAGE_VADDR, PAGE_OFFSET};

use super::{Model, Piece, Region, Span, VENEER_BYTES, about, short_size};

/// Every text's size, px, but the title's.
pub const FONT: f64 = 13.0;
/// How wide the README shows a drawing, px (GitHub's page width): the
/// drawing is as narrow as [`FONT`] stays ≥ 10 px scaled to it.
pub const README_WIDTH: f64 = 880.0;
/// A character's advance at [`FONT`]: DejaVu Sans Mono's is 0.602 em; a
/// little more for other monospace faces.
const CHAR: f64 = FONT * 0.62;
const LINE: f64 = 15.0;
const MARGIN: f64 = 16.0;
const TOP: f64 = 100.0;
const BOX_W: f64 = 120.0;
/// The bands' curved part, between the notes and the physical column.
const BAND_ZONE: f64 = 120.0;
/// The notes beside the window bars are at most this many characters wide.
const NOTE_CHARS: usize = 20;

/// One stretch of a column: a box, or a gap between boxes.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    span: Span,
    y: f64,
    height: f64,
}

/// A column laid out: boxes lowest address first, top to bottom.
struct Column {
    stretches: Vec<Stretch>,
    /// Index in `stretches` of each box, in the order given.
    boxes: Vec<usize>,
}

/// A box's height: 48 px (three lines of label) for a page, 5 px more each
/// time the size doubles.
fn height(bytes: u64) -> f64 {
    let pages = (bytes.max(1) as f64 / 4096.0).max(1.0);
    (48.0 + 5.0 * pages.log2()).min(150.0)
}

/// A gap's height: 16 px, 1 px more each time the size doubles past a page,
/// so that a 64 TiB gap looks bigger than a 3 MiB one, but not to scale.
fn gap_height(bytes: u64) -> f64 {
    let pages = (bytes.max(1) as f64 / 4096.0).max(1.0);
    (16.0 + pages.log2()).min(60.0)
}

/// Gaps covering `from..to`, one more at each cut inside it.
fn push_gaps(stretches: &mut Vec<Stretch>, y: &mut f64, (from, to): Span, cuts: &[u64]) {
    let mut at = from;
    for cut in cuts.iter().copied().filter(|&c| from < c && c < to).chain([to]) {
        if cut > at {
            let height = gap_height(cut - at);
            stretches.push(Stretch {
                span: (at, cut),
                y: *y,
                height,
            });
            *y += height;
            at = cut;
        }
    }
}

impl Column {
    /// Lays out `spans` (sorted, not overlapping) from `TOP` down, the space
    /// between them (and out to the furthest of `cuts`) drawn as gaps split
    /// at `cuts`, so that each cut is drawn at a gap's edge.
    fn new(spans: &[Span], cuts: &[u64]) -> Column {
        let (mut stretches, mut boxes) = (Vec::new(), Vec::new());
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Column { stretches, boxes };
        };
        let mut cuts = cuts.to_vec();
        cuts.sort_unstable();
        cuts.dedup();
        let lo = cuts.first().map_or(first.0, |&c| c.min(first.0));
        let hi = cuts.last().map_or(last.1, |&c| c.max(last.1));
        let (mut y, mut at) = (TOP, lo);
        for &span in spans {
            push_gaps(&mut stretches, &mut y, (at, span.0), &cuts);
            boxes.push(stretches.len());
            let h = height(span.1 - span.0);
            stretches.push(Stretch { span, y, height: h });
            y += h;
            at = span.1;
        }
        push_gaps(&mut stretches, &mut y, (at, hi), &cuts);
        Column { stretches, boxes }
    }

    fn bottom(&self) -> f64 {
        self.stretches.last().map_or(TOP, |s| s.y + s.height)
    }

    /// Where `addr` is drawn: linear inside its stretch; above the first or
    /// below the last stretch, at the edge.
    fn y(&self, addr: u64) -> f64 {
        let Some(first) = self.stretches.first() else {
            return TOP;
        };
        if addr <= first.span.0 {
            return first.y;
        }
        for s in &self.stretches {
            if addr <= s.span.1 {
                let fraction = (addr - s.span.0) as f64 / (s.span.1 - s.span.0).max(1) as f64;
                return s.y + s.height * fraction;
            }
        }
        self.bottom()
    }

    /// The gaps.
    fn gaps(&self) -> impl Iterator<Item = &Stretch> {
        self.stretches
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.boxes.contains(i))
            .map(|(_, s)| s)
    }
}

/// Where things go across the drawing, from the widest labels.
struct Layout {
    /// The virtual column's boxes.
    va: (f64, f64),
    /// The first window bar.
    bars: f64,
    /// The notes beside the bars (windows, marked addresses, veneers).
    notes: f64,
    /// The physical column's boxes.
    pa: (f64, f64),
    width: f64,
}

impl Layout {
    fn new(va_chars: usize, bars: usize, pa_chars: usize) -> Layout {
        let va0 = MARGIN + CHAR * va_chars as f64 + 10.0;
        let va = (va0, va0 + BOX_W);
        let bars_x = va.1 + 6.0;
        let notes = bars_x + 8.0 * bars as f64 + 10.0;
        let pa0 = notes + CHAR * NOTE_CHARS as f64 + BAND_ZONE;
        let pa = (pa0, pa0 + BOX_W);
        Layout {
            va,
            bars: bars_x,
            notes,
            pa,
            width: (pa.1 + 10.0 + CHAR * pa_chars as f64 + MARGIN).ceil(),
        }
    }

    /// Where a band leaves its straight part for its curve.
    fn band_x(&self) -> f64 {
        self.notes + CHAR * NOTE_CHARS as f64
    }
}

/// Fill colour by what a mapping allows.
fn colour(prot: &str, device: bool) -> &'static str {
    match (device, prot) {
        (true, _) => "#f0ad4e",
        (_, p) if p.contains('x') => "#d9534f",
        (_, p) if p.starts_with("r-") => "#5cb85c",
        (_, "---") => "#bbbbbb",
        _ => "#2e6da4",
    }
}

/// Relative luminance of `#rrggbb` (WCAG 2).
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

/// WCAG contrast ratio of two `#rrggbb` colours, 1 to 21.
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Black or white, whichever reads better on `fill`.
fn text_on(fill: &str) -> &'static str {
    if contrast(fill, "#000000") >= contrast(fill, "#ffffff") {
        "#000000"
    } else {
        "#ffffff"
    }
}

/// Text for SVG: `&`, `<`, `>` and `"` escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `0x…-0x…`.
fn range(span: Span) -> String {
    format!("{:#x}-{:#x}", span.0, span.1)
}

/// Lines of text with their top at `y`, the first in bold, and under them
/// a transparent box as big as the text, so pointing anywhere at the label
/// (not only at its strokes) is pointing at what holds it.
fn lines(out: &mut String, x: f64, y: f64, anchor: &str, lines: &[String]) {
    let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let w = CHAR * chars as f64;
    let left = if anchor == "end" { x - w } else { x };
    let _ = write!(
        out,
        r##"<rect class="hit" x="{left:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="#ffffff" fill-opacity="0"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">"##,
        LINE * lines.len() as f64 + 2.0,
        y + 12.0
    );
    for (i, line) in lines.iter().enumerate() {
        let (bold, dy) = if i == 0 {
            (r#" font-weight="bold""#, 0.0)
        } else {
            ("", LINE)
        };
        let _ = write!(out, r#"<tspan x="{x:.1}" dy="{dy}"{bold}>{}</tspan>"#, escape(line));
    }
    out.push_str("</text>\n");
}

/// A region's label: name, permissions and size; range; descriptors.
fn region_label(r: &Region) -> Vec<String> {
    vec![
        format!("{} {} {}", r.name, r.prot, short_size(r.va.1 - r.va.0)),
        range(r.va),
        format!("map={}", r.map),
    ]
}

/// A piece's label: what it is and its size; range.
fn piece_label(p: &Piece) -> Vec<String> {
    vec![format!("{} {}", p.what, short_size(p.pa.1 - p.pa.0)), range(p.pa)]
}

/// A window KASLR or module loading chooses from.
struct Window {
    name: &'static str,
    /// What the legend says of it.
    about: String,
    span: Span,
    fill: &'static str,
}

/// The windows KASLR and module loading choose from.
fn windows(model: &Model) -> Vec<Window> {
    let mut windows = Vec::new();
    if let Some((span, entropy)) = &model.kaslr.window {
        windows.push(Window {
            name: "KASLR window",
            about: format!(
                "KASLR window: where the image's text may land ({entropy}); offset {:#x}",
                model.kaslr.offset
            ),
            span: *span,
            fill: "#9b59b6",
        });
    }
    if let Some(span) = model.kaslr.plt {
        windows.push(Window {
            name: "module PLT window",
            about: "module PLT window: modules anywhere here reach the kernel through veneers".into(),
            span,
            fill: "#16a085",
        });
    }
    if let Some(span) = model.kaslr.direct {
        windows.push(Window {
            name: "module direct window",
            about: "module direct window: modules here reach the kernel with plain branches".into(),
            span,
            fill: "#e67e22",
        });
    }
    windows
}

/// A labelled thing beside the virtual column: a window's bar, a marked
/// address, a module's veneers. Its note goes as near `y` as the notes
/// above it leave room for, with a line from `from` to it.
struct Note {
    y: f64,
    from: f64,
    lines: Vec<String>,
    /// The group's attributes: what it is, for the HTML page.
    attrs: String,
    /// What it draws besides its note.
    svg: String,
}

/// The width an SVG drawing declares (its first `width="…"`), as a viewer
/// scales it.
pub fn width_of(svg: &str) -> Option<f64> {
    svg.split("width=\"").nth(1)?.split('"').next()?.parse().ok()
}

/// The map of `model` as a self-contained SVG document. Each region's box
/// is a `<g data-region="NAME">`, which the HTML page makes clickable; a
/// band, a piece of physical memory, a window and a note each a
/// `<g data-info="…">`, which it shows when pointed at.
pub fn svg(model: &Model, title: &str) -> String {
    let boxes = model.boxes();
    let windows = windows(model);
    let mut cuts: Vec<u64> = windows.iter().flat_map(|w| [w.span.0, w.span.1]).collect();
    cuts.extend([PAGE_OFFSET, KIMAGE_VADDR]);
    let va = Column::new(&boxes.iter().map(|r| r.va).collect::<Vec<_>>(), &cuts);
    let pieces = model.pieces();
    let pa = Column::new(&pieces.iter().map(|p| p.pa).collect::<Vec<_>>(), &[]);
    let widest = |labels: Vec<Vec<String>>| labels.iter().flatten().map(|l| l.chars().count()).max().unwrap_or(0);
    let at = Layout::new(
        widest(boxes.iter().map(|r| region_label(r)).collect()),
        windows.len(),
        widest(pieces.iter().map(piece_label).collect()),
    );
    let legend_y = va.bottom().max(pa.bottom()) + 40.0;
    let (legend, legend_end) = legend(&at, legend_y, &windows);
    let height = legend_end + 10.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{height:.0}" viewBox="0 0 {w:.0} {height:.0}" font-family="monospace" font-size="{FONT}">"#,
        w = at.width
    );
    let _ = writeln!(
        out,
        r#"<rect width="{:.0}" height="{height:.0}" fill="white"/>"#,
        at.width
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="30" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for ((x0, x1), head) in [
        (at.va, "kernel virtual addresses (TTBR1)"),
        (at.pa, "physical addresses"),
    ] {
        let _ = writeln!(
            out,
            r##"<text x="{mid:.1}" y="62" text-anchor="middle" font-weight="bold">{head}</text><text x="{mid:.1}" y="80" text-anchor="middle" fill="#555555">addresses grow downward ↓</text>"##,
            mid = (x0 + x1) / 2.0
        );
    }
    // Bands first, under the boxes.
    bands(&mut out, model, &at, &va, &pa);
    region_boxes(&mut out, &boxes, &at, &va);
    gaps(&mut out, &va, at.va.0);
    let mut notes = window_notes(&windows, &at, &va);
    notes.extend(mark_notes(model, &at, &va));
    notes.extend(veneer_notes(model, &at, &va));
    draw_notes(&mut out, notes, &at);
    piece_boxes(&mut out, model, &pieces, &at, &pa);
    gaps(&mut out, &pa, at.pa.0);
    out.push_str(&legend);
    out.push_str("</svg>\n");
    out
}

/// A band per `ptdump` run, from its virtual range to its physical one.
fn bands(out: &mut String, model: &Model, at: &Layout, va: &Column, pa: &Column) {
    let (x0, x1, mid) = (at.va.1, at.band_x(), (at.band_x() + at.pa.0) / 2.0);
    for run in &model.runs {
        let (a0, a1) = (va.y(run.va.0), va.y(run.va.1).max(va.y(run.va.0) + 1.0));
        let (b0, b1) = (pa.y(run.pa.0), pa.y(run.pa.1).max(pa.y(run.pa.0) + 1.0));
        let fill = colour(run.prot(), run.attr == "device");
        let owner = model
            .boxes()
            .into_iter()
            .find(|r| r.va.0 <= run.va.0 && run.va.0 < r.va.1)
            .map_or(String::new(), |r| format!(" ({})", r.name));
        let info = format!(
            "mapping{owner}: va {} → pa {}: {}",
            range(run.va),
            range(run.pa),
            run.label()
        );
        let _ = writeln!(
            out,
            r#"<g data-info="{}"><path d="M{x0} {a0:.1} H{x1:.1} C{mid:.1} {a0:.1} {mid:.1} {b0:.1} {} {b0:.1} V{b1:.1} C{mid:.1} {b1:.1} {mid:.1} {a1:.1} {x1:.1} {a1:.1} H{x0} Z" fill="{fill}" fill-opacity="0.25" stroke="{fill}" stroke-opacity="0.6"><title>{}</title></path>"#,
            escape(&info),
            at.pa.0,
            escape(&info),
        );
        // Labelled where it leaves the notes, if there is room.
        if a1 - a0 >= 14.0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x1 + 4.0,
                (a0 + a1) / 2.0 + 4.0,
                escape(&run.label())
            );
        }
        out.push_str("</g>\n");
    }
}

/// The virtual column: a box per region.
fn region_boxes(out: &mut String, boxes: &[&Region], at: &Layout, va: &Column) {
    for (region, &i) in boxes.iter().zip(&va.boxes) {
        let s = va.stretches[i];
        let fill = colour(&region.prot, region.is_device());
        let _ = writeln!(
            out,
            r#"<g data-region="{}"><rect x="{}" y="{:.1}" width="{BOX_W}" height="{:.1}" fill="{fill}" stroke="black"/>"#,
            escape(&region.name),
            at.va.0,
            s.y,
            s.height,
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}" font-weight="bold">{}</text>"#,
            (at.va.0 + at.va.1) / 2.0,
            s.y + s.height / 2.0 + 4.0,
            text_on(fill),
            escape(&region.name)
        );
        lines(out, at.va.0 - 10.0, s.y, "end", &region_label(region));
        out.push_str("</g>\n");
    }
}

/// Each window as a bar beside the virtual column, from its first address
/// to its end, with a note naming it and giving its range.
fn window_notes(windows: &[Window], at: &Layout, va: &Column) -> Vec<Note> {
    let mut notes = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let x = at.bars + 8.0 * i as f64;
        let (y0, y1) = (va.y(w.span.0), va.y(w.span.1));
        let size = short_size(w.span.1 - w.span.0);
        let title = format!("{}: {} ({size})", w.name, range(w.span));
        notes.push(Note {
            y: y0,
            from: x + 6.0,
            lines: vec![
                w.name.to_string(),
                size,
                format!("{:#x}-", w.span.0),
                format!("{:#x}", w.span.1),
            ],
            attrs: format!(
                r#"data-window="{}" data-info="{}""#,
                w.name,
                escape(&format!("{title}: {}", w.about))
            ),
            svg: format!(
                r#"<rect x="{x}" y="{y0:.1}" width="6" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                (y1 - y0).max(2.0),
                w.fill,
                escape(&title)
            ),
        });
    }
    notes
}

/// `PAGE_OFFSET` and `KIMAGE_VADDR`, as dashed lines across the virtual
/// column: where the linear map and the image are linked to start, so that
/// a map with KASLR shows how far they moved.
fn mark_notes(model: &Model, at: &Layout, va: &Column) -> Vec<Note> {
    let start = |name: &str| model.regions.iter().find(|r| r.name == name).map(|r| r.va.0);
    let moved = |addr: u64, what: &str, region: Option<u64>| match region {
        Some(va) if va == addr => vec![format!("= {what} start")],
        Some(va) => vec![format!("{what} moved by"), format!("{:#x}", va.wrapping_sub(addr))],
        None => vec![],
    };
    [
        ("PAGE_OFFSET", PAGE_OFFSET, moved(PAGE_OFFSET, "linear", start("linear"))),
        ("KIMAGE_VADDR", KIMAGE_VADDR, moved(KIMAGE_VADDR, "text", start("text"))),
    ]
    .into_iter()
    .map(|(name, addr, moved)| {
        let y = va.y(addr);
        let mut lines = vec![name.to_string(), format!("{addr:#x}")];
        lines.extend(moved.clone());
        let what = if name == "PAGE_OFFSET" {
            "the linear map's link-time base"
        } else {
            "the image's link address"
        };
        Note {
            y,
            from: at.va.1,
            attrs: format!(
                r#"data-mark="{name}" data-info="{}""#,
                escape(&format!("{name} = {addr:#x}: {what}; {}", moved.join(" ")))
            ),
            svg: format!(
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="black" stroke-width="2" stroke-dasharray="6 3"/>"#,
                at.va.0 - 6.0,
                at.va.1 + 4.0
            ),
            lines,
        }
    })
    .collect()
}

/// Each module's veneers (`lsmod -v`), marked on its text's box.
fn veneer_notes(model: &Model, at: &Layout, va: &Column) -> Vec<Note> {
    let mut notes = Vec::new();
    for m in &model.modules {
        let (Some(&first), Some(&last)) = (m.veneers.iter().min(), m.veneers.iter().max()) else {
            continue;
        };
        let span = (first, last + VENEER_BYTES);
        let (y0, y1) = (va.y(span.0), va.y(span.1));
        let n = m.veneers.len();
        let what = format!("{}: {n} veneer{}", m.name, if n == 1 { "" } else { "s" });
        notes.push(Note {
            y: y0,
            from: at.va.1,
            lines: vec![what.clone(), format!("{:#x}-", span.0), format!("{:#x}", span.1)],
            attrs: format!(
                r#"data-veneers="{}" data-info="{}""#,
                escape(&m.name),
                escape(&format!(
                    "{what} at {}, {VENEER_BYTES} bytes each: where its calls to the kernel go, out of branch reach",
                    range(span)
                ))
            ),
            svg: format!(
                r#"<rect x="{:.1}" y="{y0:.1}" width="12" height="{:.1}" fill="black"/>"#,
                at.va.1 - 12.0,
                (y1 - y0).max(4.0)
            ),
        });
    }
    notes
}

/// The notes, top to bottom, none over another.
fn draw_notes(out: &mut String, mut notes: Vec<Note>, at: &Layout) {
    notes.sort_by(|a, b| a.y.total_cmp(&b.y));
    let mut free_from = 0.0f64;
    for note in notes {
        let top = (note.y - 6.0).max(free_from);
        free_from = top + LINE * note.lines.len() as f64 + 8.0;
        let _ = write!(
            out,
            r##"<g {}>{}<path d="M{:.1} {:.1} L{:.1} {:.1}" stroke="#555555" fill="none"/>"##,
            note.attrs,
            note.svg,
            note.from,
            note.y,
            at.notes - 3.0,
            top + 8.0
        );
        lines(out, at.notes, top, "start", &note.lines);
        out.push_str("</g>\n");
    }
}

/// The physical column: a box per piece of memory; the frames a region
/// uses in that region's colour.
fn piece_boxes(out: &mut String, model: &Model, pieces: &[Piece], at: &Layout, pa: &Column) {
    for (piece, &i) in pieces.iter().zip(&pa.boxes) {
        let s = pa.stretches[i];
        let region = piece
            .region
            .as_ref()
            .and_then(|name| model.regions.iter().find(|r| &r.name == name));
        let fill = match (piece.name.as_str(), region) {
            (_, Some(r)) => colour(&r.prot, r.is_device()),
            ("free", _) => "#f4f4f4",
            ("device", _) => colour("", true),
            _ => "#d0d8e8",
        };
        let mapped: Vec<String> = model
            .runs
            .iter()
            .filter(|r| r.pa.0 < piece.pa.1 && piece.pa.0 < r.pa.1)
            .map(|r| format!("va {} ({})", range(r.va), r.label()))
            .collect();
        let info = format!(
            "{}: pa {} ({}); mapped at {}",
            piece.what,
            range(piece.pa),
            short_size(piece.pa.1 - piece.pa.0),
            if mapped.is_empty() {
                "no address".to_string()
            } else {
                mapped.join(", ")
            }
        );
        let _ = writeln!(
            out,
            r#"<g data-piece="{}" data-info="{}"><rect x="{}" y="{:.1}" width="{BOX_W}" height="{:.1}" fill="{fill}" stroke="black"/>"#,
            escape(&piece.name),
            escape(&info),
            at.pa.0,
            s.y,
            s.height
        );
        lines(out, at.pa.1 + 10.0, s.y, "start", &piece_label(piece));
        out.push_str("</g>\n");
    }
}

/// Words of `text` in lines of at most `chars` characters.
fn wrap(text: &str, chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= chars => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// The legend under the columns, a line each: the colours, the windows and
/// how to read the drawing; and where it ends.
fn legend(at: &Layout, top: f64, windows: &[Window]) -> (String, f64) {
    let mut entries: Vec<(String, Option<&str>)> = [
        ("executable (r-x)", colour("r-x", false)),
        ("read-only (r--)", colour("r--", false)),
        ("read-write, never executable (rw-)", colour("rw-", false)),
        ("device memory", colour("", true)),
        ("unmapped (guard)", colour("---", false)),
        ("physical: reserved, no region's (initrd, heap)", "#d0d8e8"),
        ("physical: free RAM", "#f4f4f4"),
    ]
    .iter()
    .map(|(text, fill)| (text.to_string(), Some(*fill)))
    .collect();
    entries.push((
        "physical frames in use: in the colour of the region using them (image: text, in use: stack, …)".into(),
        None,
    ));
    entries.extend(windows.iter().map(|w| (w.about.clone(), Some(w.fill))));
    for note in [
        "Addresses grow downward in both columns. Not to scale: a box's height grows with the log of its size; a break (≈) is cut-out space, with its size, split where a window's edge or a marked address falls inside it.",
        "Dashed lines: PAGE_OFFSET (the linear map's base) and KIMAGE_VADDR (the image's link address); a black tick on a module's text: its veneers.",
        "Bands: one per ptdump run, labelled block size × descriptors, access (ro/rw), x if executable.",
    ] {
        entries.push((note.to_string(), None));
    }
    let chars = ((at.width - MARGIN * 2.0 - 20.0) / CHAR) as usize;
    let mut out = String::new();
    let mut y = top;
    for (text, fill) in entries {
        if let Some(fill) = fill {
            let _ = writeln!(
                out,
                r##"<rect x="{MARGIN}" y="{:.1}" width="12" height="11" fill="{fill}" stroke="#888888"/>"##,
                y - 10.0
            );
        }
        for line in wrap(&text, chars) {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{y:.1}">{}</text>"#,
                MARGIN + 20.0,
                escape(&line)
            );
            y += LINE;
        }
    }
    (out, y)
}

/// The breaks between boxes: a zigzag and the size of what was cut out.
fn gaps(out: &mut String, column: &Column, x0: f64) {
    for s in column.gaps() {
        let mid = s.y + s.height / 2.0;
        let _ = writeln!(
            out,
            r##"<path d="M{x0} {:.1} l6 -3 l6 6 l6 -6 l6 6 l6 -3" fill="none" stroke="#888888"/><text x="{:.1}" y="{:.1}" fill="#555555">{}</text>"##,
            mid,
            x0 + 33.0,
            mid + 4.0,
            about(s.span.1 - s.span.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{parse, tests::SESSION};

    /// The virtual column of `model`, as `svg` lays it out, and its boxes.
    fn va_column(model: &Model) -> (Vec<&Region>, Column) {
        let boxes = model.boxes();
        let mut cuts: Vec<u64> = windows(model).iter().flat_map(|w| [w.span.0, w.span.1]).collect();
        cuts.extend([PAGE_OFFSET, KIMAGE_VADDR]);
        let column = Column::new(&boxes.iter().map(|r| r.va).collect::<Vec<_>>(), &cuts);
        (boxes, column)
    }

    /// Where the box of region `name` is drawn, top and bottom.
    fn box_of(boxes: &[&Region], column: &Column, name: &str) -> (f64, f64) {
        let i = boxes.iter().position(|r| r.name == name).unwrap();
        let s = column.stretches[column.boxes[i]];
        (s.y, s.y + s.height)
    }

    /// `<text …>` elements, as (x, anchor, longest line in characters).
    fn texts(svg: &str) -> Vec<(f64, String, usize)> {
        svg.split("<text ")
            .skip(1)
            .map(|t| {
                let attr = |name: &str| {
                    t.split(&format!("{name}=\""))
                        .nth(1)
                        .map(|v| v.split('"').next().unwrap().to_string())
                };
                let body = t.split_once('>').unwrap().1.split("</text>").next().unwrap();
                let longest = body
                    .split("</tspan>")
                    .map(|l| l.rsplit('>').next().unwrap().replace("&amp;", "&").chars().count())
                    .max()
                    .unwrap_or(0);
                let x = attr("x").unwrap().parse().unwrap();
                (x, attr("text-anchor").unwrap_or_else(|| "start".into()), longest)
            })
            .collect()
    }

    #[test]
    fn every_region_and_piece_is_labelled_with_its_exact_range() {
        let model = parse(SESSION).unwrap();
        let picture = svg(&model, "test");
        for r in &model.regions {
            if !r.is_module_window() {
                assert!(picture.contains(&format!("data-region=\"{}\"", r.name)), "{}", r.name);
                assert!(picture.contains(&format!(">{}</tspan>", range(r.va))), "{}", r.name);
            }
        }
        for p in model.pieces() {
            assert!(picture.contains(&format!(">{}</tspan>", range(p.pa))), "{p:?}");
        }
        assert_eq!(
            picture.matches("<title>mapping").count(),
            model.runs.len(),
            "a band per run"
        );
        assert!(picture.contains("KASLR window"));
    }

    #[test]
    fn window_bars_run_as_far_as_their_windows_and_say_their_range() {
        let model = parse(SESSION).unwrap();
        let (boxes, va) = va_column(&model);
        let (text, data) = (box_of(&boxes, &va, "text"), box_of(&boxes, &va, "data"));
        let mmio = box_of(&boxes, &va, "mmio");
        for w in windows(&model) {
            let (y0, y1) = (va.y(w.span.0), va.y(w.span.1));
            // Each edge inside a gap is where one gap ends and the next begins.
            for edge in [w.span.0, w.span.1] {
                let y = va.y(edge);
                assert!(
                    va.stretches.iter().any(|s| s.span.0 == edge && s.y == y),
                    "{}: {edge:#x} starts a stretch",
                    w.name
                );
            }
            assert!(y0 <= text.0 && y1 > data.1 && y1 < mmio.0, "{}: {y0}..{y1}", w.name);
        }
        // The direct window (128 MiB around the image) starts a gap's height
        // above the image, not a pixel.
        let direct = windows(&model)
            .into_iter()
            .find(|w| w.name == "module direct window")
            .unwrap();
        assert!(va.y(direct.span.0) <= text.0 - 16.0);
        // The 64 TiB KASLR window runs past the image, through two gaps.
        let kaslr = &windows(&model)[0];
        assert!(va.y(kaslr.span.1) - data.1 >= 2.0 * 16.0);
        let picture = svg(&model, "t");
        for line in [
            "KASLR window",
            "≈ 64.0 TiB",
            "0xffffa0005c000000-",
            "0xffffe00014000000",
            "module PLT window",
            "2 GiB",
            "module direct window",
            "128 MiB",
        ] {
            assert!(picture.contains(&format!(">{line}</tspan>")), "{line}");
        }
        assert!(picture.contains("<title>KASLR window: 0xffffa0005c000000-0xffffe00014000000 (≈ 64.0 TiB)</title>"));
    }

    #[test]
    fn page_offset_and_kimage_vaddr_are_marked_and_the_move_said() {
        let model = parse(SESSION).unwrap();
        let (boxes, va) = va_column(&model);
        // KIMAGE_VADDR falls in the gap below the linear map: drawn at the
        // edge of a gap of its own, above the image it was moved from.
        assert!(va.stretches.iter().any(|s| s.span.0 == KIMAGE_VADDR));
        assert!(va.y(KIMAGE_VADDR) < box_of(&boxes, &va, "text").0);
        assert_eq!(va.y(PAGE_OFFSET), box_of(&boxes, &va, "linear").0);
        let picture = svg(&model, "t");
        assert!(picture.contains(r#"data-mark="KIMAGE_VADDR""#) && picture.contains(r#"data-mark="PAGE_OFFSET""#));
        for line in [
            "KIMAGE_VADDR",
            "0xffff800080000000",
            "text moved by",
            "0x1fffe1400000",
            "PAGE_OFFSET",
            "0xffff000000000000",
            "= linear start",
        ] {
            assert!(picture.contains(&format!(">{line}</tspan>")), "{line}");
        }
    }

    #[test]
    fn frames_in_use_are_drawn_as_used_and_veneers_shown() {
        let model = parse(SESSION).unwrap();
        let picture = svg(&model, "t");
        for line in [
            "in use: stack 64 KiB",
            "in use: hello:text 4 KiB",
            "image: text 240 KiB",
            "hello: 3 veneers",
            "0xffffa00010114090-",
            "0xffffa000101140b4",
        ] {
            assert!(picture.contains(&format!(">{line}</tspan>")), "{line}");
        }
        assert!(!picture.contains(">free RAM 125"), "no free RAM across the stack");
        assert!(picture.contains(r#"data-veneers="hello""#));
    }

    #[test]
    fn text_is_10_px_or_more_at_the_readmes_width_and_nothing_is_cut() {
        // With rodata=full, the linear map is three rows; the third's label
        // is the widest.
        let full = SESSION.replace(
            "linear   va=0xffff000000000000-0xffff000040000000 pa=0x40000000-0x80000000 prot=rw- map=1G:1,2M:0,4K:0",
            "linear   va=0xffff000000000000-0xffff000000200000 pa=0x40000000-0x40200000 prot=rw- map=1G:0,2M:1,4K:0\n\
             linear   va=0xffff000000200000-0xffff000000260000 pa=0x40200000-0x40260000 prot=r-- map=1G:0,2M:0,4K:96\n\
             linear   va=0xffff000000260000-0xffff000040000000 pa=0x40260000-0x80000000 prot=rw- map=1G:0,2M:510,4K:416+cont:57",
        );
        for session in [SESSION, &full] {
            let picture = svg(
                &parse(session).unwrap(),
                "splitmap, 4K pages: KASLR offset 0x1fffe1400000 (seed 0x2a)",
            );
            let width = width_of(&picture).unwrap();
            let sizes: Vec<f64> = picture
                .split("font-size=\"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().parse().unwrap())
                .collect();
            let smallest = sizes.iter().copied().fold(f64::MAX, f64::min);
            assert!(smallest * README_WIDTH / width >= 10.0, "{smallest} px in {width} px");
            for (x, anchor, chars) in texts(&picture) {
                let w = CHAR * chars as f64;
                let (left, right) = match anchor.as_str() {
                    "end" => (x - w, x),
                    "middle" => (x - w / 2.0, x + w / 2.0),
                    _ => (x, x + w),
                };
                assert!(
                    left >= 0.0 && right <= width,
                    "a text of {chars} at {x} ({anchor}) in {width}"
                );
            }
            assert!(picture.contains("addresses grow downward"));
        }
    }

    #[test]
    fn labels_on_boxes_meet_wcag_aa() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        let picture = svg(&parse(SESSION).unwrap(), "t");
        let mut seen = 0;
        for group in picture.split("<g data-region=").skip(1) {
            let fills: Vec<&str> = group
                .split("fill=\"")
                .skip(1)
                .map(|f| f.split('"').next().unwrap())
                .collect();
            // The box, then the name on it.
            let (fill, text) = (fills[0], fills[1]);
            let ratio = contrast(fill, text);
            assert!(ratio >= 4.5, "{text} on {fill}: {ratio:.2}");
            seen += 1;
        }
        assert!(seen >= 8);
    }

    #[test]
    fn addresses_go_down_the_column_in_order() {
        let column = Column::new(
            &[
                (0x1000, 0x2000),
                (0x10_0000, 0x20_0000),
                (1 << 40, (1 << 40) + (1 << 30)),
            ],
            &[0x8_0000],
        );
        let ys: Vec<f64> = [
            0,
            0x1000,
            0x1800,
            0x2000,
            0x8_0000,
            0x10_0000,
            0x20_0000,
            1 << 40,
            u64::MAX,
        ]
        .iter()
        .map(|&a| column.y(a))
        .collect();
        assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{ys:?}");
        assert_eq!(column.gaps().count(), 3, "the first gap cut in two");
        assert_eq!(height(4096), 48.0);
        assert_eq!(height(8192), 53.0);
        assert!(gap_height(1 << 46) > gap_height(3 << 20));
    }
}
