//! `splitmap`: build the kernel and run it under QEMU. `cargo run` = `splitmap run`.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use splitmap::qemu::{self, Artifacts, Boot, Console};
use splitmap::session;
use splitmap::watchdog::Watchdog;

mod bench_cmd;

#[derive(Parser)]
#[command(
    name = "splitmap",
    version,
    about = "Boot the splitmap arm64 kernel under QEMU and explore its memory layout"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot in QEMU `virt` with the serial console on this terminal (the default).
    Run(RunArgs),
    /// Boot many times with different KASLR seeds and show where the image lands:
    /// distinct placements, coverage, a chi-squared uniformity test and an SVG
    /// histogram.
    Sweep(SweepArgs),
    /// Print the paths of the built artifacts: image, elf, initrd (a cpio of
    /// the sample modules) and boot (the stage-0 loader behind --load-addr).
    Build(BuildArgs),
    /// Attach gdb-multiarch to a kernel started with `run --gdb`, with the
    /// kernel's symbols loaded where KASLR put it and each loaded module's at
    /// its sections, or with --early at the physical address it starts at
    /// (scripts/gdb/splitmap.py: sm-boot, sm-early, sm-link, sm-symbols, sm-kaslr,
    /// sm-layout, sm-walk).
    Gdb(GdbArgs),
    /// Draw one boot's address spaces: the kernel's virtual addresses beside
    /// physical memory, a band for every mapping between them (SVG), the same
    /// as an HTML page that shows each region's table walk, or the layout as
    /// a Start/End/Size/Use table (Markdown), by the extension of -o.
    Map(MapArgs),
    /// Measure: instructions from the first one to the prompt, per phase
    /// (each granule, 512M to 8G of RAM, KASLR off and on); wall time against
    /// a null kernel, and per phase; the linear map in blocks and in pages; the kernel
    /// linked as a PIE and statically; what loading each module costs, near
    /// and far. Prints the tables and writes them as Markdown and JSON under
    /// target/bench/.
    Bench(BenchArgs),
    /// Pack the `.ko` files of a folder into an initrd (a newc cpio archive),
    /// for `run --initrd`: your own modules, or modified ones.
    Initrd(InitrdArgs),
}

#[derive(Args)]
struct RunArgs {
    /// RAM size: 512M, 1G, 1536M, 4G, 6G, … (a bare number is MiB, as in QEMU)
    #[arg(long, default_value = "1G")]
    mem: String,
    /// Number of CPUs (only the boot CPU runs for now).
    #[arg(long, default_value_t = 1)]
    smp: u32,
    /// Load the kernel at this physical address (page-aligned, in RAM), or
    /// `random`, through the stage-0 loader. Default: QEMU's own placement.
    #[arg(long, value_name = "PA|random")]
    load_addr: Option<String>,
    /// KASLR seed for reproducible experiments (adds kaslr.seed=0xHEX).
    #[arg(long, value_name = "HEX")]
    kaslr_seed: Option<String>,
    /// Keep the image at its link address (adds nokaslr).
    #[arg(long)]
    nokaslr: bool,
    /// Extra kernel command line, e.g. "loglevel=debug".
    #[arg(long, value_name = "BOOTARGS", default_value = "")]
    append: String,
    /// Type this line at the prompt (repeatable); print everything and exit
    /// when the kernel powers off (`poweroff` is sent last if missing).
    #[arg(long = "cmd", value_name = "LINE")]
    cmds: Vec<String>,
    /// Give up after this many seconds (default 60 with --cmd, none
    /// interactively or with --gdb; 0 means none). Interactively QEMU is
    /// stopped and the terminal given back.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Wait for gdb before the first instruction; attach with `splitmap gdb`
    /// in another terminal. No timeout unless --timeout says one.
    #[arg(long)]
    gdb: bool,
    /// The port QEMU waits for gdb on.
    #[arg(long, value_name = "PORT", default_value_t = 1234, value_parser = clap::value_parser!(u16).range(1..))]
    gdb_port: u16,
    /// Count instructions exactly (QEMU -icount): `phases`, `kaslr` and
    /// `insmod` then say how many boot, the relocation and a load took. Slower.
    #[arg(long)]
    icount: bool,
    /// Print the QEMU command line before running it.
    #[arg(short, long)]
    verbose: bool,
    /// Boot with this device tree instead of QEMU's.
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// Hand the kernel this device tree exactly as it is, even broken (QEMU's
    /// -dtb fixes trees up and refuses bad ones): it goes in RAM raw and the
    /// stage-0 loader passes it on.
    #[arg(long, value_name = "FILE", conflicts_with = "dtb")]
    raw_dtb: Option<PathBuf>,
    /// Use this initrd (a newc cpio, see `splitmap initrd`) instead of the
    /// one with the sample modules.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Pass an argument to QEMU verbatim (repeatable), e.g. --qemu-arg=-numa.
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    qemu_args: Vec<String>,
    /// Translation granule the kernel is built for: 4k, 16k or 64k (the
    /// first run of a granule builds it, under target/granule-NAME/).
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k")]
    granule: String,
    /// The CPU QEMU emulates (default cortex-a72; `max` with --granule 16k,
    /// since the Cortex-A72 has no 16 KiB granule).
    #[arg(long, value_name = "NAME")]
    cpu: Option<String>,
}

#[derive(Args)]
struct GdbArgs {
    /// The port `run --gdb` waits on.
    #[arg(long, value_name = "PORT", default_value_t = 1234, value_parser = clap::value_parser!(u16).range(1..))]
    gdb_port: u16,
    /// The granule the running kernel was built for (its symbols differ).
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k")]
    granule: String,
    /// Where the `.ko` files of the loaded modules are (default: the samples).
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    /// Run the -ex commands and exit, as gdb -batch does (for scripts and tests).
    #[arg(long)]
    batch: bool,
    /// Stay at the first instruction with the symbols at the physical
    /// address the image runs at before the MMU is on (`sm-early`), instead
    /// of running to where boot has moved the kernel (`sm-boot`); `--ex
    /// sm-link` moves them to the link address, where it runs from the MMU
    /// on until KASLR moves it.
    #[arg(long)]
    early: bool,
    /// A gdb command to run once attached and booted (repeatable).
    #[arg(long = "ex", short = 'x', value_name = "COMMAND", allow_hyphen_values = true)]
    commands: Vec<String>,
}

#[derive(Args)]
struct MapArgs {
    /// FILE.svg, FILE.html or FILE.md.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Draw from a saved transcript (`run --cmd layout --cmd ptdump --cmd
    /// mem --cmd kaslr` and any `walk`s) instead of booting.
    #[arg(long, value_name = "TRANSCRIPT")]
    from: Option<PathBuf>,
    /// How to boot; each --cmd runs before the map's own (e.g. --cmd "insmod hello").
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct BuildArgs {
    /// Build for this translation granule: 4k, 16k or 64k.
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k")]
    granule: String,
}

#[derive(Args)]
struct BenchArgs {
    /// One boot per table and three wall-time pairs: checks that the bench
    /// works (`cargo test` runs it), not what it measures.
    #[arg(long)]
    quick: bool,
    /// Only these tables: instructions, wall, linear, pie, modules (repeatable).
    #[arg(long, value_name = "TABLE")]
    only: Vec<String>,
    /// Write the Markdown tables to this file (and no JSON) instead of
    /// target/bench/bench.md and bench.json; the boots' own files (images,
    /// logs) stay in target/bench/.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct InitrdArgs {
    /// The folder whose `*.ko` files go in, by name.
    dir: PathBuf,
    /// The archive to write.
    #[arg(short, long, default_value = "initrd.cpio")]
    output: PathBuf,
}

#[derive(Args)]
struct SweepArgs {
    /// Number of boots.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    boots: u64,
    /// KASLR window, 0xSTART-0xEND (default: the kernel's, the middle half of
    /// the area above KIMAGE_VADDR).
    #[arg(long, value_name = "0xSTART-0xEND")]
    window: Option<String>,
    /// Placement alignment: 4K, 64K or 2M (default 2M).
    #[arg(long)]
    align: Option<String>,
    /// Boots run at once (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Histogram bins (at least 2: the χ² test compares bins; fewer if the
    /// window has fewer slots).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..))]
    bins: u64,
    /// Where to write the SVG histogram.
    #[arg(long, default_value = "sweep.svg")]
    svg: PathBuf,
    /// Sweep a kernel built for this granule: 4k, 16k or 64k.
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k")]
    granule: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| match Cli::parse_from(["splitmap", "run"]).command {
            Some(run) => run,
            None => unreachable!("`run` parses as the run command"),
        });
    let done = match command {
        Cmd::Build(args) => Artifacts::for_granule(&args.granule).map(|a| {
            println!("image: {}", a.image.display());
            println!("elf: {}", a.elf.display());
            println!("initrd: {}", a.initrd.display());
            println!("boot: {}", a.boot.display());
            ExitCode::SUCCESS
        }),
        Cmd::Gdb(args) => gdb(&args),
        Cmd::Initrd(args) => initrd(&args).map(|names| {
            println!("initrd: {} ({})", args.output.display(), names.join(", "));
            ExitCode::SUCCESS
        }),
        Cmd::Sweep(args) => sweep(args).map(|()| ExitCode::SUCCESS),
        Cmd::Bench(args) => bench_cmd::bench(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Map(args) => map(args).map(|summary| {
            println!("{summary}");
            ExitCode::SUCCESS
        }),
        Cmd::Run(args) => run(args),
    };
    // One rule for every command: 0 when it did what was asked, 1 with the
    // reason on stderr when not (clap's own 2 is for a command line it
    // cannot read).
    done.unwrap_or_else(|message| {
        eprintln!("splitmap: {message}");
        ExitCode::from(1)
    })
}

/// Refuses `run` options that cannot be honoured, before QEMU starts: lines
/// after `poweroff`, and with `--raw-dtb` options the tree would override.
fn check_run(args: &RunArgs) -> Result<(), String> {
    check_script(&args.cmds)?;
    if args.raw_dtb.is_some() {
        let ignored: Vec<&str> = [
            (!args.append.is_empty(), "--append"),
            (args.nokaslr, "--nokaslr"),
            (args.kaslr_seed.is_some(), "--kaslr-seed"),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect();
        if !ignored.is_empty() {
            return Err(format!(
                "--raw-dtb hands the kernel the tree as written, its /chosen/bootargs included: {} would be ignored; put them in the tree's bootargs instead",
                ignored.join(", ")
            ));
        }
    }
    Ok(())
}

fn run(mut args: RunArgs) -> Result<ExitCode, String> {
    check_run(&args)?;
    // Lines piped in are a script: typed one per prompt, then `poweroff`, so
    // the end of the input ends the session instead of leaving QEMU waiting.
    if args.cmds.is_empty() && !std::io::stdin().is_terminal() {
        let input = piped_script()?;
        args.cmds = input.lines().map(str::to_string).collect();
        if args.cmds.is_empty() {
            args.cmds.push("poweroff".into());
        }
        check_script(&args.cmds)?;
    }
    let scripted = !args.cmds.is_empty();
    let console = if scripted { Console::Piped } else { Console::Interactive };
    let (boot, qemu_args) = boot_of(&args, console)?;
    if args.verbose {
        eprintln!("{}", qemu::shell_quoted(qemu::QEMU, &qemu_args));
    }
    if let Some(port) = boot.gdb {
        eprintln!(
            "splitmap: QEMU waits for gdb on port {port}: run `splitmap gdb --gdb-port {port}` (cargo run -- gdb) in another terminal"
        );
    }
    let command = qemu::command(&qemu_args);
    let not_found = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} not found: run scripts/setup.sh", qemu::QEMU),
        _ => format!("cannot start {}: {e}", qemu::QEMU),
    };

    // Someone at a debugger or a keyboard takes the time they take.
    let default = (scripted && boot.gdb.is_none()).then_some(SCRIPT_TIMEOUT);
    let limit = time_limit(args.timeout, default);
    if !scripted {
        return interactive(command, limit).map_err(not_found);
    }
    let timeout = limit.unwrap_or(Duration::MAX);
    let mut stdout = std::io::stdout();
    let transcript = session::run(command, &args.cmds, timeout, |bytes| {
        let _ = stdout.write_all(bytes);
        let _ = stdout.flush();
    })
    .map_err(not_found)?;
    if transcript.outcome.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("splitmap: {}", transcript.outcome.reason());
        Ok(ExitCode::from(1))
    }
}

/// All of standard input, which is not a terminal. Input that stays open
/// (a pipe from a program that never closes it) would keep QEMU from
/// starting without a word: after a moment, say what is awaited.
fn piped_script() -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = String::new();
        let _ = tx.send(std::io::stdin().read_to_string(&mut input).map(|_| input));
    });
    let read = match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(read) => read,
        Err(_) => {
            eprintln!(
                "splitmap: waiting for standard input to end: it is not a terminal, so its lines are the script to type (close it, or use --cmd)"
            );
            rx.recv().map_err(|e| e.to_string())?
        }
    };
    read.map_err(|e| format!("reading standard input: {e}"))
}

/// The boot `args` describe, and QEMU's arguments for it.
fn boot_of(args: &RunArgs, console: Console) -> Result<(Boot, Vec<String>), String> {
    let boot = Boot {
        mem: qemu::parse_size(&args.mem)?,
        smp: args.smp,
        append: args.append.clone(),
        nokaslr: args.nokaslr,
        kaslr_seed: args.kaslr_seed.as_deref().map(qemu::parse_seed).transpose()?,
        load_addr: args.load_addr.as_deref().map(qemu::parse_load_addr).transpose()?,
        gdb: args.gdb.then_some(args.gdb_port),
        icount: args.icount,
        dtb: args.dtb.clone(),
        raw_dtb: args.raw_dtb.as_deref().map(qemu::check_raw_dtb).transpose()?,
        extra: args.qemu_args.clone(),
        console,
        cpu: args
            .cpu
            .clone()
            .unwrap_or_else(|| qemu::cpu_for(&args.granule).to_string()),
    };
    let mut artifacts = Artifacts::for_granule(&args.granule)?;
    if let Some(initrd) = &args.initrd {
        std::fs::metadata(initrd).map_err(|e| format!("--initrd {}: {e}", initrd.display()))?;
        artifacts.initrd = initrd.clone();
    }
    let qemu_args = qemu::qemu_args(&boot, &artifacts);
    Ok((boot, qemu_args))
}

/// Boots as `args` says, types `args.cmds`, and returns what the console
/// printed; an error unless the kernel powered off cleanly.
fn transcript_of(args: &RunArgs) -> Result<String, String> {
    let (_, qemu_args) = boot_of(args, Console::Piped)?;
    let limit = time_limit(args.timeout, Some(SCRIPT_TIMEOUT));
    script_output(&qemu_args, &args.cmds, limit.unwrap_or(Duration::MAX))
}

/// How long a scripted session may take without `--timeout`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The time limit `--timeout` sets, or `default` without it: `--timeout 0`
/// means none, whatever the command.
fn time_limit(timeout: Option<u64>, default: Option<Duration>) -> Option<Duration> {
    match timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => default,
    }
}

/// Runs QEMU with `qemu_args`, types `cmds`, and returns what the console
/// printed; an error unless the kernel powered off cleanly.
fn script_output(qemu_args: &[String], cmds: &[String], timeout: Duration) -> Result<String, String> {
    let t = session::run(qemu::command(qemu_args), cmds, timeout, |_| {})
        .map_err(|e| format!("cannot start {}: {e}", qemu::QEMU))?;
    if !t.outcome.success() {
        return Err(format!("the boot failed: {}\n{}", t.outcome.reason(), t.output));
    }
    Ok(t.output.replace('\r', ""))
}

/// `splitmap map`: boots (or reads a transcript), then draws; a line saying what it wrote.
fn map(mut args: MapArgs) -> Result<String, String> {
    use splitmap::map::{self, draw, page, table};

    let kind = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = kind.as_str();
    if !["svg", "html", "md"].contains(&kind) {
        return Err(format!(
            "-o {}: say FILE.svg, FILE.html or FILE.md",
            args.output.display()
        ));
    }
    splitmap::output::check_writable(&args.output)?;
    if args.from.is_none() {
        check_run(&args.run)?;
        if args.run.cmds.iter().any(|c| c.trim() == "poweroff") {
            return Err(
                "--cmd poweroff: map types layout, ptdump, mem and kaslr after your lines, and powers off itself"
                    .into(),
            );
        }
    }
    let user_cmds = args.run.cmds.clone();
    let transcript = match &args.from {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--from {}: {e}", path.display()))?,
        None => {
            args.run
                .cmds
                .extend(["layout", "ptdump", "mem", "kaslr"].map(String::from));
            transcript_of(&args.run)?
        }
    };
    let mut model = map::parse(&transcript)?;
    if kind == "html" && args.from.is_none() {
        // The same boot again (its seed and load address replayed), walking
        // the first address of every region. A raw tree carries its own seed,
        // or none (RNDR's then differs, and the replay cannot match).
        if !args.run.nokaslr && args.run.kaslr_seed.is_none() && args.run.raw_dtb.is_none() {
            args.run.kaslr_seed = model.kaslr.seed.map(|seed| format!("{seed:#x}"));
        }
        if args.run.load_addr.as_deref() == Some("random") {
            let pa = model.regions.iter().find(|r| r.name == "text").and_then(|r| r.pa);
            args.run.load_addr = pa.map(|(pa, _)| format!("{pa:#x}"));
        }
        args.run.cmds = user_cmds;
        args.run.cmds.push("layout".into());
        let starts: std::collections::BTreeSet<u64> = model.regions.iter().map(|r| r.va.0).collect();
        args.run.cmds.extend(starts.iter().map(|va| format!("walk {va:#x}")));
        let replay = map::parse(&transcript_of(&args.run)?)?;
        if replay.regions != model.regions {
            let hint = match args.run.raw_dtb {
                Some(_) => " (with --raw-dtb, only if the tree has a /chosen/kaslr-seed)",
                None => "",
            };
            return Err(format!(
                "the second boot (for the walks) did not lay out the same: is the boot reproducible?{hint}"
            ));
        }
        model.walks = replay.walks;
    }
    let kaslr = match (model.kaslr.source.as_str(), model.kaslr.seed) {
        (_, Some(seed)) => format!("KASLR offset {:#x} (seed {seed:#x})", model.kaslr.offset),
        ("", None) => "KASLR unknown".to_string(),
        (source, None) => format!("KASLR {source}, offset {:#x}", model.kaslr.offset),
    };
    let title = format!("splitmap, {} pages: {kaslr}", model.page_size());
    let text = match kind {
        "svg" => draw::svg(&model, &title),
        "html" => page::html(&model, &title),
        _ => table::markdown(&model),
    };
    splitmap::output::write_whole(&args.output, text)?;
    Ok(format!(
        "map: {} regions, {} mappings, {} pieces of physical memory -> {}",
        model.regions.len(),
        model.runs.len(),
        model.pieces().len(),
        args.output.display()
    ))
}

/// Starts gdb-multiarch on the kernel's ELF, attached to `run --gdb`, with
/// splitmap's gdb commands loaded and the kernel run up to where it says
/// where it is (`sm-boot`), so breakpoints follow KASLR.
fn gdb(args: &GdbArgs) -> Result<ExitCode, String> {
    let artifacts = Artifacts::for_granule(&args.granule)?;
    // gdb itself would retry for seconds and then fail in our script; say
    // at once what is missing. (QEMU's stub takes the next connection.)
    let stub = std::net::SocketAddr::from(([127, 0, 0, 1], args.gdb_port));
    if std::net::TcpStream::connect_timeout(&stub, Duration::from_secs(2)).is_err() {
        return Err(format!(
            "nothing listens on {stub}: start the kernel with `cargo run -- run --gdb{}` first, in another terminal",
            if args.gdb_port == 1234 {
                String::new()
            } else {
                format!(" --gdb-port {}", args.gdb_port)
            }
        ));
    }
    let modules = args
        .modules
        .clone()
        .or_else(|| artifacts.initrd.parent().map(PathBuf::from))
        .unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gdb/splitmap.py");
    let mut command = Command::new("gdb-multiarch");
    command
        .env("SPLITMAP_ELF", &artifacts.elf)
        .env("SPLITMAP_MODULES", &modules)
        .arg("-q");
    if args.batch {
        command.args(["-nx", "-batch"]);
    }
    for setup in [
        "set confirm off".to_string(),
        "set breakpoint pending on".to_string(),
        format!("file {}", artifacts.elf.display()),
        format!("source {script}"),
        format!("target remote 127.0.0.1:{}", args.gdb_port),
        if args.early { "sm-early" } else { "sm-boot" }.to_string(),
    ]
    .iter()
    .chain(&args.commands)
    {
        command.args(["-ex", setup]);
    }
    let status = command.status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "gdb-multiarch not found: run scripts/setup.sh".to_string(),
        _ => format!("cannot start gdb-multiarch: {e}"),
    })?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the `.ko` files of `args.dir` into a cpio archive; their names.
fn initrd(args: &InitrdArgs) -> Result<Vec<String>, String> {
    splitmap::output::check_writable(&args.output)?;
    let dir = &args.dir;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "ko") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((name, bytes));
        }
    }
    if files.is_empty() {
        return Err(format!("{}: no .ko files", dir.display()));
    }
    files.sort();
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    splitmap::output::write_whole(&args.output, splitmap::kbuild::cpio(&entries))?;
    Ok(files.into_iter().map(|(n, _)| n).collect())
}

/// Refuses a script with lines after `poweroff`: they could never run.
fn check_script(cmds: &[String]) -> Result<(), String> {
    match cmds.iter().position(|c| c.trim() == "poweroff") {
        Some(at) if at + 1 < cmds.len() => Err(format!(
            "--cmd '{}' comes after poweroff, which ends the session",
            cmds[at + 1]
        )),
        _ => Ok(()),
    }
}

/// Runs QEMU on this terminal. Its output is passed through as it comes and
/// watched for a kernel panic, which makes the run fail like a scripted one.
/// After `limit` QEMU is asked to stop (SIGTERM: it gives the terminal back)
/// and the run fails.
fn interactive(mut command: Command, limit: Option<Duration>) -> std::io::Result<ExitCode> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let watchdog = limit.map(|limit| Watchdog::start(child.id(), limit, libc::SIGTERM));
    let mut from_qemu = child.stdout.take().expect("piped stdout");
    let mut stdout = std::io::stdout();
    let mut tail: Vec<u8> = Vec::new();
    let mut panicked = false;
    let mut buf = [0u8; 4096];
    while let Ok(n) = from_qemu.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = stdout.write_all(&buf[..n]);
        let _ = stdout.flush();
        // Keep a marker's length of what came before, to see one split in two.
        tail.extend_from_slice(&buf[..n]);
        let marker = session::PANIC_MARKER.as_bytes();
        panicked |= tail.windows(marker.len()).any(|w| w == marker);
        tail.drain(..tail.len().saturating_sub(marker.len()));
    }
    // QEMU's output ended with it; stand the watchdog down before reaping.
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    let status = child.wait()?;
    Ok(if panicked {
        eprintln!("splitmap: kernel panic");
        ExitCode::from(1)
    } else if timed_out {
        eprintln!("splitmap: timeout after {} s", limit.unwrap_or_default().as_secs());
        ExitCode::from(1)
    } else if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn sweep(args: SweepArgs) -> Result<(), String> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use splitmap::sweep::{self as stats, Slots};

    splitmap::output::check_writable(&args.svg)?;
    let artifacts = Artifacts::for_granule(&args.granule)?;
    let cpu = qemu::cpu_for(&args.granule);
    let image = std::fs::read(&artifacts.image).map_err(|e| format!("{}: {e}", artifacts.image.display()))?;
    let image_size = u64::from_le_bytes(image[16..24].try_into().map_err(|_| "Image too short")?);
    // The same rules the kernel applies, so a window it would refuse is refused here.
    let window = kernel::kaslr::window::window_from_args(args.window.as_deref(), args.align.as_deref(), image_size)
        .map_err(|e| e.to_string())?;
    // The host's copy of those rules knows 4 KiB pages; the swept kernel's,
    // as its Image header says (flags bits 1-2), may be larger, and it
    // refuses placements finer than its pages.
    let flags = u64::from_le_bytes(image[24..32].try_into().map_err(|_| "Image too short")?);
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
    let mut append = Vec::new();
    if let Some(w) = &args.window {
        append.push(format!("kaslr.window={w}"));
    }
    if let Some(a) = &args.align {
        append.push(format!("kaslr.align={a}"));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
        .min(args.boots);

    // A progress bar on a terminal only: in a log it would be noise.
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.boots || failure.lock().unwrap().is_some() {
                        break;
                    }
                    let boot = Boot {
                        append: append.join(" "),
                        kaslr_seed: Some(stats::seed(i)),
                        console: Console::Piped,
                        cpu: cpu.to_string(),
                        ..Boot::default()
                    };
                    let command = qemu::command(&qemu::qemu_args(&boot, &artifacts));
                    let va = session::run(command, &[], Duration::from_secs(60), |_| {})
                        .map_err(|e| e.to_string())
                        .and_then(|t| {
                            if t.outcome.success() {
                                Ok(t)
                            } else {
                                Err(t.outcome.reason())
                            }
                        })
                        .and_then(|t| boot_line_va(&t.output).ok_or("no boot line".to_string()));
                    match va {
                        Ok(va) => results.lock().unwrap().push(va),
                        Err(e) => *failure.lock().unwrap() = Some(format!("boot {i}: {e}")),
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if progress {
                        let filled = (n * 30 / args.boots) as usize;
                        eprint!(
                            "\rsweep: [{}{}] {n}/{}",
                            "#".repeat(filled),
                            ".".repeat(30 - filled),
                            args.boots
                        );
                    }
                }
            });
        }
    });
    if progress {
        eprintln!();
    }
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let vas = results.into_inner().unwrap();
    let summary = stats::summarise(&vas, slots, args.bins);
    let tenths = kernel::kaslr::window::entropy_tenths(slots.count);
    println!(
        "sweep: {} boots in {:.1} s ({jobs} jobs)",
        summary.boots,
        started.elapsed().as_secs_f64()
    );
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
    let bins: Vec<String> = summary.histogram.iter().map(u64::to_string).collect();
    println!("histogram ({} bins, low to high): {}", bins.len(), bins.join(" "));
    println!(
        "chi2 = {:.2} with {} dof, p = {:.3} ({})",
        summary.chi2,
        summary.dof,
        summary.p_value,
        summary.verdict()
    );
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

/// The `va=` of the boot line.
fn boot_line_va(output: &str) -> Option<u64> {
    let line = output
        .lines()
        .find(|l| l.trim_start_matches('\r').starts_with("splitmap: image "))?;
    let va = line.split_whitespace().find_map(|w| w.strip_prefix("va=0x"))?;
    u64::from_str_radix(va, 16).ok()
}
