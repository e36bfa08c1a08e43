//! What boot costs, phase by phase: boot marks the end of each phase with the
//! PMU's count of retired instructions since the first instruction
//! (`arch::pmu::boot_clock`) and with the generic timer's count
//! (`arch::counter`), and `phases` prints the differences. QEMU counts
//! instructions only with `-icount` (`splitmap run --icount`); without it,
//! `phases` reports wall time.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

pub use super::dtb::TreeSize;

/// Boot's phases, in the order they run; each ends where the next begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// From the first instruction to Rust at the link address: zeroing, the
    /// first tables, the MMU on.
    Early,
    /// Reading the device tree and the command line.
    DeviceTree,
    /// Building the linear map.
    Linear,
    /// Moving the image to the offset KASLR chose, and relocating it (the
    /// choice itself is made in `Linear`, with the linear map's base).
    Kaslr,
    /// Starting the console and reporting what boot found.
    Console,
    /// Reservations, the heap and the frame allocator.
    Frames,
    /// Up to the shell's first prompt.
    Shell,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 7] = [
        Phase::Early,
        Phase::DeviceTree,
        Phase::Linear,
        Phase::Kaslr,
        Phase::Console,
        Phase::Frames,
        Phase::Shell,
    ];

    /// Its name in `phases`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Early => "early",
            Phase::DeviceTree => "devicetree",
            Phase::Linear => "linear",
            Phase::Kaslr => "kaslr",
            Phase::Console => "console",
            Phase::Frames => "frames",
            Phase::Shell => "shell",
        }
    }
}

/// At the end of each phase: instructions retired since the first one (0:
/// not counted), and the virtual count.
static INSTRUCTIONS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];
static TICKS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];
/// The virtual count at the first instruction at EL1.
static FIRST_TICK: AtomicU64 = AtomicU64::new(0);
/// The device tree boot read: its structure tokens and bytes (0: not read).
static TREE_TOKENS: AtomicU64 = AtomicU64::new(0);
static TREE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Notes the virtual count the early code read at its first instruction.
pub fn started(ticks: u64) {
    FIRST_TICK.store(ticks, Ordering::Relaxed);
}

/// Notes that `phase` ended with `instructions` retired since the start (if
/// counted) and the virtual count at `ticks`.
pub fn mark(phase: Phase, instructions: Option<u64>, ticks: u64) {
    INSTRUCTIONS[phase as usize].store(instructions.unwrap_or(0), Ordering::Relaxed);
    TICKS[phase as usize].store(ticks, Ordering::Relaxed);
}

/// Notes the size of the device tree the `DeviceTree` phase read, so its
/// cost can be told per token.
pub fn tree_read(size: TreeSize) {
    TREE_TOKENS.store(size.tokens, Ordering::Relaxed);
    TREE_BYTES.store(size.bytes, Ordering::Relaxed);
}

/// What boot marked, for `phases`; `frequency` is the counter's, per second.
pub fn marks(frequency: u64) -> Report {
    let load = |a: &[AtomicU64; 7]| core::array::from_fn(|i| a[i].load(Ordering::Relaxed));
    let first = FIRST_TICK.load(Ordering::Relaxed);
    let ticks: [u64; 7] = load(&TICKS);
    Report {
        instructions: load(&INSTRUCTIONS),
        micros: ticks.map(|t| micros(t.saturating_sub(first), frequency)),
        tree: TreeSize {
            tokens: TREE_TOKENS.load(Ordering::Relaxed),
            bytes: TREE_BYTES.load(Ordering::Relaxed),
        },
    }
}

/// `ticks` of a counter running at `frequency` per second, in microseconds.
pub fn micros(ticks: u64, frequency: u64) -> u64 {
    ticks.saturating_mul(1_000_000) / frequency.max(1)
}

/// The device tree phase's reading of the tree and the command line, done
/// once more at `phases`: the same work by the same code, which has run
/// before. Under QEMU's TCG that code is translated by now if it runs at the
/// same address, so next to the phase's first time this shows what
/// translating it cost; after a KASLR move it runs at a new address, which
/// QEMU translates anew (docs/bench.md).
pub struct Again {
    /// Instructions it retired, when the CPU counted them (`--icount`).
    pub instructions: Option<u64>,
    /// Microseconds it took, by the generic timer.
    pub micros: u64,
}

impl fmt::Display for Again {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, cost) = match self.instructions {
            Some(n) => ("instructions", n),
            None => ("us", self.micros),
        };
        writeln!(
            f,
            "again devicetree {unit}={cost} (the same reading of the tree and command line, by code that has run before)"
        )
    }
}

/// `phases`: a line per phase with what it cost and its share, then the
/// total, then the device tree's size and what the `devicetree` phase cost
/// per structure token, so trees of any size compare. The cost is in
/// instructions when the CPU counted them (QEMU with `-icount`, whose clock
/// then follows the instruction count), and otherwise in microseconds of the
/// counter, the boot's wall time.
pub struct Report {
    /// Instructions retired at the end of each phase (0: not counted).
    pub instructions: [u64; 7],
    /// Microseconds since the first instruction at the end of each phase.
    pub micros: [u64; 7],
    /// The tree the `devicetree` phase read.
    pub tree: TreeSize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counted = |ends: &[u64; 7]| !ends.contains(&0) && ends.windows(2).all(|w| w[0] <= w[1]);
        let (ends, unit, what) = if counted(&self.instructions) {
            (self.instructions, "instructions", "")
        } else if self.micros.windows(2).all(|w| w[0] <= w[1]) && self.micros[6] > 0 {
            (
                self.micros,
                "us",
                "; wall time: run with --icount to count instructions",
            )
        } else {
            return writeln!(
                f,
                "phases: not counted (the PMU counts instructions only with --icount under QEMU, and the counter did not advance)"
            );
        };
        let total = ends[Phase::Shell as usize];
        let mut start = 0;
        for (phase, end) in Phase::ALL.iter().zip(ends) {
            let cost = end - start;
            let tenths = (cost * 1000 + total / 2) / total;
            writeln!(
                f,
                "phase {:<10} {unit}={cost} share={}.{}%",
                phase.name(),
                tenths / 10,
                tenths % 10
            )?;
            start = end;
        }
        writeln!(
            f,
            "total {unit}={total} (from the first instruction to the first prompt{what})"
        )?;
        let TreeSize { tokens, bytes } = self.tree;
        let phase = ends[Phase::DeviceTree as usize] - ends[Phase::Early as usize];
        // Nothing when boot noted no tree (zero tokens).
        if let Some(per_token) = (phase + tokens / 2).checked_div(tokens) {
            writeln!(
                f,
                "devicetree tokens={tokens} bytes={bytes} {unit}-per-token={per_token}"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDS: [u64; 7] = [100, 700, 750, 900, 950, 990, 1000];

    #[test]
    fn each_phase_costs_the_difference_to_the_one_before() {
        let report = Report {
            instructions: ENDS,
            micros: [1; 7],
            tree: TreeSize { tokens: 7, bytes: 96 },
        }
        .to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "phase early      instructions=100 share=10.0%");
        assert_eq!(lines[1], "phase devicetree instructions=600 share=60.0%");
        assert_eq!(lines[6], "phase shell      instructions=10 share=1.0%");
        assert_eq!(
            lines[7],
            "total instructions=1000 (from the first instruction to the first prompt)"
        );
        // 600 instructions for 7 tokens: 85.7, rounded.
        assert_eq!(lines[8], "devicetree tokens=7 bytes=96 instructions-per-token=86");
    }

    #[test]
    fn without_instructions_the_wall_time() {
        let report = Report {
            instructions: [0; 7],
            micros: ENDS,
            tree: TreeSize {
                tokens: 300,
                bytes: 4000,
            },
        }
        .to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[1], "phase devicetree us=600 share=60.0%");
        assert!(lines[7].starts_with("total us=1000 "), "{}", lines[7]);
        assert!(lines[7].contains("--icount"));
        assert_eq!(lines[8], "devicetree tokens=300 bytes=4000 us-per-token=2");
        let untold = Report {
            instructions: ENDS,
            micros: ENDS,
            tree: TreeSize::default(),
        };
        assert_eq!(untold.to_string().lines().count(), 8, "no tree read, no tree line");
    }

    #[test]
    fn again_is_in_instructions_when_counted_else_in_microseconds() {
        let counted = Again {
            instructions: Some(70_000),
            micros: 9,
        };
        assert!(counted.to_string().starts_with("again devicetree instructions=70000 ("));
        let timed = Again {
            instructions: None,
            micros: 120,
        };
        assert!(timed.to_string().starts_with("again devicetree us=120 ("));
        assert_eq!(micros(625, 62_500_000), 10);
        assert_eq!(micros(7, 0), 7_000_000, "a zero frequency divides by one");
    }

    #[test]
    fn nothing_counted_says_why() {
        let nothing = Report {
            instructions: [0; 7],
            micros: [0; 7],
            tree: TreeSize { tokens: 1, bytes: 1 },
        };
        assert!(nothing.to_string().contains("--icount"));
        let back = Report {
            instructions: [5, 4, 6, 7, 8, 9, 10],
            micros: [5, 4, 6, 7, 8, 9, 10],
            tree: TreeSize { tokens: 1, bytes: 1 },
        };
        assert!(back.to_string().contains("not counted"), "counts that went back");
    }
}
