//! The map as SVG: the kernel's virtual address space on the left, physical
//! memory on the right, a band for every `ptdump` run between them.
//!
//! The two spaces differ by a factor of 10^6 and more, so neither is drawn
//! to scale: a box's height grows with the logarithm of its size, and the
//! space between two boxes is cut out and drawn as a break (≈) labelled
//! with its size. Every box says its exact range and size.

use std::fmt::Write;

use super::{Model, Piece, Region, Span, about, size};

const WIDTH: f64 = 1360.0;
const TOP: f64 = 70.0;
/// The virtual column: boxes, then the window bars right of them.
const VA_X: (f64, f64) = (370.0, 530.0);
/// The physical column.
const PA_X: (f64, f64) = (800.0, 960.0);
const GAP: f64 = 18.0;
const LINE: f64 = 13.0;

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

/// A box's height: 30 px for a page, 5 px more each time the size doubles.
fn height(bytes: u64) -> f64 {
    let pages = (bytes.max(1) as f64 / 4096.0).max(1.0);
    (30.0 + 5.0 * pages.log2()).min(130.0)
}

impl Column {
    /// Lays out `spans` (sorted, not overlapping) from `TOP` down.
    fn new(spans: &[Span]) -> Column {
        let mut stretches = Vec::new();
        let mut boxes = Vec::new();
        let mut y = TOP;
        for (i, &span) in spans.iter().enumerate() {
            if i > 0 && span.0 > spans[i - 1].1 {
                stretches.push(Stretch {
                    span: (spans[i - 1].1, span.0),
                    y,
                    height: GAP,
                });
                y += GAP;
            }
            boxes.push(stretches.len());
            let h = height(span.1 - span.0);
            stretches.push(Stretch { span, y, height: h });
            y += h;
        }
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

    /// The gaps: (stretch, size).
    fn gaps(&self) -> impl Iterator<Item = &Stretch> {
        self.stretches
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.boxes.contains(i))
            .map(|(_, s)| s)
    }
}

/// Fill colour by what a mapping allows.
fn colour(prot: &str, device: bool) -> &'static str {
    match (device, prot) {
        (true, _) => "#f0ad4e",
        (_, p) if p.contains('x') => "#d9534f",
        (_, p) if p.starts_with("r-") => "#5cb85c",
        (_, "---") => "#bbbbbb",
        _ => "#4a7ab0",
    }
}

/// Text for SVG: `&`, `<` and `>` escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A one-box label: name and detail on one line, the exact range and size on the next.
fn label(out: &mut String, x: f64, y: f64, anchor: &str, head: &str, range: Span) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{:.1}" text-anchor="{anchor}"><tspan font-weight="bold">{}</tspan><tspan x="{x}" dy="{LINE}">{:#x}-{:#x} ({})</tspan></text>"#,
        y + 12.0,
        escape(head),
        range.0,
        range.1,
        size(range.1 - range.0)
    );
}

/// The map of `model` as a self-contained SVG document. Each region's box
/// is a `<g data-region="NAME">`, which the HTML page makes clickable.
pub fn svg(model: &Model, title: &str) -> String {
    let boxes = model.boxes();
    let va = Column::new(&boxes.iter().map(|r| r.va).collect::<Vec<_>>());
    let pieces = model.pieces();
    let pa = Column::new(&pieces.iter().map(|p| p.pa).collect::<Vec<_>>());
    let legend_y = va.bottom().max(pa.bottom()) + 40.0;
    let height = legend_y + 120.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{height:.0}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="20" y="24" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="54" text-anchor="middle" font-weight="bold">kernel virtual addresses (TTBR1)</text><text x="{}" y="54" text-anchor="middle" font-weight="bold">physical addresses</text>"#,
        (VA_X.0 + VA_X.1) / 2.0,
        (PA_X.0 + PA_X.1) / 2.0
    );
    // Bands first, under the boxes.
    bands(&mut out, model, &va, &pa);
    region_boxes(&mut out, &boxes, &va);
    gaps(&mut out, &va, VA_X);
    let windows = windows(model);
    window_bars(&mut out, &windows, &va);
    piece_boxes(&mut out, &pieces, &pa);
    gaps(&mut out, &pa, PA_X);
    legend(&mut out, legend_y, &windows);
    out.push_str("</svg>\n");
    out
}

/// A band per `ptdump` run, from its virtual range to its physical one.
fn bands(out: &mut String, model: &Model, va: &Column, pa: &Column) {
    for run in &model.runs {
        let (a0, a1) = (va.y(run.va.0), va.y(run.va.1).max(va.y(run.va.0) + 1.0));
        let (b0, b1) = (pa.y(run.pa.0), pa.y(run.pa.1).max(pa.y(run.pa.0) + 1.0));
        let fill = colour(run.prot(), run.attr == "device");
        let _ = writeln!(
            out,
            r#"<path d="M{} {a0:.1} C{mid} {a0:.1} {mid} {b0:.1} {} {b0:.1} V{b1:.1} C{mid} {b1:.1} {mid} {a1:.1} {} {a1:.1} Z" fill="{fill}" fill-opacity="0.25" stroke="{fill}" stroke-opacity="0.6"><title>{:#x}-{:#x} → {:#x}-{:#x}: {}</title></path>"#,
            VA_X.1 + 30.0,
            PA_X.0,
            VA_X.1 + 30.0,
            run.va.0,
            run.va.1,
            run.pa.0,
            run.pa.1,
            escape(&run.label()),
            mid = (VA_X.1 + 30.0 + PA_X.0) / 2.0,
        );
        // Labelled where it leaves its box, if there is room.
        if a1 - a0 >= 12.0 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                VA_X.1 + 34.0,
                (a0 + a1) / 2.0 + 3.0,
                escape(&run.label())
            );
        }
    }
}

/// The virtual column: a box per region.
fn region_boxes(out: &mut String, boxes: &[&Region], va: &Column) {
    for (region, &at) in boxes.iter().zip(&va.boxes) {
        let s = va.stretches[at];
        let device = region.is_device();
        let _ = writeln!(
            out,
            r#"<g data-region="{}"><rect x="{}" y="{:.1}" width="{}" height="{:.1}" fill="{}" stroke="black"/>"#,
            escape(&region.name),
            VA_X.0,
            s.y,
            VA_X.1 - VA_X.0,
            s.height,
            colour(&region.prot, device)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="middle" fill="white" font-weight="bold">{}</text>"#,
            (VA_X.0 + VA_X.1) / 2.0,
            s.y + s.height / 2.0 + 4.0,
            escape(&region.name)
        );
        let head = format!("{} {} {}", region.name, region.prot, region.map);
        label(out, VA_X.0 - 10.0, s.y, "end", &head, region.va);
        out.push_str("</g>\n");
    }
}

/// The windows KASLR and module loading choose from, as (what, where, fill).
fn windows(model: &Model) -> Vec<(String, Span, &'static str)> {
    let mut windows = Vec::new();
    if let Some((span, entropy)) = &model.kaslr.window {
        windows.push((
            format!(
                "KASLR window: where the image's text may land ({entropy}); offset {:#x}",
                model.kaslr.offset
            ),
            *span,
            "#9b59b6",
        ));
    }
    if let Some(span) = model.kaslr.plt {
        windows.push((
            "module PLT window: modules anywhere here reach the kernel through veneers".into(),
            span,
            "#16a085",
        ));
    }
    if let Some(span) = model.kaslr.direct {
        windows.push((
            "module direct window: modules here reach the kernel with plain branches".into(),
            span,
            "#e67e22",
        ));
    }
    windows
}

/// The windows as bars beside the virtual column.
fn window_bars(out: &mut String, windows: &[(String, Span, &str)], va: &Column) {
    for (i, (_, span, fill)) in windows.iter().enumerate() {
        let x = VA_X.1 + 6.0 + 8.0 * i as f64;
        let (y0, y1) = (va.y(span.0), va.y(span.1));
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y0:.1}" width="5" height="{:.1}" fill="{fill}"><title>{:#x}-{:#x}</title></rect>"#,
            (y1 - y0).max(2.0),
            span.0,
            span.1
        );
    }
}

/// The physical column: a box per piece of memory.
fn piece_boxes(out: &mut String, pieces: &[Piece], pa: &Column) {
    for (piece, &at) in pieces.iter().zip(&pa.boxes) {
        let s = pa.stretches[at];
        let fill = match piece.name.as_str() {
            "free" => "#f4f4f4",
            "device" => "#f0ad4e",
            _ => "#d0d8e8",
        };
        let _ = writeln!(
            out,
            r#"<g data-piece="{}"><rect x="{}" y="{:.1}" width="{}" height="{:.1}" fill="{fill}" stroke="black"/>"#,
            escape(&piece.name),
            PA_X.0,
            s.y,
            PA_X.1 - PA_X.0,
            s.height
        );
        let what = match piece.name.as_str() {
            "free" => "free RAM",
            "device" => "device registers",
            name => name,
        };
        label(out, PA_X.1 + 10.0, s.y, "start", what, piece.pa);
        out.push_str("</g>\n");
    }
}

/// The legend under the columns: the colours, the windows and how to read
/// the drawing.
fn legend(out: &mut String, legend_y: f64, windows: &[(String, Span, &str)]) {
    let mut y = legend_y;
    for (text, fill) in [
        ("executable (r-x)", colour("r-x", false)),
        ("read-only (r--)", colour("r--", false)),
        ("read-write, never executable (rw-)", colour("rw-", false)),
        ("device memory", colour("", true)),
        ("unmapped (guard)", colour("---", false)),
    ] {
        let _ = writeln!(
            out,
            r#"<rect x="20" y="{:.1}" width="12" height="10" fill="{fill}"/><text x="38" y="{y:.1}">{text}</text>"#,
            y - 9.0
        );
        y += 16.0;
    }
    let mut y = legend_y;
    for (text, _, fill) in windows {
        let _ = writeln!(
            out,
            r#"<rect x="380" y="{:.1}" width="5" height="12" fill="{fill}"/><text x="392" y="{y:.1}">{}</text>"#,
            y - 10.0,
            escape(text)
        );
        y += 16.0;
    }
    for (i, note) in [
        "Not to scale: a box's height grows with the log of its size; a break (≈) is cut-out space, with its size.",
        "Bands: one per ptdump run, labelled block size × descriptors, access (ro/rw), x if executable.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            out,
            r##"<text x="380" y="{:.1}" fill="#555">{note}</text>"##,
            y + 8.0 + 15.0 * i as f64
        );
    }
}

/// The breaks between boxes: a zigzag and the size of what was cut out.
fn gaps(out: &mut String, column: &Column, (x0, x1): (f64, f64)) {
    for s in column.gaps() {
        let mid = s.y + s.height / 2.0;
        let _ = writeln!(
            out,
            r##"<path d="M{x0} {:.1} l8 -4 l8 8 l8 -8 l8 8 l8 -4" fill="none" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#666" font-size="9">{}</text>"##,
            mid,
            (x0 + x1) / 2.0 + 20.0,
            mid + 3.0,
            about(s.span.1 - s.span.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{parse, tests::SESSION};

    #[test]
    fn every_region_and_piece_is_labelled_with_its_exact_range() {
        let model = parse(SESSION).unwrap();
        let picture = svg(&model, "test");
        for r in &model.regions {
            if !r.is_module_window() {
                assert!(picture.contains(&format!("data-region=\"{}\"", r.name)), "{}", r.name);
                assert!(
                    picture.contains(&format!("{:#x}-{:#x} (", r.va.0, r.va.1)),
                    "{}",
                    r.name
                );
            }
        }
        for p in model.pieces() {
            assert!(picture.contains(&format!("{:#x}-{:#x} (", p.pa.0, p.pa.1)), "{p:?}");
        }
        assert_eq!(
            picture.matches("<title>0x").count() - 3,
            model.runs.len(),
            "a band per run, a bar per window"
        );
        assert!(picture.contains("KASLR window"));
    }

    #[test]
    fn addresses_go_down_the_column_in_order() {
        let column = Column::new(&[
            (0x1000, 0x2000),
            (0x10_0000, 0x20_0000),
            (1 << 40, (1 << 40) + (1 << 30)),
        ]);
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
        assert_eq!(column.gaps().count(), 2);
        assert_eq!(height(4096), 30.0);
        assert_eq!(height(8192), 35.0);
    }
}
