//! `splitmap`: build the kernel and run it under QEMU. `cargo run` = `splitmap run`.
//! The command line is defined here; each command's body is in its own file.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench_cmd;
mod boots;
mod build_cmd;
mod gdb_cmd;
mod initrd_cmd;
mod map_cmd;
mod run_cmd;
mod sweep_cmd;

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

/// The options every boot shares: the kernel, the machine, its memory and
/// where KASLR puts the image.
///
/// `run --help` lists them among run's own options, in the order it always
/// has (the README pastes it), so every option of `run` says its place.
/// Those places start at 10: a command that puts options of its own before
/// run's (map: -o, --from) has 0 and on.
#[derive(Args)]
struct BootArgs {
    /// RAM size: 512M, 1G, 1536M, 4G, 6G, … (a bare number is MiB, as in QEMU)
    #[arg(long, default_value = "1G", value_parser = size_arg, display_order = 10)]
    mem: String,
    /// CPUs: 1-8 on virt [default: 1]; on raspi3b QEMU always has 4 and this becomes maxcpus=N
    #[arg(long, display_order = 11)]
    smp: Option<u32>,
    /// KASLR seed for reproducible experiments (adds kaslr.seed=0xHEX).
    #[arg(long, value_name = "HEX", value_parser = seed_arg, display_order = 13)]
    kaslr_seed: Option<String>,
    /// Keep the image at its link address (adds nokaslr).
    #[arg(long, display_order = 14)]
    nokaslr: bool,
    // --granule's place in run's list.
    #[command(flatten, next_display_order = 26)]
    kernel: KernelArgs,
    /// The CPU QEMU emulates (default cortex-a72; `max` with --granule 16k,
    /// since the Cortex-A72 has no 16 KiB granule).
    #[arg(long, value_name = "NAME", display_order = 27)]
    cpu: Option<String>,
    /// The machine: QEMU `virt`, or `raspi3b` (a Raspberry Pi 3: 1 GiB of
    /// RAM at physical address 0, 4 CPUs, the project's device tree).
    #[arg(long, value_name = "virt|raspi3b", default_value = "virt", value_parser = machine_arg, display_order = 28)]
    machine: String,
    /// How QEMU runs the kernel: tcg (translated, any host), kvm (an arm64
    /// Linux host with /dev/kvm) or hvf (macOS on Apple silicon); kvm and hvf
    /// run it on the host's own CPU (`-cpu host`) and take neither
    /// --load-addr, --raw-dtb nor --icount, which need TCG.
    #[arg(long, value_name = "tcg|kvm|hvf", default_value = "tcg", value_parser = accel_arg, display_order = 29)]
    accel: String,
    /// The interrupt controller QEMU's `virt` gets: GICv2 or GICv3
    /// (`-machine virt,gic-version=N`; QEMU's default, GICv2, without it).
    #[arg(long, value_name = "2|3", value_parser = gic_arg, display_order = 30)]
    gic: Option<u8>,
}

/// Which kernel: the part of `BootArgs` that `sweep` and `gdb` take too.
/// `sweep` chooses RAM and KASLR seeds itself and `gdb` attaches to a boot
/// already running, so the rest would be options they have never had; each
/// of them words `--granule` for what it does with it.
#[derive(Args)]
struct KernelArgs {
    /// Translation granule the kernel is built for: 4k, 16k or 64k (the
    /// first run of a granule builds it, under target/granule-NAME/).
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k", value_parser = granule_arg)]
    granule: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    boot: BootArgs,
    /// Load the kernel at this physical address (page-aligned, in RAM), or
    /// `random`, through the stage-0 loader. Default: QEMU's own placement.
    #[arg(long, value_name = "PA|random", value_parser = load_addr_arg, display_order = 12)]
    load_addr: Option<String>,
    /// Extra kernel command line, e.g. "loglevel=debug".
    #[arg(long, value_name = "BOOTARGS", default_value = "", display_order = 15)]
    append: String,
    /// Type this line at the prompt (repeatable); print everything and exit
    /// when the kernel powers off (`poweroff` is sent last if missing).
    #[arg(long = "cmd", value_name = "LINE", display_order = 16)]
    cmds: Vec<String>,
    /// Give up after this many seconds (default 60 with --cmd, none
    /// interactively or with --gdb; 0 means none). Interactively QEMU is
    /// stopped and the terminal given back.
    #[arg(long, value_name = "SECS", display_order = 17)]
    timeout: Option<u64>,
    /// Wait for gdb before the first instruction; attach with `splitmap gdb`
    /// in another terminal. No timeout unless --timeout says one.
    #[arg(long, display_order = 18)]
    gdb: bool,
    /// The port QEMU waits for gdb on.
    #[arg(long, value_name = "PORT", default_value_t = 1234, value_parser = clap::value_parser!(u16).range(1..), display_order = 19)]
    gdb_port: u16,
    /// Count instructions exactly (QEMU -icount): `phases`, `kaslr` and
    /// `insmod` then say how many boot, the relocation and a load took. Slower.
    #[arg(long, display_order = 20)]
    icount: bool,
    /// Print the QEMU command line before running it.
    #[arg(short, long, display_order = 21)]
    verbose: bool,
    /// Boot with this device tree instead of QEMU's.
    #[arg(long, value_name = "FILE", display_order = 22)]
    dtb: Option<PathBuf>,
    /// Hand the kernel this device tree exactly as it is, even broken (QEMU's
    /// -dtb fixes trees up and refuses bad ones): it goes in RAM raw and the
    /// stage-0 loader passes it on.
    #[arg(long, value_name = "FILE", conflicts_with = "dtb", display_order = 23)]
    raw_dtb: Option<PathBuf>,
    /// Use this initrd (a newc cpio, see `splitmap initrd`) instead of the
    /// one with the sample modules.
    #[arg(long, value_name = "FILE", display_order = 24)]
    initrd: Option<PathBuf>,
    /// Pass an argument to QEMU verbatim (repeatable), e.g. --qemu-arg=-numa.
    #[arg(
        long = "qemu-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        display_order = 25
    )]
    qemu_args: Vec<String>,
    /// Boot under UEFI firmware (EDK2, `virt,acpi=off`) through the Image's
    /// EFI stub, which places the kernel at a random physical address.
    #[arg(long, conflicts_with_all = ["load_addr", "raw_dtb"], display_order = 31)]
    uefi: bool,
    /// With --uefi: no virtio RNG, so the firmware has no EFI_RNG_PROTOCOL
    /// and the stub falls back to its fixed seed.
    #[arg(long, requires = "uefi", display_order = 32)]
    no_rng: bool,
    /// With --uefi: the firmware, EDK2 or U-Boot (its `bootefi`, the Image
    /// loaded from a FAT disk the tool makes; no LoadFile2, so the stub reads
    /// the initrd named by `initrd=`).
    #[arg(
        long,
        requires = "uefi",
        value_name = "edk2|u-boot",
        default_value = "edk2",
        display_order = 33
    )]
    firmware: String,
}

#[derive(Args)]
#[command(mut_arg("granule", |granule| {
    granule.help("The granule the running kernel was built for (its symbols differ)")
}))]
struct GdbArgs {
    /// The port `run --gdb` waits on.
    #[arg(long, value_name = "PORT", default_value_t = 1234, value_parser = clap::value_parser!(u16).range(1..))]
    gdb_port: u16,
    #[command(flatten)]
    kernel: KernelArgs,
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
    /// A gdb command to run once attached and booted (repeatable): `-ex`, as
    /// gdb spells it, or `--ex`.
    #[arg(long = "ex", short = 'x', value_name = "COMMAND", allow_hyphen_values = true)]
    commands: Vec<String>,
}

#[derive(Args)]
#[command(
    mut_arg("gdb", |a| a.hide(true)),
    mut_arg("gdb_port", |a| a.hide(true)),
    mut_arg("icount", |a| a.hide(true)),
    mut_arg("verbose", |a| a.hide(true))
)]
struct MapArgs {
    /// FILE.svg, FILE.html or FILE.md.
    #[arg(short, long, value_name = "FILE", value_parser = drawing_arg)]
    output: PathBuf,
    /// Draw from a saved transcript (`run --cmd layout --cmd ptdump --cmd
    /// mem --cmd kaslr`, `--cmd "lsmod -v"` with modules loaded, and any
    /// `walk`s) instead of booting.
    #[arg(long, value_name = "TRANSCRIPT")]
    from: Option<PathBuf>,
    /// How to boot; each --cmd runs before the map's own (e.g. --cmd "insmod hello").
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct BuildArgs {
    /// Build for this translation granule: 4k, 16k or 64k.
    #[arg(long, value_name = "4k|16k|64k", default_value = "4k", value_parser = granule_arg)]
    granule: String,
}

/// No `BootArgs`: bench boots every granule, several sizes of RAM, KASLR
/// off and on, as its tables need; options for one boot would not apply.
#[derive(Args)]
struct BenchArgs {
    /// One boot per table and three wall-time pairs: checks that the bench
    /// works (`cargo test` runs it), not what it measures.
    #[arg(long)]
    quick: bool,
    /// Only these tables: instructions, wall, linear, pie, modules (repeatable).
    #[arg(long, value_name = "TABLE")]
    only: Vec<String>,
    /// Count the instructions table's boots on this machine: QEMU `virt`,
    /// or `raspi3b` (4K and 64K pages, 1 GiB); only that table.
    #[arg(long, value_name = "virt|raspi3b", default_value = "virt", value_parser = machine_arg)]
    machine: String,
    /// Count the instructions table's boots under UEFI (EDK2 and the
    /// Image's EFI stub); only that table.
    #[arg(long)]
    uefi: bool,
    /// Count the instructions table's boots with N CPUs, and what bringing
    /// up each secondary cost; only that table.
    #[arg(long, value_name = "N")]
    smp: Option<u32>,
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
#[command(mut_arg("granule", |granule| {
    granule.help("Sweep a kernel built for this granule: 4k, 16k or 64k")
}))]
struct SweepArgs {
    /// Number of boots.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    boots: u64,
    /// KASLR window, 0xSTART-0xEND (default: the kernel's, the middle half of
    /// the area above KIMAGE_VADDR).
    #[arg(long, value_name = "0xSTART-0xEND", value_parser = window_arg)]
    window: Option<String>,
    /// Placement alignment: 4K, 64K or 2M (default 2M).
    #[arg(long, value_parser = align_arg)]
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
    /// Sweep the EFI stub's physical placement under EDK2 instead (boot `i`
    /// with `efistub.seed=` seed i): the slots are the image's page-aligned
    /// places in conventional memory, in address order.
    #[arg(long, conflicts_with_all = ["window", "align"])]
    uefi: bool,
    #[command(flatten)]
    kernel: KernelArgs,
    /// The machine every boot runs on: QEMU `virt`, or `raspi3b` (RAM at
    /// physical address 0; each boot with its own copy of the Pi's tree).
    #[arg(long, value_name = "virt|raspi3b", default_value = "virt", value_parser = machine_arg)]
    machine: String,
    /// CPUs every boot brings up, as `run --smp` (1-8 on virt; maxcpus=N on raspi3b).
    #[arg(long)]
    smp: Option<u32>,
}

/// The command line with gdb's own spelling of `--ex`, `-ex` (which clap
/// would read as `-e -x`), made `--ex` for `splitmap gdb`; a value of an
/// option that takes one stays as it is.
fn gdb_spelling(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_none_or(|command| command != "gdb") {
        return args;
    }
    let mut value_next = false;
    for arg in args.iter_mut().skip(2) {
        let text = arg.to_string_lossy();
        let takes_value = ["-x", "--ex", "-ex", "--gdb-port", "--granule", "--modules"].contains(&&*text);
        if value_next {
            value_next = false;
            continue;
        }
        value_next = takes_value;
        if text == "-ex" {
            *arg = "--ex".into();
        } else if let Some(command) = text.strip_prefix("-ex=") {
            *arg = format!("--ex={command}").into();
        }
    }
    args
}

// Values read as the commands will read them, so that clap refuses what
// cannot be read (exit status 2, with the usage) before anything runs.

fn size_arg(text: &str) -> Result<String, String> {
    splitmap::qemu::parse_size(text).map(|_| text.to_string())
}

fn seed_arg(text: &str) -> Result<String, String> {
    splitmap::qemu::parse_seed(text).map(|_| text.to_string())
}

fn load_addr_arg(text: &str) -> Result<String, String> {
    splitmap::qemu::parse_load_addr(text).map(|_| text.to_string())
}

fn machine_arg(text: &str) -> Result<String, String> {
    splitmap::machine::Machine::parse(text).map(|_| text.to_string())
}

fn accel_arg(text: &str) -> Result<String, String> {
    splitmap::qemu::Accel::parse(text).map(|_| text.to_string())
}

fn granule_arg(text: &str) -> Result<String, String> {
    match text.to_ascii_lowercase().as_str() {
        "4k" | "16k" | "64k" => Ok(text.to_string()),
        _ => Err("say 4k, 16k or 64k".into()),
    }
}

fn gic_arg(text: &str) -> Result<u8, String> {
    splitmap::qemu::parse_gic(text)
}

fn drawing_arg(text: &str) -> Result<PathBuf, String> {
    map_cmd::drawing_kind(std::path::Path::new(text)).map(|_| text.into())
}

fn window_arg(text: &str) -> Result<String, String> {
    use kernel::kaslr::window::{WindowError, window_from_args};
    match window_from_args(Some(text), None, 0) {
        Err(WindowError::Syntax(_)) => Err("expected 0xSTART-0xEND".into()),
        _ => Ok(text.to_string()),
    }
}

fn align_arg(text: &str) -> Result<String, String> {
    use kernel::kaslr::window::{WindowError, window_from_args};
    match window_from_args(None, Some(text), 0) {
        Err(WindowError::Align(_)) => Err("expected 4K, 64K or 2M".into()),
        _ => Ok(text.to_string()),
    }
}

/// Refuses, with exit status 2, a command line whose options contradict
/// each other or that asks for what cannot be done, before anything runs.
fn check_command_line(command: &Cmd) -> Result<(), String> {
    match command {
        Cmd::Run(args) => run_cmd::check_run(args),
        Cmd::Map(args) => map_cmd::check_options(args),
        Cmd::Sweep(args) => sweep_cmd::check(args),
        Cmd::Bench(args) => bench_cmd::check(args),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(gdb_spelling(std::env::args_os()));
    let command = cli
        .command
        .unwrap_or_else(|| match Cli::parse_from(["splitmap", "run"]).command {
            Some(run) => run,
            None => unreachable!("`run` parses as the run command"),
        });
    if let Err(message) = check_command_line(&command) {
        eprintln!("splitmap: {message}");
        return ExitCode::from(2);
    }
    let done = match command {
        Cmd::Build(args) => build_cmd::build(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Gdb(args) => gdb_cmd::gdb(&args),
        Cmd::Initrd(args) => initrd_cmd::initrd(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Sweep(args) => sweep_cmd::sweep(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Bench(args) => bench_cmd::bench(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Map(args) => map_cmd::map(args).map(|()| ExitCode::SUCCESS),
        Cmd::Run(args) => run_cmd::run(args),
    };
    // The seeded device trees of this process's boots (--machine raspi3b).
    splitmap::machine::remove_trees(&splitmap::machine::trees_dir());
    // One rule for every command: 0 when it did what was asked, 1 with the
    // reason on stderr when not (2, clap's and check_command_line's, is for
    // a command line that cannot be read or is refused).
    done.unwrap_or_else(|message| {
        eprintln!("splitmap: {message}");
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled(args: &[&str]) -> Vec<String> {
        gdb_spelling(args.iter().map(OsString::from))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn gdb_takes_ex_as_gdb_spells_it() {
        assert_eq!(
            spelled(&["splitmap", "gdb", "-ex", "bt", "--ex", "-ex", "-ex=info reg", "--batch"]),
            [
                "splitmap",
                "gdb",
                "--ex",
                "bt",
                "--ex",
                "-ex",
                "--ex=info reg",
                "--batch"
            ]
        );
        // Only for gdb: another command's `-ex` is its own business.
        assert_eq!(spelled(&["splitmap", "run", "-ex"]), ["splitmap", "run", "-ex"]);
        let cli = Cli::try_parse_from(spelled(&["splitmap", "gdb", "-ex", "bt", "-ex", "info frame"])).unwrap();
        let Some(Cmd::Gdb(gdb)) = cli.command else {
            panic!("not the gdb command")
        };
        assert_eq!(gdb.commands, ["bt", "info frame"]);
    }
}
