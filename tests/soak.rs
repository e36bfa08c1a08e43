//! 10 000 random shell lines from a fixed seed: real commands with random
//! arguments, garbage, control characters, non-ASCII, over-long lines. The
//! kernel must answer every one and still answer `help` at the end.

use std::process::Command;
use std::time::Duration;

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

fn random_line(rng: &mut Rng) -> String {
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
    match rng.below(6) {
        // A command with a random number, or two.
        0 => format!(
            "{} {:#x}",
            ["walk", "peek"][rng.below(2) as usize],
            rng.next() << rng.below(12)
        ),
        1 => format!("peek {:#x} {}", rng.next(), [8, 16, 32, 64, 12][rng.below(5) as usize]),
        // Random words.
        2 => (0..rng.below(6))
            .map(|_| words[rng.below(words.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" "),
        // Printable and control bytes (no CR/LF: they end the line; no 0x01 0x03 noise issue).
        3 => (0..rng.below(40))
            .map(|_| match rng.below(10) {
                0 => char::from(rng.below(0x20) as u8),
                1 => '\u{7f}',
                _ => char::from(0x20 + rng.below(0x5f) as u8),
            })
            .filter(|c| *c != '\r' && *c != '\n')
            .collect(),
        // Non-ASCII (sent as UTF-8: bytes above 0x7f).
        4 => "é∂ƒ😀 help".chars().take(1 + rng.below(8) as usize).collect(),
        // Longer than the line buffer.
        _ => "x".repeat(200 + rng.below(200) as usize),
    }
}

#[test]
fn ten_thousand_random_lines() {
    let mut rng = Rng(0x50a4);
    let mut lines: Vec<String> = (0..10_000).map(|_| random_line(&mut rng)).collect();
    lines.push("help".into());
    let boot = Boot {
        console: Console::Piped,
        ..Boot::default()
    };
    let mut command = Command::new(qemu::QEMU);
    command.args(qemu::qemu_args(&boot, &Artifacts::built()));
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
    let mut command = Command::new(qemu::QEMU);
    command.args(qemu::qemu_args(&boot, &Artifacts::built()));
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
