//! `splitmap`: build the kernel and run it under QEMU. `cargo run` = `splitmap run`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use splitmap::qemu::{self, Artifacts, Boot, Console};
use splitmap::session;

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
    /// Print the paths of the built artifacts: image, elf, initrd (an empty cpio
    /// until modules land) and boot (the stage-0 loader behind --load-addr).
    Build,
}

#[derive(Args)]
struct RunArgs {
    /// RAM size: 512M, 1G, 1536M, 4G, 6G, …
    #[arg(long, default_value = "1G")]
    mem: String,
    /// Number of CPUs (only the boot CPU runs for now).
    #[arg(long, default_value_t = 1)]
    smp: u32,
    /// Load the kernel at this physical address (4 KiB-aligned, in RAM), or
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
    /// Give up after this many seconds (default 60 with --cmd, none otherwise).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Wait for gdb on localhost:1234 before the first instruction.
    #[arg(long)]
    gdb: bool,
    /// Print the QEMU command line before running it.
    #[arg(short, long)]
    verbose: bool,
    /// Boot with this device tree instead of QEMU's.
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// Pass an argument to QEMU verbatim (repeatable), e.g. --qemu-arg=-numa.
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    qemu_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| match Cli::parse_from(["splitmap", "run"]).command {
            Some(run) => run,
            None => unreachable!("`run` parses as the run command"),
        });
    match command {
        Cmd::Build => {
            let a = Artifacts::built();
            println!("image: {}", a.image.display());
            println!("elf: {}", a.elf.display());
            println!("initrd: {}", a.initrd.display());
            println!("boot: {}", a.boot.display());
            ExitCode::SUCCESS
        }
        Cmd::Run(args) => match run(args) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("splitmap: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(args: RunArgs) -> Result<ExitCode, String> {
    let scripted = !args.cmds.is_empty();
    let boot = Boot {
        mem: qemu::parse_size(&args.mem)?,
        smp: args.smp,
        append: args.append,
        nokaslr: args.nokaslr,
        kaslr_seed: args.kaslr_seed.as_deref().map(qemu::parse_seed).transpose()?,
        load_addr: args.load_addr.as_deref().map(qemu::parse_load_addr).transpose()?,
        gdb: args.gdb,
        dtb: args.dtb,
        extra: args.qemu_args,
        console: if scripted { Console::Piped } else { Console::Interactive },
    };
    let artifacts = Artifacts::built();
    let qemu_args = qemu::qemu_args(&boot, &artifacts);
    if args.verbose {
        eprintln!("{}", qemu::shell_quoted(qemu::QEMU, &qemu_args));
    }
    if boot.gdb {
        eprintln!(
            "splitmap: QEMU waits for gdb: gdb-multiarch {} -ex 'target remote :1234'",
            artifacts.elf.display()
        );
    }
    let mut command = Command::new(qemu::QEMU);
    command.args(&qemu_args);
    let not_found = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} not found: run scripts/setup.sh", qemu::QEMU),
        _ => format!("cannot start {}: {e}", qemu::QEMU),
    };

    if !scripted {
        let status = command.status().map_err(not_found)?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let timeout = Duration::from_secs(args.timeout.unwrap_or(60));
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
