//! `splitmap bench`: the boots behind the tables `src/bench.rs` computes
//! and writes (part of the binary, since it drives `run`'s options).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use splitmap::bench::{self, BootRow, ModuleLoad, Phases, Results};
use splitmap::machine::Machine;
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

/// The tables `--only` names.
const TABLES: [&str; 5] = ["instructions", "wall", "linear", "pie", "modules"];

/// Refuses, with exit status 2, what the bench cannot measure: a table it
/// does not have, and a table other than instructions on a boot other than
/// the default one (the null kernel powers off through `virt`'s PSCI, the
/// linear map and the PIE comparison are `virt`'s 1 GiB base, the modules
/// table is the default boot's), and the machine's own limits.
pub fn check(args: &BenchArgs) -> Result<(), String> {
    if let Some(bad) = args.only.iter().find(|t| !TABLES.contains(&t.as_str())) {
        return Err(format!("--only {bad}: say one of {}", TABLES.join(", ")));
    }
    let machine = Machine::parse(&args.machine)?;
    if machine == Machine::Raspi3b {
        if args.uefi {
            return Err("--uefi boots EDK2 built for virt; raspi3b has no UEFI firmware here: drop --uefi".into());
        }
        // Its granules are 4K and 64K, both measured.
        machine.check(splitmap::machine::RASPI3B_MEM, args.smp, "4k", None)?;
    } else {
        machine.check(1 << 30, args.smp, "4k", None)?;
    }
    let options: Vec<String> = [
        (machine != Machine::Virt).then(|| format!("--machine {}", machine.name())),
        args.uefi.then(|| "--uefi".to_string()),
        args.smp.map(|n| format!("--smp {n}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(table) = args.only.iter().find(|t| *t != "instructions")
        && !options.is_empty()
    {
        return Err(format!(
            "--only {table} with {}: only the instructions table is measured on another machine, under UEFI or with secondaries (the null kernel powers off through virt's PSCI; the linear map, the PIE and the modules tables are the default boot's); drop {} or say --only instructions",
            options.join(" "),
            options.join(", ")
        ));
    }
    Ok(())
}

/// `splitmap bench`.
pub fn bench(args: &BenchArgs) -> Result<(), String> {
    check(args)?;
    let default_boot = args.machine == "virt" && !args.uefi && args.smp.is_none();
    let wanted = |table: &str| {
        (args.only.is_empty() && (default_boot || table == "instructions")) || args.only.iter().any(|t| t == table)
    };
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
        results.boots = instruction_counts(args)?;
        if default_boot {
            results.boots.extend(other_trees(&out_dir)?);
        }
    }
    if wanted("wall") {
        wall_against_null(args.quick, &out_dir, &mut results)?;
        results.prompt_blocks = Some(prompt_blocks(&out_dir)?);
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
/// size of RAM, KASLR off and on, on the machine (UEFI, CPUs) `args` say.
fn instruction_counts(args: &BenchArgs) -> Result<Vec<BootRow>, String> {
    let raspi = args.machine == "raspi3b";
    let sizes: &[&str] = if args.quick || raspi {
        &["1G"]
    } else {
        &["512M", "1G", "4G", "8G"]
    };
    let granules: &[&str] = match (args.quick, raspi) {
        (true, _) => &["4k"],
        // The Pi's Cortex-A53 has no 16 KiB granule.
        (false, true) => &["4k", "64k"],
        (false, false) => &["4k", "16k", "64k"],
    };
    let mut label = args.machine.clone();
    if args.uefi {
        label.push_str(", UEFI");
    }
    if let Some(n) = args.smp {
        label.push_str(&format!(", --smp {n}"));
    }
    let mut counts = Vec::new();
    for granule in granules {
        for mem in sizes {
            for kaslr in [false, true] {
                let mut run = bench_boot(mem, kaslr, "", &["phases"]);
                run.boot.kernel.granule = granule.to_string();
                run.boot.machine = args.machine.clone();
                run.boot.smp = args.smp;
                run.uefi = args.uefi;
                if args.uefi {
                    // EDK2 runs millions of instructions before the kernel.
                    run.timeout = Some(300);
                }
                counts.push(BootRow {
                    machine: label.clone(),
                    granule: granule.to_uppercase(),
                    ram: mem.to_string(),
                    kaslr,
                    phases: phases_of(&run)?,
                });
            }
        }
    }
    Ok(counts)
}

/// The same boot (4K, 1 GiB, KASLR off) reading other trees: one of many
/// RAM ranges and reservations (`bench::ranges_tree`, handed over raw),
/// and the second board's.
fn other_trees(out_dir: &Path) -> Result<Vec<BootRow>, String> {
    let tree = out_dir.join("ranges-tree.dtb");
    std::fs::write(&tree, bench::ranges_tree()).map_err(|e| format!("{}: {e}", tree.display()))?;
    let mut raw = bench_boot("1G", false, "", &["phases"]);
    // The tree's bootargs say nokaslr: --raw-dtb takes no command line.
    raw.boot.nokaslr = false;
    raw.raw_dtb = Some(tree);
    let mut raspi = bench_boot("1G", false, "", &["phases"]);
    raspi.boot.machine = "raspi3b".into();
    let row = |machine: String, run: &RunArgs| -> Result<BootRow, String> {
        Ok(BootRow {
            machine,
            granule: "4K".into(),
            ram: "1G".into(),
            kaslr: false,
            phases: phases_of(run)?,
        })
    };
    Ok(vec![
        row(
            format!(
                "virt, {} RAM ranges and {} reservations (raw tree)",
                bench::TREE_RANGES,
                bench::TREE_RESERVATIONS
            ),
            &raw,
        )?,
        row("raspi3b".into(), &raspi)?,
    ])
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
    let probes = bench::tcg_probes();
    let mut probe_args = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let image = out_dir.join(format!("probe-{i}-Image"));
        std::fs::write(&image, bench::null_kernel_running(&probe.code))
            .map_err(|e| format!("{}: {e}", image.display()))?;
        probe_args.push(with_image(&run, &image)?);
    }
    let out = out_dir.join("wall-boot.txt");
    // At least 15 pairs for the spread of the ratio the issue asks for.
    let pairs = if quick { 3 } else { 20 };
    let (mut null_boots, mut kernel_boots) = (Vec::new(), Vec::new());
    let mut probe_boots: Vec<Vec<TimedBoot>> = probes.iter().map(|_| Vec::new()).collect();
    for _ in 0..pairs {
        for (args, boots) in probe_args.iter().zip(&mut probe_boots) {
            boots.push(timed_boot(args, &out)?);
        }
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
    let ratios: Vec<f64> = null_boots
        .iter()
        .zip(&kernel_boots)
        .map(|(n, k)| k.wall.as_secs_f64() / n.wall.as_secs_f64().max(1e-9))
        .collect();
    let (null_wall, null_cpu) = (wall(&null_boots), cpu(&null_boots));
    results.wall = Some(bench::Wall {
        null: null_wall,
        kernel: wall(&kernel_boots),
        pairs,
        ratio: bench::spread_of(&ratios),
    });
    results.cpu = Some((null_cpu, cpu(&kernel_boots)));
    results.tcg_costs = probes
        .iter()
        .zip(&probe_boots)
        .map(|(probe, boots)| {
            let units = probe.code.len() as u64;
            bench::TcgCost {
                what: probe.what.into(),
                units,
                boots: boots.len(),
                wall_us: (wall(boots).median - null_wall.median) * 1e6 / units as f64,
                user_us: (cpu(boots).user - null_cpu.user) * 1e6 / units as f64,
            }
        })
        .collect();
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

/// The blocks QEMU translated from the first instruction to the prompt
/// (4K, 1 GiB, KASLR off, no `-icount`, as the wall-time boots), by
/// function: the log as it stood when the prompt appeared (QEMU writes
/// each block out as it translates it, and nothing is typed before the
/// prompt), named by the kernel's ELF.
fn prompt_blocks(out_dir: &Path) -> Result<bench::blocks::PromptBlocks, String> {
    use bench::blocks;
    let mut run = bench_boot("1G", false, "", &[]);
    run.icount = false;
    let (_, mut args) = boot_of(&run, Console::Piped)?;
    let log = out_dir.join("prompt-in_asm.log");
    args.extend(["-d".into(), "in_asm".into(), "-D".into(), log.display().to_string()]);
    let mut seen = Vec::new();
    let mut cut = None;
    let t = session::run(qemu::command(&args), &[], Duration::from_secs(60), |chunk| {
        seen.extend_from_slice(chunk);
        if cut.is_none() && String::from_utf8_lossy(&seen).contains(session::PROMPT) {
            cut = std::fs::metadata(&log).ok().map(|m| m.len());
        }
    })
    .map_err(|e| format!("cannot start {}: {e}", qemu::QEMU))?;
    if !t.outcome.success() {
        return Err(format!("the boot failed: {}\n{}", t.outcome.reason(), t.output));
    }
    let cut = cut.ok_or_else(|| format!("no prompt in:\n{}", t.output))?;
    let text = std::fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let text = String::from_utf8_lossy(&text[..(cut as usize).min(text.len())]).into_owned();
    let at = splitmap::boot_line::placement(&t.output).ok_or_else(|| format!("no boot line in:\n{}", t.output))?;
    let elf = Artifacts::built().elf;
    let symbols = blocks::Symbols::of_elf(&std::fs::read(&elf).map_err(|e| format!("{}: {e}", elf.display()))?)?;
    let translated = blocks::blocks(&text);
    Ok(blocks::PromptBlocks {
        total: translated.len() as u64,
        instructions: translated.iter().map(|b| b.instructions).sum(),
        functions: blocks::per_function(&translated, &symbols, at),
    })
}

/// Phase by phase, KASLR off then on: instructions (from `counted`, the
/// instructions table, if it has the 4K 1 GiB boot) and the median wall
/// time of `boots` boots. Instructions need -icount, wall time needs it off.
fn wall_phases(boots: usize, counted: &[BootRow]) -> Result<Vec<(bool, Phases, Phases)>, String> {
    let mut phases = Vec::new();
    for kaslr in [false, true] {
        let instructions = match counted
            .iter()
            .find(|r| r.machine == "virt" && r.granule == "4K" && r.ram == "1G" && r.kaslr == kaslr)
        {
            Some(row) => row.phases.clone(),
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
