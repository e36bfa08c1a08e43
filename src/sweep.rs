//! `splitmap sweep`: boot many times with different KASLR seeds and look at
//! where the image landed. The statistics and the picture are pure functions,
//! tested here; the boots are in sweep_cmd.rs.

use std::fmt::Write;

/// A reproducible stream of seeds (SplitMix64): boot `i` gets `seed(i)`.
pub fn seed(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The placements a window allows: `slots` text addresses `first + k * align`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// Lowest possible text VA.
    pub first: u64,
    /// Step between placements.
    pub align: u64,
    /// How many.
    pub count: u64,
}

/// What a sweep found.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Boots.
    pub boots: u64,
    /// Distinct text VAs seen.
    pub distinct: u64,
    /// Distinct placements expected from `boots` uniform draws over the slots:
    /// `S * (1 - (1 - 1/S)^N)`.
    pub expected_distinct: f64,
    /// Lowest and highest text VA seen.
    pub min: u64,
    /// Highest text VA seen.
    pub max: u64,
    /// Placements per bin, bins covering the slots evenly.
    pub histogram: Vec<u64>,
    /// Pearson's χ² of the histogram against uniform placement.
    pub chi2: f64,
    /// Its degrees of freedom (bins - 1).
    pub dof: u64,
    /// P(χ² ≥ observed) under uniformity.
    pub p_value: f64,
    /// Placements off the slot grid or outside it (must be 0).
    pub off_grid: u64,
}

/// Summarises `vas` (one text VA per boot) against the `slots` the window has,
/// in `bins` histogram bins (fewer if there are fewer slots).
pub fn summarise(vas: &[u64], slots: Slots, bins: u64) -> Summary {
    let bins = bins.clamp(1, slots.count.max(1));
    let mut histogram = vec![0u64; bins as usize];
    let mut off_grid = 0;
    for &va in vas {
        let Some(delta) = va.checked_sub(slots.first) else {
            off_grid += 1;
            continue;
        };
        let k = delta / slots.align;
        if delta % slots.align != 0 || k >= slots.count {
            off_grid += 1;
            continue;
        }
        histogram[(u128::from(k) * u128::from(bins) / u128::from(slots.count)) as usize] += 1;
    }
    let n = (vas.len() as u64 - off_grid) as f64;
    // Expected count of bin b: N * (slots falling in b) / S.
    let slots_in = |b: u64| {
        let lo = (u128::from(b) * u128::from(slots.count)).div_ceil(u128::from(bins));
        let hi = (u128::from(b + 1) * u128::from(slots.count)).div_ceil(u128::from(bins));
        (hi - lo) as f64
    };
    let chi2 = (0..bins)
        .map(|b| {
            let expected = n * slots_in(b) / slots.count as f64;
            let diff = histogram[b as usize] as f64 - expected;
            if expected > 0.0 { diff * diff / expected } else { 0.0 }
        })
        .sum();
    let dof = bins - 1;
    let mut sorted = vas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let s = slots.count as f64;
    Summary {
        boots: vas.len() as u64,
        distinct: sorted.len() as u64,
        expected_distinct: s * (1.0 - (1.0 - 1.0 / s).powf(vas.len() as f64)),
        min: sorted.first().copied().unwrap_or(0),
        max: sorted.last().copied().unwrap_or(0),
        histogram,
        chi2,
        dof,
        p_value: chi2_survival(chi2, dof),
        off_grid,
    }
}

/// The significance level of the uniformity test.
pub const ALPHA: f64 = 0.01;

impl Summary {
    /// What the χ² test says about uniform placement, at [`ALPHA`].
    pub fn verdict(&self) -> String {
        if self.dof == 0 {
            "one bin: nothing to test".to_string()
        } else if self.p_value > ALPHA {
            format!("uniform placement is not rejected at p > {ALPHA}")
        } else {
            format!("uniform placement is rejected: p <= {ALPHA}")
        }
    }
}

/// P(X ≥ x) for X ~ χ²(k): the regularised upper incomplete gamma Q(k/2, x/2).
pub fn chi2_survival(x: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    upper_gamma_q(k as f64 / 2.0, x / 2.0)
}

/// Q(a, x), by the series for x < a + 1 and the continued fraction otherwise
/// (the classic split: each converges fast on its side).
fn upper_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^{-x} x^a / Γ(a) · Σ x^n / (a (a+1) … (a+n))
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * log_prefix.exp()
    } else {
        // Lentz's method for the continued fraction of Q.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        log_prefix.exp() * h
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series: f64 = G[0] + (1..9).map(|i| G[i] / (x + i as f64)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// A step for about `ticks` ticks from 0 to `top`: 1, 2 or 5 times a power of ten.
fn tick_step(top: f64, ticks: f64) -> f64 {
    let raw = (top / ticks).max(1.0);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(raw)
}

/// Where the histogram's plot is on the page and what its axes span: x the
/// text VA across `window`, y the boots per bin from 0 to `y_top`.
struct Plot {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    window: (u64, u64),
    y_top: f64,
}

impl Plot {
    fn x(&self, va: u64) -> f64 {
        let span = self.window.1.saturating_sub(self.window.0).max(1) as f64;
        self.left + self.width * va.saturating_sub(self.window.0) as f64 / span
    }

    fn y(&self, count: f64) -> f64 {
        self.top + self.height * (1.0 - count / self.y_top)
    }

    /// The x axis's height on the page.
    fn x_axis(&self) -> f64 {
        self.top + self.height
    }
}

/// The histogram as an SVG bar chart: x is the text VA across the whole
/// window (`window_start..window_end`: its last stretch holds no slot, since
/// the image must fit), y is boots per bin, the dashed line what uniform
/// placement expects.
pub fn svg(summary: &Summary, slots: Slots, window_start: u64, window_end: u64) -> String {
    svg_along(
        summary,
        slots,
        window_start,
        window_end,
        "text VA, across the whole KASLR window",
    )
}

/// [`svg`] with the x axis called `x_caption`.
pub fn svg_along(summary: &Summary, slots: Slots, window_start: u64, window_end: u64, x_caption: &str) -> String {
    let (w, h) = (720.0, 330.0);
    let (left, right, top, bottom) = (70.0, 30.0, 40.0, 75.0);
    let bins = summary.histogram.len().max(1) as u64;
    let expected = summary.boots.saturating_sub(summary.off_grid) as f64 / bins as f64;
    let highest = summary.histogram.iter().copied().max().unwrap_or(0) as f64;
    let step = tick_step(highest.max(expected), 5.0);
    let plot = Plot {
        left,
        top,
        width: w - left - right,
        height: h - top - bottom,
        window: (window_start, window_end),
        y_top: (highest.max(expected) / step).ceil().max(1.0) * step,
    };
    // Past the last slot the image would cross the window's end.
    let no_slots = slots.first + slots.count.saturating_sub(1) * slots.align + slots.align;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="20">{} boots, {} bins, chi2={:.2} (dof {}), p={:.3}</text>"#,
        summary.boots, bins, summary.chi2, summary.dof, summary.p_value
    );
    if no_slots < window_end {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{}" fill="#eeeeee"><title>no slot: the image would cross the window's end</title></rect>"##,
            plot.x(no_slots),
            plot.x(window_end) - plot.x(no_slots),
            plot.height
        );
    }
    bars(&mut out, &plot, summary, slots);
    let ey = plot.y(expected);
    let _ = writeln!(
        out,
        r#"<line x1="{left}" y1="{ey:.1}" x2="{:.1}" y2="{ey:.1}" stroke="red" stroke-dasharray="4 3"/>"#,
        plot.x(no_slots)
    );
    axes(&mut out, &plot, step);
    let grey = if plot.x(window_end) - plot.x(no_slots) >= 1.0 {
        " (grey: no slot)"
    } else {
        ""
    };
    captions(&mut out, &plot, x_caption, grey);
    out.push_str("</svg>\n");
    out
}

/// A bar per bin. Bin b holds the slots `summarise` put in it, and its bar
/// spans their text VAs.
fn bars(out: &mut String, plot: &Plot, summary: &Summary, slots: Slots) {
    let bins = summary.histogram.len().max(1) as u64;
    let slot_va = |k: u128| slots.first + (k as u64) * slots.align;
    let bin_edge = |b: u64| (u128::from(b) * u128::from(slots.count)).div_ceil(u128::from(bins));
    for (b, &count) in summary.histogram.iter().enumerate() {
        let (x0, x1) = (
            plot.x(slot_va(bin_edge(b as u64))),
            plot.x(slot_va(bin_edge(b as u64 + 1))),
        );
        let _ = writeln!(
            out,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4a7ab0"><title>{count}</title></rect>"##,
            plot.y(count as f64),
            (x1 - x0 - 1.0).max(0.5),
            plot.height + plot.top - plot.y(count as f64)
        );
    }
}

/// The axes: boots every `step` up the left, the window's start, middle and
/// end along the bottom.
fn axes(out: &mut String, plot: &Plot, step: f64) {
    let (x_axis, y_axis) = (plot.x_axis(), plot.left);
    let (top, window_start, window_end) = (plot.top, plot.window.0, plot.window.1);
    let _ = writeln!(
        out,
        r#"<path d="M{y_axis} {top} V{x_axis} H{:.1}" fill="none" stroke="black"/>"#,
        plot.x(window_end)
    );
    let mut tick = 0.0;
    while tick <= plot.y_top {
        let ty = plot.y(tick);
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ty:.1}" x2="{y_axis}" y2="{ty:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{tick}</text>"#,
            y_axis - 4.0,
            y_axis - 7.0,
            ty + 4.0
        );
        tick += step;
    }
    for (va, anchor) in [
        (window_start, "start"),
        (window_start + (window_end - window_start) / 2, "middle"),
        (window_end, "end"),
    ] {
        let tx = plot.x(va);
        let _ = writeln!(
            out,
            r#"<line x1="{tx:.1}" y1="{x_axis}" x2="{tx:.1}" y2="{}" stroke="black"/><text x="{tx:.1}" y="{}" text-anchor="{anchor}">{va:#x}</text>"#,
            x_axis + 4.0,
            x_axis + 16.0
        );
    }
}

/// What the axes and the dashed line mean; `grey` says what the grey is,
/// when there is some.
fn captions(out: &mut String, plot: &Plot, x_caption: &str, grey: &str) {
    let x_axis = plot.x_axis();
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{x_caption}{grey}</text>"#,
        plot.left + plot.width / 2.0,
        x_axis + 34.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">dashed red: boots per bin if placement is uniform</text>"#,
        plot.left + plot.width / 2.0,
        x_axis + 52.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">boots per bin</text>"#,
        plot.top + plot.height / 2.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_p_values_match_tables() {
        // (x, dof, p) from standard χ² tables.
        for (x, k, p) in [
            (3.841, 1, 0.05),
            (18.307, 10, 0.05),
            (30.144, 19, 0.05),
            (36.191, 19, 0.01),
            (19.0, 19, 0.4566),
        ] {
            let got = chi2_survival(x, k);
            assert!((got - p).abs() < 5e-4, "chi2 {x} dof {k}: {got} vs {p}");
        }
        assert!((chi2_survival(0.0, 5) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn uniform_placements_pass_and_skewed_ones_fail() {
        let slots = Slots {
            first: 0xffff_9000_0000_0000,
            align: 0x20_0000,
            count: 512,
        };
        let uniform: Vec<u64> = (0..4000)
            .map(|i| slots.first + (seed(i) % slots.count) * slots.align)
            .collect();
        let s = summarise(&uniform, slots, 16);
        assert_eq!((s.boots, s.off_grid, s.dof), (4000, 0, 15));
        assert!(s.p_value > 0.001, "uniform draws look uniform: {s:?}");
        assert!(
            (s.distinct as f64 - s.expected_distinct).abs() < 20.0,
            "{} vs {}",
            s.distinct,
            s.expected_distinct
        );
        // Everything in the lower half: χ² explodes.
        assert_eq!(s.verdict(), "uniform placement is not rejected at p > 0.01");
        let skewed: Vec<u64> = (0..4000).map(|i| slots.first + (seed(i) % 256) * slots.align).collect();
        let skewed = summarise(&skewed, slots, 16);
        assert!(skewed.p_value < 1e-9);
        assert_eq!(skewed.verdict(), "uniform placement is rejected: p <= 0.01");
        // Off the grid: counted, not binned.
        let off = summarise(
            &[slots.first + 1, slots.first - 0x20_0000, slots.first + 512 * 0x20_0000],
            slots,
            16,
        );
        assert_eq!(off.off_grid, 3);
    }

    #[test]
    fn svg_has_a_bar_per_bin() {
        let slots = Slots {
            first: 0x1000,
            align: 0x1000,
            count: 100,
        };
        let s = summarise(&(0..100).map(|i| 0x1000 + i * 0x1000).collect::<Vec<_>>(), slots, 10);
        let picture = svg(&s, slots, 0x1000, 0x80000);
        assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
        assert_eq!(picture.matches("fill=\"#4a7ab0\"").count(), 10);
        for label in ["boots per bin", "text VA", ">0x1000<", ">0x80000<", ">0<", ">10<"] {
            assert!(picture.contains(label), "{label} in {picture}");
        }
    }

    #[test]
    fn the_x_axis_spans_the_window_and_the_bars_end_at_the_last_slot() {
        // 100 slots of 4 KiB from 0x1000, in a window to 0x80000: the last
        // slot is 0x64000, the rest of the window holds none.
        let slots = Slots {
            first: 0x1000,
            align: 0x1000,
            count: 100,
        };
        let s = summarise(&[0x1000, 0x64000], slots, 10);
        let picture = svg(&s, slots, 0x1000, 0x80000);
        let number = |text: &str, key: &str| -> f64 {
            let at = text.find(key).unwrap() + key.len();
            text[at..].split('"').next().unwrap().parse().unwrap()
        };
        let axis = picture.lines().find(|l| l.starts_with("<path")).unwrap();
        let bars: Vec<&str> = picture.lines().filter(|l| l.contains("#4a7ab0")).collect();
        let last = bars.last().unwrap();
        let bars_end = number(last, " x=\"") + number(last, " width=\"");
        let axis_end: f64 = axis
            .rsplit_once(" H")
            .unwrap()
            .1
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(axis_end, 690.0, "the axis ends at the window's end");
        let slot_end = 70.0 + 620.0 * (0x65000 - 0x1000) as f64 / (0x80000 - 0x1000) as f64;
        assert!((bars_end + 1.0 - slot_end).abs() < 0.2, "{bars_end} vs {slot_end}");
        assert!(picture.contains("no slot"), "the slot-less end is marked");
    }
}
