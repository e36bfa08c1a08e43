//! What boot costs, in retired instructions, phase by phase: boot marks the
//! end of each phase with the PMU's count since the first instruction
//! (`arch::pmu::boot_clock`), and `phases` prints the differences. QEMU
//! counts instructions only with `-icount` (`splitmap run --icount`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

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
    /// Choosing the KASLR offset, moving the image and relocating it.
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

/// The count at the end of each phase (0: not marked or not counted).
static MARKS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

/// Notes that `phase` ended with `count` instructions retired since the start.
pub fn mark(phase: Phase, count: Option<u64>) {
    MARKS[phase as usize].store(count.unwrap_or(0), Ordering::Relaxed);
}

/// The counts boot marked.
pub fn marks() -> [u64; 7] {
    core::array::from_fn(|i| MARKS[i].load(Ordering::Relaxed))
}

/// `phases`: a line per phase with what it cost and its share, then the
/// total; or why nothing was counted.
pub struct Report(pub [u64; 7]);

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ends = self.0;
        let total = ends[Phase::Shell as usize];
        if ends.contains(&0) || ends.windows(2).any(|w| w[1] < w[0]) {
            return writeln!(
                f,
                "phases: not counted (the CPU counts instructions only with a PMU event for them: under QEMU, run with --icount)"
            );
        }
        let mut start = 0;
        for (phase, end) in Phase::ALL.iter().zip(ends) {
            let cost = end - start;
            let tenths = (cost * 1000 + total / 2) / total;
            writeln!(
                f,
                "phase {:<10} instructions={cost} share={}.{}%",
                phase.name(),
                tenths / 10,
                tenths % 10
            )?;
            start = end;
        }
        writeln!(
            f,
            "total instructions={total} (from the first instruction to the first prompt)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_costs_the_difference_to_the_one_before() {
        let report = Report([100, 700, 750, 900, 950, 990, 1000]).to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "phase early      instructions=100 share=10.0%");
        assert_eq!(lines[1], "phase devicetree instructions=600 share=60.0%");
        assert_eq!(lines[6], "phase shell      instructions=10 share=1.0%");
        assert_eq!(
            lines[7],
            "total instructions=1000 (from the first instruction to the first prompt)"
        );
    }

    #[test]
    fn nothing_counted_says_how_to_count() {
        assert!(Report([0; 7]).to_string().contains("--icount"));
        assert!(
            Report([5, 4, 6, 7, 8, 9, 10]).to_string().contains("not counted"),
            "a count that went back"
        );
    }
}
