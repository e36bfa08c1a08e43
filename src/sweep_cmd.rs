//! `splitmap sweep`: many boots, and where KASLR put the image in each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kernel::kaslr::window::{self, Window};
use splitmap::machine::{self as machines, Machine};
use splitmap::qemu::{self, Artifacts, Boot, Console};
use splitmap::session;
use splitmap::sweep::{self as stats, Slots, Summary};

use crate::SweepArgs;

/// Refuses (exit status 2, before any boot) a window or an alignment the
/// swept kernel would refuse, as `sweep` itself would find it.
pub fn check(args: &SweepArgs) -> Result<(), String> {
    machine(args)?;
    placements(args, &swept_image(args)?).map(|_| ())
}

/// `--machine`, refused with a granule its CPU lacks (the 16K kernel on
/// the Pi's Cortex-A53 would refuse every boot).
fn machine(args: &SweepArgs) -> Result<Machine, String> {
    let machine = Machine::parse(&args.machine)?;
    machine.check(splitmap::machine::RASPI3B_MEM, args.smp, &args.kernel.granule, None)?;
    Ok(machine)
}

/// The Image of the kernel `args` sweeps.
fn swept_image(args: &SweepArgs) -> Result<Vec<u8>, String> {
    let artifacts = Artifacts::for_granule(&args.kernel.granule)?;
    std::fs::read(&artifacts.image).map_err(|e| format!("{}: {e}", artifacts.image.display()))
}

/// `splitmap sweep`.
pub fn sweep(args: &SweepArgs) -> Result<(), String> {
    splitmap::output::check_writable(&args.svg)?;
    if args.uefi {
        return sweep_uefi(args);
    }
    let granule = &args.kernel.granule;
    let artifacts = Artifacts::for_granule(granule)?;
    let (window, slots) = placements(args, &swept_image(args)?)?;
    let boot = swept_boot(args)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
        .min(args.boots);

    let started = Instant::now();
    let vas = boot_all(args.boots, jobs, |i| {
        let seeded = Boot {
            kaslr_seed: Some(stats::seed(i)),
            ..boot.clone()
        };
        text_va(&seeded, &artifacts)
    })?;
    let summary = stats::summarise(&vas, slots, args.bins);
    let on = match boot.machine {
        Machine::Virt => String::new(),
        other => format!(" on {}", other.name()),
    };
    println!(
        "sweep: {} boots{on} in {:.1} s ({jobs} jobs)",
        summary.boots,
        started.elapsed().as_secs_f64()
    );
    print_summary(&summary, &window, slots);
    splitmap::output::write_whole(&args.svg, stats::svg(&summary, slots, window.start, window.end))?;
    println!("svg: {}", args.svg.display());
    if summary.off_grid > 0 {
        return Err(format!(
            "{} placements were outside the window's slots",
            summary.off_grid
        ));
    }
    Ok(())
}

/// What every boot of the sweep shares (each adds its seed).
fn swept_boot(args: &SweepArgs) -> Result<Boot, String> {
    let machine = machine(args)?;
    let mut boot = Boot {
        append: kaslr_options(args).join(" "),
        console: Console::Piped,
        cpu: qemu::cpu_for(&args.kernel.granule, qemu::Accel::Tcg).to_string(),
        machine,
        ..Boot::default()
    };
    if let Some(n) = args.smp {
        boot.smp = n;
    }
    if machine == Machine::Raspi3b {
        // One tree for every boot: its seed stays 0, each boot's seed is
        // on its command line (kaslr.seed=), which the kernel prefers. QEMU's
        // Pi always has its 4 CPUs: --smp N is how many the kernel starts.
        boot.mem = machines::RASPI3B_MEM;
        boot.smp = machines::RASPI3B_SMP;
        if let Some(n) = args.smp {
            boot.append = format!("{} maxcpus={n}", boot.append).trim_start().to_string();
        }
        boot.dtb = Some(machines::write_raspi3b_tree(&machines::trees_dir(), 0)?);
    }
    Ok(boot)
}

/// The window `--window` and `--align` ask for and the placements it has
/// for `image` (a kernel Image), refused as the kernel would refuse it.
fn placements(args: &SweepArgs, image: &[u8]) -> Result<(Window, Slots), String> {
    let header = |at: usize| {
        let bytes = image.get(at..at + 8).ok_or("the Image is shorter than its header")?;
        Ok::<u64, String>(u64::from_le_bytes(bytes.try_into().map_err(|_| "Image too short")?))
    };
    let image_size = header(16)?;
    // The same rules the kernel applies, so a window it would refuse is refused here.
    let window = window::window_from_args(args.window.as_deref(), args.align.as_deref(), image_size)
        .map_err(|e| e.to_string())?;
    // The host's copy of those rules knows 4 KiB pages; the swept kernel's,
    // as its Image header says (flags bits 1-2), may be larger, and it
    // refuses placements finer than its pages.
    let flags = header(24)?;
    if let Some((name, granule)) = splitmap::bench::GRANULES
        .iter()
        .find(|(_, g)| g.image_flag() == (flags >> 1) & 3)
        && window.align < granule.page_size()
    {
        return Err(format!(
            "--align {}: finer than the {name} kernel's pages",
            args.align.as_deref().unwrap_or("")
        ));
    }
    let slots = Slots {
        first: window.start.next_multiple_of(window.align),
        align: window.align,
        count: window.slots(image_size),
    };
    Ok((window, slots))
}

/// The kernel command line that gives every boot the swept window.
fn kaslr_options(args: &SweepArgs) -> Vec<String> {
    let mut append = Vec::new();
    if let Some(w) = &args.window {
        append.push(format!("kaslr.window={w}"));
    }
    if let Some(a) = &args.align {
        append.push(format!("kaslr.align={a}"));
    }
    append
}

/// Runs `one(i)` for `i` in `0..boots`, `jobs` at once (each a boot); the
/// results in no particular order. The first failure stops the boots not
/// yet started and is the error.
fn boot_all<T: Send>(boots: u64, jobs: u64, one: impl Fn(u64) -> Result<T, String> + Sync) -> Result<Vec<T>, String> {
    // A progress bar on a terminal only: in a log it would be noise.
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= boots || failure.lock().unwrap().is_some() {
                        break;
                    }
                    match one(i) {
                        Ok(va) => results.lock().unwrap().push(va),
                        Err(e) => *failure.lock().unwrap() = Some(format!("boot {i}: {e}")),
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if progress {
                        let filled = (n * 30 / boots) as usize;
                        eprint!(
                            "\rsweep: [{}{}] {n}/{boots}",
                            "#".repeat(filled),
                            ".".repeat(30 - filled)
                        );
                    }
                }
            });
        }
    });
    if progress {
        eprintln!();
    }
    match failure.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(results.into_inner().unwrap()),
    }
}

/// One boot to the prompt and off: where its boot line says the text is.
fn text_va(boot: &Boot, artifacts: &Artifacts) -> Result<u64, String> {
    let command = qemu::command(&qemu::qemu_args(boot, artifacts));
    let transcript = session::run(command, &[], Duration::from_secs(60), |_| {}).map_err(|e| e.to_string())?;
    if !transcript.outcome.success() {
        return Err(transcript.outcome.reason());
    }
    splitmap::boot_line::placement(&transcript.output)
        .map(|at| at.va)
        .ok_or("no boot line".to_string())
}

/// What the boots found: the window, the placements, the histogram, the test.
fn print_summary(summary: &Summary, window: &Window, slots: Slots) {
    let tenths = window::entropy_tenths(slots.count);
    println!(
        "window {:#x}-{:#x} align {:#x}: {} slots, {}.{} bits",
        window.start,
        window.end,
        window.align,
        slots.count,
        tenths / 10,
        tenths % 10
    );
    println!(
        "placements: {} distinct (expected {:.1}), min {:#x}, max {:#x}, off the slot grid {}",
        summary.distinct, summary.expected_distinct, summary.min, summary.max, summary.off_grid
    );
    print_spread(summary, "low to high");
}

/// `sweep --uefi`: boot `i` under EDK2 with `efistub.seed=`[`stats::seed`]`(i)`
/// (reproducible, like the virtual sweep); each boot's `efi` says which slot
/// the stub took of how many. Every boot must see the same number of slots
/// (the same firmware and RAM give the same memory map), else the chart
/// would mix two sets of places.
fn sweep_uefi(args: &SweepArgs) -> Result<(), String> {
    let granule = &args.kernel.granule;
    let artifacts = Artifacts::for_granule(granule)?;
    let boot = Boot {
        console: Console::Piped,
        cpu: qemu::cpu_for(granule, qemu::Accel::Tcg).to_string(),
        uefi: Some(qemu::Uefi {
            firmware: splitmap::efi_output::firmware()?,
            rng: true,
            disk: None,
        }),
        ..Boot::default()
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
        .min(args.boots);
    let started = Instant::now();
    let placed = boot_all(args.boots, jobs, |i| {
        let seeded = Boot {
            append: format!("efistub.seed={:#x}", stats::seed(i)),
            ..boot.clone()
        };
        efi_placement(&seeded, &artifacts)
    })?;
    let total = placed[0].2;
    if let Some(other) = placed.iter().find(|p| p.2 != total) {
        return Err(format!(
            "the boots saw different memory maps ({total} and {} slots): the chart would mix them",
            other.2
        ));
    }
    let slots = Slots {
        first: 0,
        align: 1,
        count: total,
    };
    let indices: Vec<u64> = placed.iter().map(|p| p.1).collect();
    let summary = stats::summarise(&indices, slots, args.bins);
    let (low, high) = (
        placed.iter().map(|p| p.0).min().unwrap_or(0),
        placed.iter().map(|p| p.0).max().unwrap_or(0),
    );
    println!(
        "sweep: {} boots under UEFI in {:.1} s ({jobs} jobs)",
        summary.boots,
        started.elapsed().as_secs_f64()
    );
    let tenths = window::entropy_tenths(total);
    println!(
        "efi slots: {total} page-aligned places in conventional memory, {}.{} bits",
        tenths / 10,
        tenths % 10
    );
    println!(
        "placements: {} distinct (expected {:.1}), pa min {low:#x}, pa max {high:#x}",
        summary.distinct, summary.expected_distinct
    );
    print_spread(&summary, "low to high slot");
    let svg = stats::svg_along(
        &summary,
        slots,
        0,
        total,
        "EFI slot: the image's page-aligned places in conventional memory, low to high",
    );
    splitmap::output::write_whole(&args.svg, svg)?;
    println!("svg: {}", args.svg.display());
    if summary.off_grid > 0 {
        return Err(format!("{} slots were outside the count", summary.off_grid));
    }
    Ok(())
}

/// One boot under UEFI to the prompt, `efi`, and off: the image's physical
/// address, its slot and the number of slots (`placement pa=… slot=… slots=…`).
fn efi_placement(boot: &Boot, artifacts: &Artifacts) -> Result<(u64, u64, u64), String> {
    let command = qemu::command(&qemu::qemu_args(boot, artifacts));
    let transcript =
        session::run(command, &["efi".to_string()], Duration::from_secs(60), |_| {}).map_err(|e| e.to_string())?;
    if !transcript.outcome.success() {
        return Err(transcript.outcome.reason());
    }
    let line = transcript
        .output
        .lines()
        .find_map(|l| l.trim_start_matches('\r').strip_prefix("placement "))
        .ok_or("no placement line in efi's output")?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            })
            .ok_or(format!("no {key} in: {line}"))
    };
    Ok((field("pa=")?, field("slot=")?, field("slots=")?))
}

/// The histogram of where the boots landed (bins ordered as `order` says)
/// and the chi-squared test of its uniformity: the lines every sweep prints.
fn print_spread(summary: &Summary, order: &str) {
    let bins: Vec<String> = summary.histogram.iter().map(u64::to_string).collect();
    println!("histogram ({} bins, {order}): {}", bins.len(), bins.join(" "));
    println!(
        "chi2 = {:.2} with {} dof, p = {:.3} ({})",
        summary.chi2,
        summary.dof,
        summary.p_value,
        summary.verdict()
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn sweep_args(line: &[&str]) -> SweepArgs {
        match crate::Cli::parse_from(line).command {
            Some(crate::Cmd::Sweep(args)) => args,
            _ => panic!("{line:?} is no sweep"),
        }
    }

    #[test]
    fn a_sweep_boots_the_machine_it_is_given() {
        let artifacts = Artifacts::for_granule("4k").unwrap();
        let virt = qemu::qemu_args(&swept_boot(&sweep_args(&["splitmap", "sweep"])).unwrap(), &artifacts);
        assert!(virt.windows(2).any(|w| w == ["-machine", "virt"]), "{virt:?}");
        assert!(!virt.iter().any(|a| a == "-dtb"), "{virt:?}");
        let boot = swept_boot(&sweep_args(&["splitmap", "sweep", "--machine", "raspi3b"])).unwrap();
        let pi = qemu::qemu_args(&boot, &artifacts);
        assert!(pi.windows(2).any(|w| w == ["-machine", "raspi3b"]), "{pi:?}");
        assert!(pi.windows(2).any(|w| w == ["-smp", "4"]), "{pi:?}");
        assert!(pi.iter().any(|a| a == "-dtb"), "{pi:?}");
        splitmap::machine::remove_trees(&machines::trees_dir());
        let refused = machine(&sweep_args(&[
            "splitmap",
            "sweep",
            "--machine",
            "raspi3b",
            "--granule",
            "16k",
        ]));
        assert!(refused.unwrap_err().contains("no 16 KiB granule"));
        // --smp as run takes it: QEMU's CPUs on virt, maxcpus= on the Pi.
        let four = qemu::qemu_args(
            &swept_boot(&sweep_args(&["splitmap", "sweep", "--smp", "4"])).unwrap(),
            &artifacts,
        );
        assert!(four.windows(2).any(|w| w == ["-smp", "4"]), "{four:?}");
        let boot = swept_boot(&sweep_args(&[
            "splitmap",
            "sweep",
            "--machine",
            "raspi3b",
            "--smp",
            "2",
        ]))
        .unwrap();
        assert_eq!(boot.smp, 4);
        assert!(boot.append.ends_with("maxcpus=2"), "{}", boot.append);
        splitmap::machine::remove_trees(&machines::trees_dir());
        let too_many = machine(&sweep_args(&["splitmap", "sweep", "--smp", "9"]));
        assert!(too_many.unwrap_err().contains("1 to 8"));
    }
}
