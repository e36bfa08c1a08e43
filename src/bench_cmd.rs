//! `splitmap bench`: the boots behind the tables `src/bench.rs` computes
//! and writes (part of the binary, since it drives `run`'s options).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use splitmap::bench::{self, ModuleLoad, Phases, Results};
use splitmap::qemu::{self, Artifacts, Console};
use splitmap::session;
use splitmap::watchdog::{self, Watchdog};

use crate::boots::{boot_of, script_output, transcript_of};
use crate::{BenchArgs, Cli, Cmd, RunArgs};

/// A scripted boot's options: `mem` of RAM, KASLR off or with a fixed seed,
/// `--icount`, typing `cmds`.
fn bench_boot(mem: &str, kaslr: bool, append: &str, cmds: &[&str]) -> RunArgs {
    let mut args = Cli::parse_from(["splitmap", "run"]).command;
    let Some(Cmd::Run(mut run)) = args.take() else {
        unreachable!("`run` parses as the run command")
    };
    run.boot.mem = mem.to_string();
    // Counting instructions (-icount) slows a boot down several times.
    run.timeout = Some(120);
    run.icount = true;
    run.boot.nokaslr = !kaslr;
    run.boot.kaslr_seed = kaslr.then(|| "0x5".to_string());
    run.append = append.to_string();
    run.cmds = cmds.iter().map(|c| c.to_string()).collect();
    run
}

/// `splitmap bench`.
pub fn bench(args: &BenchArgs) -> Result<(), String> {
    let known = ["instructions", "wall", "linear", "pie", "modules"];
    if let Some(bad) = args.only.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(format!("--only {bad}: say one of {}", known.join(", ")));
    }
    let wanted = |table: &str| args.only.is_empty() || args.only.iter().any(|t| t == table);
    if let Some(path) = &args.output {
        splitmap::output::check_writable(path)?;
    }
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut results = Results {
        machine: machine(),
        ..Results::default()
    };
    if wanted("instructions") {
        results.boots = instruction_counts(args.quick)?;
    }
    if wanted("wall") {
        wall_against_null(args.quick, &out_dir, &mut results)?;
        let boots = if args.quick { 1 } else { 9 };
        results.wall_phases = wall_phases(boots, &results.boots)?;
        results.wall_phase_boots = boots;
    }
    if wanted("linear") {
        results.linear = linear_costs();
    }
    if wanted("pie") {
        results.pie = Some(pie_cost(&out_dir)?);
    }
    if wanted("modules") {
        results.modules = module_loads(args.quick)?;
    }
    write_results(&results, args.output.as_deref(), &out_dir)
}

/// Where the figures come from: QEMU's version and the host.
fn machine() -> String {
    let qemu_version = Command::new(qemu::QEMU)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    format!(
        "{qemu_version}, TCG, cortex-a72 (max for 16K pages); host {} with {} CPUs",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// Instructions per phase of a boot to the prompt, for each granule and
/// size of RAM, KASLR off and on: (granule, RAM, KASLR on, phases).
fn instruction_counts(quick: bool) -> Result<Vec<(String, String, bool, Phases)>, String> {
    let sizes: &[&str] = if quick { &["1G"] } else { &["512M", "1G", "4G", "8G"] };
    let granules: &[&str] = if quick { &["4k"] } else { &["4k", "16k", "64k"] };
    let mut counts = Vec::new();
    for granule in granules {
        for mem in sizes {
            for kaslr in [false, true] {
                let mut run = bench_boot(mem, kaslr, "", &["phases"]);
                run.boot.kernel.granule = granule.to_string();
                counts.push((granule.to_uppercase(), mem.to_string(), kaslr, phases_of(&run)?));
            }
        }
    }
    Ok(counts)
}

/// Fills in `results`' wall time of boots to the prompt and off against a
/// null kernel's, in interleaved pairs, the CPU time QEMU spent on them,
/// and the code it translated for each.
fn wall_against_null(quick: bool, out_dir: &Path, results: &mut Results) -> Result<(), String> {
    let null = out_dir.join("null-Image");
    std::fs::write(&null, bench::null_kernel()).map_err(|e| format!("{}: {e}", null.display()))?;
    let mut run = bench_boot("1G", false, "", &["poweroff"]);
    run.icount = false;
    let (_, kernel_args) = boot_of(&run, Console::Piped)?;
    let null_args = with_image(&run, &null)?;
    let out = out_dir.join("wall-boot.txt");
    let pairs = if quick { 3 } else { 20 };
    let (mut null_boots, mut kernel_boots) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        null_boots.push(timed_boot(&null_args, &out)?);
        let boot = timed_boot(&kernel_args, &out)?;
        if !boot.printed.contains(session::PROMPT) || !boot.printed.contains("powering off") {
            return Err(format!(
                "splitmap did not reach the prompt and power off:\n{}",
                boot.printed
            ));
        }
        kernel_boots.push(boot);
    }
    let wall = |boots: &[TimedBoot]| bench::spread(&boots.iter().map(|b| b.wall).collect::<Vec<_>>());
    let cpu = |boots: &[TimedBoot]| bench::CpuTime {
        user: bench::spread(&boots.iter().map(|b| b.user).collect::<Vec<_>>()).median,
        system: bench::spread(&boots.iter().map(|b| b.system).collect::<Vec<_>>()).median,
    };
    results.wall = Some((wall(&null_boots), wall(&kernel_boots), pairs));
    results.cpu = Some((cpu(&null_boots), cpu(&kernel_boots)));
    // Where the time goes under TCG: translating code run for the first time.
    let log = out_dir.join("in_asm.log");
    let with_log = |args: &[String]| {
        let mut args = args.to_vec();
        args.extend(["-d".into(), "in_asm".into(), "-D".into(), log.display().to_string()]);
        args
    };
    timed_boot(&with_log(&null_args), &out)?;
    let null_translated = bench::translated(&std::fs::read_to_string(&log).unwrap_or_default());
    timed_boot(&with_log(&kernel_args), &out)?;
    let kernel_translated = bench::translated(&std::fs::read_to_string(&log).unwrap_or_default());
    results.translated = Some((null_translated, kernel_translated));
    Ok(())
}

/// Phase by phase, KASLR off then on: instructions (from `counted`, the
/// instructions table, if it has the 4K 1 GiB boot) and the median wall
/// time of `boots` boots. Instructions need -icount, wall time needs it off.
fn wall_phases(
    boots: usize,
    counted: &[(String, String, bool, Phases)],
) -> Result<Vec<(bool, Phases, Phases)>, String> {
    let mut phases = Vec::new();
    for kaslr in [false, true] {
        let instructions = match counted
            .iter()
            .find(|(g, m, k, _)| g == "4K" && m == "1G" && *k == kaslr)
        {
            Some((_, _, _, phases)) => phases.clone(),
            None => phases_of(&bench_boot("1G", kaslr, "", &["phases"]))?,
        };
        let mut timed = bench_boot("1G", kaslr, "", &["phases"]);
        timed.icount = false;
        let micros = (0..boots).map(|_| phases_of(&timed)).collect::<Result<Vec<_>, _>>()?;
        let micros = bench::median_phases(&micros).expect("at least one boot");
        phases.push((kaslr, instructions, micros));
    }
    Ok(phases)
}

/// The linear map of 1, 4 and 8 GiB in each granule, in the largest blocks
/// and in pages: (granule, RAM bytes, largest blocks, cost).
fn linear_costs() -> Vec<(&'static str, u64, bool, bench::LinearCost)> {
    let mut costs = Vec::new();
    for (name, granule) in bench::GRANULES {
        for gib in [1u64, 4, 8] {
            for largest in [true, false] {
                costs.push((
                    name,
                    gib << 30,
                    largest,
                    bench::linear_cost(granule, gib << 30, largest),
                ));
            }
        }
    }
    costs
}

/// What `insmod` of sample modules cost, loaded near the kernel and far
/// from it: as the kernel counted it (the whole `insmod`, and the loader's
/// share up to `init_module`), and the relocations of each `.ko`.
fn module_loads(quick: bool) -> Result<Vec<ModuleLoad>, String> {
    let names: &[&str] = if quick {
        &["hello", "farcalls"]
    } else {
        &["hello", "data", "farcalls", "pingpong"]
    };
    let dir = Artifacts::built()
        .initrd
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut loads = Vec::new();
    for far in [false, true] {
        let cmds: Vec<String> = names.iter().map(|n| format!("insmod {n}")).collect();
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        let append = if far { "module.region=far" } else { "" };
        let out = transcript_of(&bench_boot("1G", false, append, &cmds))?;
        for name in names {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} base=")) && l.contains(" instructions="))
                .ok_or_else(|| format!("insmod {name} printed no counted line:\n{out}"))?;
            let field = |key: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let ko = dir.join(format!("{name}.ko"));
            let ko = std::fs::read(&ko).map_err(|e| format!("{}: {e}", ko.display()))?;
            let (relocations, far_targets) = bench::ko_stats(&ko)?;
            loads.push(ModuleLoad {
                name: name.to_string(),
                far,
                relocations,
                slots: field("slots"),
                veneers: field("plt"),
                far_targets,
                instructions: field("instructions"),
                loader_instructions: field("loader_instructions"),
            });
        }
    }
    Ok(loads)
}

/// Prints the tables and writes them to `output`, or without it as
/// Markdown and JSON under `out_dir`.
fn write_results(results: &Results, output: Option<&Path>, out_dir: &Path) -> Result<(), String> {
    let markdown = results.markdown();
    print!("{markdown}");
    match output {
        Some(path) => splitmap::output::write_whole(path, &markdown)?,
        None => {
            let md = out_dir.join("bench.md");
            let json = out_dir.join("bench.json");
            splitmap::output::write_whole(&md, format!("Measured on {}.\n\n{markdown}", results.machine))?;
            splitmap::output::write_whole(&json, format!("{:#}\n", results.json()))?;
            println!("bench: {} and {}", md.display(), json.display());
        }
    }
    Ok(())
}

/// What `phases` printed in a scripted boot: instructions under
/// `--icount`, wall time without.
fn phases_of(run: &RunArgs) -> Result<Phases, String> {
    phases_in(&transcript_of(run)?, if run.icount { "instructions" } else { "us" })
}

/// What `phases` printed in `out`, which must be in `unit`: a table of
/// instructions must not take wall time by mistake, nor the other way round.
fn phases_in(out: &str, unit: &str) -> Result<Phases, String> {
    bench::parse_phases(out)
        .filter(|p| p.unit == unit)
        .ok_or_else(|| format!("no phases in {unit} in:\n{out}"))
}

/// How long one timed boot may take before it counts as hung (a boot takes
/// tens of milliseconds).
const TIMED_BOOT_LIMIT: Duration = Duration::from_secs(60);

/// One boot for the wall clock: how long it took, the CPU time QEMU used,
/// and what it printed.
struct TimedBoot {
    wall: Duration,
    user: Duration,
    system: Duration,
    printed: String,
}

/// One boot for the wall clock, timed from start to exit, with `poweroff`
/// waiting in its serial input from the start and its output going to the
/// file `out`: the same for either kernel, and no round trip through this
/// process while the clock runs. QEMU is stopped, and the boot is an error,
/// after [`TIMED_BOOT_LIMIT`].
fn timed_boot(args: &[String], out: &Path) -> Result<TimedBoot, String> {
    use std::io::Write;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let start = std::time::Instant::now();
    let mut child = qemu::command(args)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu::QEMU))?;
    // Dropping the pipe after the line is fine: QEMU reads what it holds.
    let typed = child.stdin.take().map(|mut stdin| stdin.write_all(b"poweroff\r"));
    // Waiting here, unreaped, keeps the clock exact and the watchdog safe.
    let watchdog = Watchdog::start(child.id(), TIMED_BOOT_LIMIT, libc::SIGKILL);
    let exited = watchdog::wait_for_exit(child.id());
    let wall = start.elapsed();
    let hung = watchdog.stop();
    if let Err(e) = exited {
        // Still our unreaped child, so the signal reaches QEMU and no other.
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("waiting for {}: {e}", qemu::QEMU));
    }
    let (status, (user, system)) =
        watchdog::reap_with_cpu_time(child.id()).map_err(|e| format!("{}: {e}", qemu::QEMU))?;
    typed
        .transpose()
        .map_err(|e| format!("cannot type into {}: {e}", qemu::QEMU))?;
    let printed = std::fs::read_to_string(out).unwrap_or_default();
    if hung {
        return Err(format!(
            "{} did not power off within {} s:\n{printed}",
            qemu::QEMU,
            TIMED_BOOT_LIMIT.as_secs()
        ));
    }
    if !status.success() {
        return Err(format!("{} exited with {status}:\n{printed}", qemu::QEMU));
    }
    Ok(TimedBoot {
        wall,
        user,
        system,
        printed,
    })
}

/// QEMU's arguments for `run` with `image` in place of the kernel's Image.
fn with_image(run: &RunArgs, image: &Path) -> Result<Vec<String>, String> {
    let (_, args) = boot_of(run, Console::Piped)?;
    let ours = Artifacts::built().image.display().to_string();
    Ok(args
        .into_iter()
        .map(|a| if a == ours { image.display().to_string() } else { a })
        .collect())
}

/// The kernel linked statically as well as a PIE, compared (see
/// kernel/build.rs, SPLITMAP_STATIC_LINK).
fn pie_cost(out_dir: &Path) -> Result<bench::Pie, String> {
    use splitmap::bench::Pie;
    use splitmap::kbuild;

    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let one = PathBuf::from("1");
    let built = kbuild::cargo_build(
        &cargo,
        &workspace,
        &out_dir.join("static-kernel"),
        "splitmap-kernel",
        &[],
        &[("SPLITMAP_STATIC_LINK", &one)],
    )?;
    let static_elf = built.executable("splitmap-kernel")?;
    let static_image = kbuild::kernel_image(&static_elf)?;
    let static_path = out_dir.join("static-Image");
    std::fs::write(&static_path, &static_image).map_err(|e| format!("{}: {e}", static_path.display()))?;

    let artifacts = Artifacts::built();
    let pie_elf = std::fs::read(&artifacts.elf).map_err(|e| format!("{}: {e}", artifacts.elf.display()))?;
    let pie_image = std::fs::metadata(&artifacts.image).map_err(|e| e.to_string())?.len();
    let phases_with = |args: Vec<String>, cmds: &[String]| -> Result<(bench::Phases, String), String> {
        let out = script_output(&args, cmds, Duration::from_secs(120))?;
        Ok((phases_in(&out, "instructions")?, out))
    };
    let fixed = bench_boot("1G", false, "", &["phases"]);
    let (pie, _) = phases_with(with_image(&fixed, &artifacts.image)?, &fixed.cmds)?;
    let (stat, _) = phases_with(with_image(&fixed, &static_path)?, &fixed.cmds)?;
    let moving = bench_boot("1G", true, "", &["phases", "kaslr"]);
    let (moved, out) = phases_with(with_image(&moving, &artifacts.image)?, &moving.cmds)?;
    let relocations = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("relocations="))
        .and_then(|n| n.parse().ok())
        .ok_or("`kaslr` said no relocations=")?;
    let kaslr_phase = |p: &bench::Phases| p.phases.iter().find(|(n, _)| n == "kaslr").map_or(0, |(_, c)| *c);
    Ok(Pie {
        text: (
            bench::section_size(&pie_elf, ".text")?,
            bench::section_size(&static_elf, ".text")?,
        ),
        image: (pie_image, static_image.len() as u64),
        instructions: (pie.total, stat.total),
        relr_bytes: bench::section_size(&pie_elf, ".relr.dyn")?,
        relocations,
        relocating: kaslr_phase(&moved).saturating_sub(kaslr_phase(&pie)),
        kaslr_total: moved.total,
    })
}
