//! What bringing up each secondary CPU cost, for `phases` (and `splitmap
//! bench --smp N`): from the boot CPU's request (PSCI `CPU_ON`, or the
//! spin-table release) to the CPU reporting in, in instructions when the
//! PMU counts them and in microseconds of the counter otherwise, as
//! `phases` itself does; and, counted, the instructions the boot CPU spent
//! preparing it before the request (its stacks mapped, its boot record
//! written and cleaned). Under QEMU's `-icount` one count runs for every
//! CPU, so the instructions to the report are the secondary's own and the
//! boot CPU's as it waits in `WFE`.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::MAX_CPUS;

/// Per CPU: instructions + 1 (0: not started, or not counted), and
/// microseconds + 1 (0: not started).
static INSTRUCTIONS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static MICROS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: instructions spent preparing it, + 1 (0: not counted).
static PREPARE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What one secondary's bring-up cost.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Instructions the boot CPU spent before the request, if counted.
    pub prepare: Option<u64>,
    /// Instructions from the request to the report, if counted.
    pub instructions: Option<u64>,
    /// Microseconds from the request to the report.
    pub micros: u64,
}

/// Notes what bringing up CPU `cpu` cost.
pub fn record(cpu: usize, cost: Cost) {
    if cpu < MAX_CPUS {
        INSTRUCTIONS[cpu].store(cost.instructions.map_or(0, |n| n + 1), Ordering::Relaxed);
        PREPARE[cpu].store(cost.prepare.map_or(0, |n| n + 1), Ordering::Relaxed);
        MICROS[cpu].store(cost.micros + 1, Ordering::Relaxed);
    }
}

/// What was recorded, for `phases`.
pub fn report() -> Report {
    let load = |a: &[AtomicU64; MAX_CPUS]| core::array::from_fn(|i| a[i].load(Ordering::Relaxed));
    Report {
        instructions: load(&INSTRUCTIONS),
        micros: load(&MICROS),
        prepare: load(&PREPARE),
    }
}

/// One line per secondary that came up: `secondary cpu=N instructions=N
/// prepare=N`, or `secondary cpu=N us=N` when instructions were not
/// counted.
pub struct Report {
    instructions: [u64; MAX_CPUS],
    micros: [u64; MAX_CPUS],
    prepare: [u64; MAX_CPUS],
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (cpu, (&n, &us)) in self.instructions.iter().zip(&self.micros).enumerate() {
            match (n, us) {
                (0, 0) => {}
                (0, us) => writeln!(f, "secondary cpu={cpu} us={}", us - 1)?,
                (n, _) => writeln!(
                    f,
                    "secondary cpu={cpu} instructions={} prepare={}",
                    n - 1,
                    self.prepare[cpu].saturating_sub(1)
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_secondary_that_came_up_in_the_unit_counted() {
        let mut report = Report {
            instructions: [0; MAX_CPUS],
            micros: [0; MAX_CPUS],
            prepare: [0; MAX_CPUS],
        };
        assert_eq!(report.to_string(), "", "one CPU: nothing to say");
        report.instructions[1] = 4243;
        report.prepare[1] = 6001;
        report.micros[1] = 18;
        report.micros[3] = 1;
        assert_eq!(
            report.to_string(),
            "secondary cpu=1 instructions=4242 prepare=6000\nsecondary cpu=3 us=0\n"
        );
    }
}
