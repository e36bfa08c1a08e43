//! 10 000 random shell lines from a fixed seed: `walk` and `peek` at the
//! edges, insides and gaps of every region `layout` lists, real commands with
//! random arguments, garbage, control characters, non-ASCII, lines around the
//! buffer's limit. The kernel must answer every one and still answer `help`
//! at the end.

use std::time::Duration;

mod common;

use splitmap::qemu::{self, Artifacts, Boot, Console};
use splitmap::session::{self, PROMPT};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Addresses worth poking: every region `layout` lists, at its edges, inside
/// it, and in the holes between regions — where the interesting faults are
/// (the guard page, MMIO, the DTB window, the image, the module windows).
fn interesting_address(rng: &mut Rng, regions: &[(u64, u64)]) -> u64 {
    let (start, end) = regions[rng.below(regions.len() as u64) as usize];
    let size = (end - start).max(1);
    match rng.below(7) {
        0 => start,
        1 => end - 1,
        2 => end,
        3 => start.wrapping_sub(1 + rng.below(0x1000)),
        4 => start + rng.below(size),
        // The hole above this region, up to the next one.
        5 => {
            let next = regions
                .iter()
                .map(|r| r.0)
                .filter(|&s| s > end)
                .min()
                .unwrap_or(u64::MAX);
            end + rng.below((next - end).max(1))
        }
        // Page-aligned, as a learner would type.
        _ => (start + rng.below(size)) & !0xfff,
    }
}

fn random_line(rng: &mut Rng, regions: &[(u64, u64)]) -> String {
    let words = [
        "help",
        "layout",
        "mem",
        "bootargs",
        "kaslr",
        "walk",
        "peek",
        "test",
        "frobnicate",
        "",
        "0x",
        "--",
    ];
    // Weights in 48ths: the kernel's answer to an address is what varies most.
    match rng.below(48) {
        // A region's address, walked or peeked at any width.
        0..=17 => {
            let va = interesting_address(rng, regions);
            match rng.below(3) {
                0 => format!("walk {va:#x}"),
                _ => format!("peek {va:#x} {}", [8, 16, 32, 64][rng.below(4) as usize]),
            }
        }
        // Any 64-bit number, the top bits included.
        18..=23 => format!(
            "{} {:#x}",
            ["walk", "peek"][rng.below(2) as usize],
            rng.next() << rng.below(12) | (rng.below(2) << 63)
        ),
        24..=27 => format!("peek {:#x} {}", rng.next(), [8, 16, 32, 64, 12][rng.below(5) as usize]),
        // Random words.
        28..=35 => (0..rng.below(6))
            .map(|_| words[rng.below(words.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" "),
        // Printable and control bytes (no CR/LF: they end the line).
        36..=42 => (0..rng.below(40))
            .map(|_| match rng.below(10) {
                0 => char::from(rng.below(0x20) as u8),
                1 => '\u{7f}',
                _ => char::from(0x20 + rng.below(0x5f) as u8),
            })
            .filter(|c| *c != '\r' && *c != '\n')
            .collect(),
        // Non-ASCII (sent as UTF-8: bytes above 0x7f).
        43..=46 => "é∂ƒ😀 help".chars().take(1 + rng.below(8) as usize).collect(),
        // Around the line buffer's 256 bytes: every typed byte costs a
        // round trip through the emulated UART, so these are few and close
        // to the limit, on both sides of it.
        _ => "x".repeat([255, 256, 257, 258, 300, 512][rng.below(6) as usize]),
    }
}

/// The regions of a KASLR boot with `seed`, as `layout` lists them.
fn regions(seed: &str) -> Vec<(u64, u64)> {
    let out = common::session(&["--kaslr-seed", seed], &["layout"]);
    let mut regions: Vec<(u64, u64)> = common::layout_rows(&out).iter().map(|r| r.va).collect();
    regions.sort();
    assert!(regions.len() >= 10, "{out}");
    regions
}

#[test]
fn ten_thousand_random_lines() {
    const SEED: u64 = 0x50a4;
    let regions = regions(&format!("{SEED:#x}"));
    let mut rng = Rng(SEED);
    let mut lines: Vec<String> = (0..10_000).map(|_| random_line(&mut rng, &regions)).collect();
    lines.push("help".into());
    // The same seed as the layout the addresses came from.
    let boot = Boot {
        console: Console::Piped,
        kaslr_seed: Some(SEED),
        ..Boot::default()
    };
    let command = qemu::command(&qemu::qemu_args(&boot, &Artifacts::built()));
    let t = session::run(command, &lines, Duration::from_secs(600), |_| {}).expect("start QEMU");
    assert!(
        t.outcome.success(),
        "{}: last output:\n{}",
        t.outcome.reason(),
        &t.output[t.output.len().saturating_sub(2000)..]
    );
    // One prompt per line typed, plus the first; help answered at the end.
    let prompts = t.output.matches(&format!("\n{PROMPT}")).count() + usize::from(t.output.starts_with(PROMPT));
    assert!(prompts > lines.len(), "{prompts} prompts for {} lines", lines.len() + 1);
    let tail = &t.output[t.output.rfind("help\r\n").expect("help typed last")..];
    assert!(tail.contains("commands:"), "{tail}");
    // The kernel half was reached: the guard page faulted, the DTB window
    // read back, a walk translated.
    for (what, want) in [
        ("the guard page", "fault at 0xffffffffff000000"),
        ("the DTB window", "\n0xfffffffffe000000: 0x"),
        ("a translation", "=> pa=0x"),
    ] {
        assert!(t.output.contains(want), "never reached {what}");
    }
}

#[test]
fn a_pasted_burst_loses_no_character() {
    // 300 lines (about 6 KiB) written at once: far more than the UART's FIFO.
    let lines: Vec<String> = (0..300)
        .map(|i| format!("walk {:#x}", 0xffff_0000_0000_0000u64 + i * 0x1000))
        .collect();
    let boot = Boot {
        console: Console::Piped,
        ..Boot::default()
    };
    let command = qemu::command(&qemu::qemu_args(&boot, &Artifacts::built()));
    let t = session::run_typing(
        command,
        &lines,
        session::Typing::Burst,
        Duration::from_secs(120),
        |_| {},
    )
    .unwrap();
    assert!(t.outcome.success(), "{}", t.outcome.reason());
    // Every line arrived intact: each walk printed its own translation.
    for i in 0..300u64 {
        let want = format!("=> pa={:#x} level=1 size=1G prot=rw-", 0x4000_0000 + i * 0x1000);
        assert!(t.output.contains(&want), "line {i} was garbled or lost");
    }
    assert!(!t.output.contains("error:"), "a line arrived damaged");
}
