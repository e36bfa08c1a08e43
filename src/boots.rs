//! From `run`'s options to a boot: QEMU's arguments, and the console of a
//! scripted session (for `run`, `map` and `bench`).

use std::time::Duration;

use splitmap::machine::{self, Machine};
use splitmap::qemu::{self, Artifacts, Boot, Console};
use splitmap::session;

use crate::RunArgs;

/// The boot `args` describe, and QEMU's arguments for it.
pub fn boot_of(args: &RunArgs, console: Console) -> Result<(Boot, Vec<String>), String> {
    let shared = &args.boot;
    let granule = &shared.kernel.granule;
    let machine = Machine::parse(&shared.machine)?;
    let accel = qemu::Accel::parse(&shared.accel)?;
    let mut boot = Boot {
        machine,
        mem: qemu::parse_size(&shared.mem)?,
        smp: shared.smp.unwrap_or(match machine {
            Machine::Virt => 1,
            Machine::Raspi3b => machine::RASPI3B_SMP,
        }),
        append: args.append.clone(),
        nokaslr: shared.nokaslr,
        kaslr_seed: shared.kaslr_seed.as_deref().map(qemu::parse_seed).transpose()?,
        load_addr: args.load_addr.as_deref().map(qemu::parse_load_addr).transpose()?,
        gdb: args.gdb.then_some(args.gdb_port),
        icount: args.icount,
        dtb: args.dtb.as_deref().map(|p| qemu::check_dtb("--dtb", p)).transpose()?,
        raw_dtb: args
            .raw_dtb
            .as_deref()
            .map(|p| qemu::check_dtb("--raw-dtb", p))
            .transpose()?,
        extra: args.qemu_args.clone(),
        console,
        cpu: shared
            .cpu
            .clone()
            .unwrap_or_else(|| qemu::cpu_for(granule, accel).to_string()),
        accel,
        gic: shared.gic,
        uefi: None,
    };
    if machine == Machine::Raspi3b {
        // QEMU's Pi always has its 4 CPUs: --smp N says how many the
        // kernel brings up.
        boot.smp = machine::RASPI3B_SMP;
        if let Some(n) = shared.smp {
            boot.append = format!("{} maxcpus={n}", boot.append).trim_start().to_string();
        }
    }
    if machine == Machine::Raspi3b && boot.dtb.is_none() {
        // QEMU has no tree for the Pi: ours, with a fresh seed each boot
        // (the one --kaslr-seed gives, none with --nokaslr).
        let seed = match (boot.nokaslr, boot.kaslr_seed) {
            (true, _) => 0,
            (false, Some(seed)) => seed,
            (false, None) => machine::fresh_seed()?,
        };
        boot.dtb = Some(machine::write_raspi3b_tree(&machine::trees_dir(), seed)?);
    }
    let mut artifacts = Artifacts::for_granule(granule)?;
    if let Some(initrd) = &args.initrd {
        splitmap::input::check_file("--initrd", initrd, splitmap::input::INITRD_LIMIT)?;
        artifacts.initrd = initrd.clone();
    }
    if args.uefi {
        boot.uefi = Some(uefi_of(args, &boot, &artifacts)?);
    }
    let qemu_args = qemu::qemu_args(&boot, &artifacts);
    Ok((boot, qemu_args))
}

/// Boots as `args` says, types `args.cmds`, and returns what the console
/// printed; an error unless the kernel powered off cleanly.
pub fn transcript_of(args: &RunArgs) -> Result<String, String> {
    let (_, qemu_args) = boot_of(args, Console::Piped)?;
    let limit = time_limit(args.timeout, Some(SCRIPT_TIMEOUT));
    script_output(&qemu_args, &args.cmds, limit.unwrap_or(Duration::MAX))
}

/// How long a scripted session may take without `--timeout`.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The time limit `--timeout` sets, or `default` without it: `--timeout 0`
/// means none, whatever the command.
pub fn time_limit(timeout: Option<u64>, default: Option<Duration>) -> Option<Duration> {
    match timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => default,
    }
}

/// Runs QEMU with `qemu_args`, types `cmds`, and returns what the console
/// printed; an error unless the kernel powered off cleanly.
pub fn script_output(qemu_args: &[String], cmds: &[String], timeout: Duration) -> Result<String, String> {
    let t = session::run(qemu::command(qemu_args), cmds, timeout, |_| {})
        .map_err(|e| format!("cannot start {}: {e}", qemu::QEMU))?;
    if !t.outcome.success() {
        return Err(format!("the boot failed: {}\n{}", t.outcome.reason(), t.output));
    }
    Ok(t.output.replace('\r', ""))
}

/// `--uefi`'s firmware: EDK2, or U-Boot with its disk written.
fn uefi_of(args: &RunArgs, boot: &Boot, artifacts: &Artifacts) -> Result<qemu::Uefi, String> {
    match args.firmware.as_str() {
        "edk2" => Ok(qemu::Uefi {
            firmware: splitmap::efi_output::firmware()?,
            rng: !args.no_rng,
            disk: None,
        }),
        "u-boot" => {
            let firmware = splitmap::uboot::firmware()?;
            let initrd = std::fs::metadata(&artifacts.initrd)
                .is_ok_and(|m| m.len() > 0)
                .then_some(artifacts.initrd.as_path());
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/u-boot");
            let disk = splitmap::uboot::write_disk(&root, &artifacts.image, initrd, &qemu::kernel_cmdline(boot))?;
            Ok(qemu::Uefi {
                firmware,
                rng: !args.no_rng,
                disk: Some(disk),
            })
        }
        other => Err(format!("--firmware {other:?}: say edk2 or u-boot")),
    }
}
