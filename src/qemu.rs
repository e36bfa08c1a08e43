//! The QEMU command line for a boot. Pure: options in, arguments out, so what
//! a learner sees with `-v` is exactly what the tests check.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths the build produced (see build.rs).
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The kernel as a Linux arm64 Image.
    pub image: PathBuf,
    /// The kernel ELF, with symbols.
    pub elf: PathBuf,
    /// The initrd (a cpio archive).
    pub initrd: PathBuf,
    /// The stage-0 loader.
    pub boot: PathBuf,
}

impl Artifacts {
    /// The artifacts this host tool was built with (4 KiB pages).
    pub fn built() -> Self {
        Artifacts {
            image: env!("SPLITMAP_IMAGE").into(),
            elf: env!("SPLITMAP_ELF").into(),
            initrd: env!("SPLITMAP_INITRD").into(),
            boot: env!("SPLITMAP_BOOT").into(),
        }
    }

    /// The kernel (and the stage-0 loader that embeds it) built for
    /// `granule`, "4k", "16k" or "64k", under target/granule-NAME/; the
    /// initrd is the same for every granule. The first call per granule
    /// builds it (about as long as the kernel's own build); later ones only
    /// check it is current.
    ///
    /// # Errors
    /// An unknown granule, or a failed build.
    pub fn for_granule(granule: &str) -> Result<Self, String> {
        let granule = granule.to_ascii_lowercase();
        let feature = match granule.as_str() {
            "4k" => return Ok(Self::built()),
            "16k" => "granule-16k",
            "64k" => "granule-64k",
            other => return Err(format!("--granule {other}: say 4k, 16k or 64k")),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = workspace.join("target").join(format!("granule-{granule}"));
        if let Some(note) = first_build_note(&granule, &dir) {
            eprintln!("splitmap: {note}");
        }
        let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        let kernel = crate::kbuild::cargo_build(&cargo, workspace, &dir, "splitmap-kernel", &[feature], &[])?;
        let elf = kernel.executable("splitmap-kernel")?;
        let image = crate::kbuild::kernel_image(&elf)?;
        // Written beside and renamed into place: another run (tests run in
        // parallel) may be starting QEMU on the file at this moment.
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, String> {
            let path = dir.join(name);
            if std::fs::read(&path).ok().as_deref() != Some(bytes) {
                crate::output::write_whole(&path, bytes)?;
            }
            Ok(path)
        };
        let image_path = write("Image", &image)?;
        let elf_path = write("splitmap.elf", &elf)?;
        let boot = crate::kbuild::cargo_build(
            &cargo,
            workspace,
            &dir,
            "splitmap-boot",
            &[],
            &[("SPLITMAP_KERNEL_IMAGE", &image_path)],
        )?;
        let boot_image = crate::kbuild::make_image(&boot.executable("splitmap-boot")?)?;
        Ok(Artifacts {
            image: image_path,
            elf: elf_path,
            initrd: Self::built().initrd,
            boot: write("boot.bin", &boot_image)?,
        })
    }
}

/// What to say before building the kernel for `granule` ("16k", "64k")
/// under `dir`, the first time only (then it takes as long as the kernel's
/// own build, tens of seconds that would otherwise pass in silence).
pub fn first_build_note(granule: &str, dir: &Path) -> Option<String> {
    if dir.join("Image").exists() {
        return None;
    }
    let kib = granule.trim_end_matches(['k', 'K']);
    Some(format!(
        "building the {kib} KiB kernel (the first use of --granule {granule}), under {}…",
        dir.display()
    ))
}

/// Where the kernel Image goes in RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadAddr {
    /// This physical address (the stage-0 loader checks it).
    At(u64),
    /// A random 4 KiB-aligned address, picked by the stage-0 loader.
    Random,
}

/// How the serial console is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The terminal: `-nographic` (Ctrl-A X quits).
    Interactive,
    /// Pipes, for scripted sessions and tests.
    Piped,
    /// Pipes with QEMU's monitor multiplexed onto them (Ctrl-A X quits),
    /// for a terminal the tool stands in front of (`crate::relay`).
    Relayed,
}

/// Everything that shapes one boot.
#[derive(Clone, Debug)]
pub struct Boot {
    /// RAM in bytes.
    pub mem: u64,
    /// CPUs.
    pub smp: u32,
    /// Kernel command line given by the user.
    pub append: String,
    /// Add `nokaslr`.
    pub nokaslr: bool,
    /// Add `kaslr.seed=`.
    pub kaslr_seed: Option<u64>,
    /// Boot through the stage-0 loader at this address.
    pub load_addr: Option<LoadAddr>,
    /// Wait for gdb on this TCP port before the first instruction.
    pub gdb: Option<u16>,
    /// Count instructions exactly (`-icount shift=0`): one instruction is one
    /// nanosecond of guest time, and the PMU counts retired instructions.
    pub icount: bool,
    /// A device tree to use instead of QEMU's (QEMU still fixes it up).
    pub dtb: Option<PathBuf>,
    /// A device tree for the kernel exactly as it is, broken or not: QEMU
    /// loads it raw at [`raw_dtb_pa`] and the stage-0 loader hands it over.
    pub raw_dtb: Option<PathBuf>,
    /// Extra QEMU arguments, verbatim.
    pub extra: Vec<String>,
    /// Console wiring.
    pub console: Console,
    /// The CPU QEMU emulates.
    pub cpu: String,
    /// The machine.
    pub machine: crate::machine::Machine,
    /// How QEMU runs the guest's instructions.
    pub accel: Accel,
    /// `virt`'s GIC version (2 or 3); QEMU's default (2) if `None`.
    pub gic: Option<u8>,
    /// Boot under UEFI firmware (EDK2) through the Image's EFI stub; with
    /// a virtio RNG (`EFI_RNG_PROTOCOL`) unless `rng` is false.
    pub uefi: Option<Uefi>,
}

/// How QEMU runs the guest: translating its code (TCG, anywhere), or on the
/// host's own arm64 cores through the host's hypervisor (KVM on Linux, HVF
/// on macOS), with the host's CPU (`-cpu host`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's translator: any host, any emulated CPU.
    #[default]
    Tcg,
    /// Linux's KVM: an arm64 Linux host with `/dev/kvm`.
    Kvm,
    /// Apple's Hypervisor.framework: macOS on Apple silicon.
    Hvf,
}

/// What the host offers a hypervisor: its CPU architecture and OS (as
/// `std::env::consts` names them), and whether `/dev/kvm` is there.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    /// "aarch64", "x86_64", …
    pub arch: &'static str,
    /// "linux", "macos", …
    pub os: &'static str,
    /// Whether `/dev/kvm` exists.
    pub dev_kvm: bool,
}

impl Host {
    /// The machine this tool runs on.
    pub fn this() -> Host {
        Host {
            arch: std::env::consts::ARCH,
            os: std::env::consts::OS,
            dev_kvm: Path::new("/dev/kvm").exists(),
        }
    }
}

impl Accel {
    /// `--accel`'s spelling, QEMU's too.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
            Accel::Hvf => "hvf",
        }
    }

    /// `tcg`, `kvm` or `hvf`.
    ///
    /// # Errors
    /// What to say instead.
    pub fn parse(text: &str) -> Result<Accel, String> {
        match text.to_ascii_lowercase().as_str() {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            "hvf" => Ok(Accel::Hvf),
            _ => Err("say tcg, kvm or hvf".into()),
        }
    }

    /// Whether the guest runs on the host's own cores, as the host's CPU.
    pub fn is_hardware(self) -> bool {
        self != Accel::Tcg
    }

    /// Refuses a hypervisor `host` does not have: a guest on the host's own
    /// cores must be arm64 like them.
    ///
    /// # Errors
    /// What the accelerator needs.
    pub fn check_host(self, host: Host) -> Result<(), String> {
        let (can, needs) = match self {
            Accel::Tcg => (true, ""),
            Accel::Kvm => (
                host.arch == "aarch64" && host.os == "linux" && host.dev_kvm,
                "needs an arm64 Linux host with /dev/kvm",
            ),
            Accel::Hvf => (
                host.arch == "aarch64" && host.os == "macos",
                "needs macOS on an arm64 host (Apple silicon)",
            ),
        };
        if can {
            Ok(())
        } else {
            Err(format!(
                "--accel {}: {needs}; this is a {} {} host{}: use --accel tcg (the default)",
                self.name(),
                host.arch,
                host.os,
                if self == Accel::Kvm && host.arch == "aarch64" && !host.dev_kvm {
                    " without /dev/kvm"
                } else {
                    ""
                }
            ))
        }
    }
}

/// `--uefi`: the firmware, and whether it gets an RNG device.
#[derive(Clone, Debug)]
pub struct Uefi {
    /// The firmware image (`-bios`).
    pub firmware: PathBuf,
    /// A virtio RNG, which EDK2 offers as EFI_RNG_PROTOCOL (`--no-rng`: none).
    pub rng: bool,
    /// U-Boot (`--firmware u-boot`): the directory QEMU presents to it as a
    /// FAT disk, holding the Image, the initrd and the boot script
    /// (`uboot::write_disk`); the kernel, initrd and command line go there
    /// instead of to QEMU.
    pub disk: Option<PathBuf>,
}

/// QEMU's CPU unless told otherwise. It lacks the 16 KiB granule (as does
/// `cortex-a57`), so 16 KiB kernels get [`CPU_FOR_16K`].
pub const DEFAULT_CPU: &str = "cortex-a72";
/// A CPU with every granule: QEMU's `max` (TGran4 = 1, TGran16 = 2, TGran64 = 0).
pub const CPU_FOR_16K: &str = "max";

/// The CPU a kernel built for `granule` ("4k", "16k", "64k") runs on under
/// `accel` unless told otherwise: the host's own under a hypervisor.
pub fn cpu_for(granule: &str, accel: Accel) -> &'static str {
    if accel.is_hardware() {
        "host"
    } else if granule.eq_ignore_ascii_case("16k") {
        CPU_FOR_16K
    } else {
        DEFAULT_CPU
    }
}

/// The CPUs of `qemu-system-aarch64 -cpu help` that have AArch64, and can
/// so run the kernel; `host` is the machine's own under KVM.
pub const AARCH64_CPUS: [&str; 9] = [
    "a64fx",
    "cortex-a35",
    "cortex-a53",
    "cortex-a57",
    "cortex-a72",
    "cortex-a76",
    "neoverse-n1",
    "max",
    "host",
];

/// The 32-bit CPUs (AArch32 or M-profile only) QEMU's `virt` offers.
const AARCH32_CPUS: [&str; 34] = [
    "arm1026",
    "arm1136",
    "arm1136-r2",
    "arm1176",
    "arm11mpcore",
    "arm926",
    "arm946",
    "cortex-a15",
    "cortex-a7",
    "cortex-a8",
    "cortex-a9",
    "cortex-m0",
    "cortex-m3",
    "cortex-m33",
    "cortex-m4",
    "cortex-m55",
    "cortex-m7",
    "cortex-r5",
    "cortex-r5f",
    "pxa250",
    "pxa255",
    "pxa260",
    "pxa261",
    "pxa262",
    "pxa270",
    "pxa270-a0",
    "pxa270-a1",
    "pxa270-b0",
    "pxa270-b1",
    "pxa270-c0",
    "pxa270-c5",
    "sa1100",
    "sa1110",
    "ti925t",
];

/// Refuses a `--cpu` that cannot run an arm64 kernel, before QEMU starts
/// (a 32-bit core would boot nothing and run into the timeout). Properties
/// after the name (`max,sve=off`) are QEMU's business.
///
/// # Errors
/// Which CPU, why, and the ones that can.
pub fn check_cpu(cpu: &str) -> Result<(), String> {
    let name = cpu.split(',').next().unwrap_or_default();
    if AARCH64_CPUS.contains(&name) {
        return Ok(());
    }
    let why = if AARCH32_CPUS.contains(&name) {
        "a 32-bit CPU, without AArch64: it cannot run the arm64 kernel"
    } else {
        "not an AArch64 CPU of QEMU's"
    };
    Err(format!("--cpu {name}: {why}; say one of {}", AARCH64_CPUS.join(", ")))
}

/// What a boot asks of the accelerator besides the host: the options that
/// only TCG can honour, by name, and `--cpu`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccelUse<'a> {
    /// `--load-addr` (the stage-0 loader).
    pub load_addr: bool,
    /// `--raw-dtb` (the stage-0 loader too).
    pub raw_dtb: bool,
    /// `--icount`.
    pub icount: bool,
    /// `--cpu`, if given.
    pub cpu: Option<&'a str>,
}

/// Refuses an `--accel` this boot cannot have, before QEMU starts: under a
/// hypervisor the guest runs on the host's own cores, so there is no stage-0
/// loader (it reports through semihosting, which only TCG traps), no
/// `-icount` (TCG's instruction count) and no other CPU than the host's;
/// and the host must have the hypervisor. What the options ask is checked
/// before what the host has, so the answer is the same on every host.
///
/// # Errors
/// Which options, or what the accelerator needs.
pub fn check_accel(accel: Accel, used: AccelUse<'_>, host: Host) -> Result<(), String> {
    if !accel.is_hardware() {
        return Ok(());
    }
    let name = accel.name();
    let tcg_only: Vec<&str> = [
        (used.load_addr, "--load-addr"),
        (used.raw_dtb, "--raw-dtb"),
        (used.icount, "--icount"),
    ]
    .into_iter()
    .filter_map(|(given, option)| given.then_some(option))
    .collect();
    if !tcg_only.is_empty() {
        return Err(format!(
            "--accel {name} runs the kernel on the host's own cores, and {} {} TCG (the stage-0 loader behind --load-addr and --raw-dtb reports through semihosting, --icount is TCG's instruction count): drop {} or use --accel tcg",
            tcg_only.join(", "),
            if tcg_only.len() == 1 { "needs" } else { "need" },
            if tcg_only.len() == 1 { "it" } else { "them" }
        ));
    }
    if let Some(cpu) = used.cpu
        && !matches!(cpu.split(',').next(), Some("host" | "max"))
    {
        return Err(format!(
            "--accel {name} runs the kernel on the host's own CPU: --cpu {cpu} cannot be emulated there; leave --cpu out (or say host)"
        ));
    }
    accel.check_host(host)
}

/// `--gic`: 2 or 3, the GIC versions the kernel drives (QEMU's `virt`
/// also offers 4 and `max`, which the kernel would meet as a GICv3 with
/// more frames per redistributor than it maps; and `host`, KVM's).
///
/// # Errors
/// What to say instead.
pub fn parse_gic(text: &str) -> Result<u8, String> {
    match text {
        "2" => Ok(2),
        "3" => Ok(3),
        _ => Err("say 2 (GICv2, QEMU virt's default) or 3 (GICv3)".into()),
    }
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            mem: 1 << 30,
            smp: 1,
            append: String::new(),
            nokaslr: false,
            kaslr_seed: None,
            load_addr: None,
            gdb: None,
            icount: false,
            dtb: None,
            raw_dtb: None,
            uefi: None,
            extra: Vec::new(),
            console: Console::Interactive,
            cpu: DEFAULT_CPU.into(),
            machine: crate::machine::Machine::Virt,
            accel: Accel::Tcg,
            gic: None,
        }
    }
}

/// Where `--raw-dtb` puts its file: RAM base + 96 MiB (0x46000000 on
/// `virt`, 0x6000000 on `raspi3b`), inside RAM on both and clear of stage-0
/// (+1 MiB), the kernel (+2 MiB) and QEMU's initrd (+128 MiB).
pub fn raw_dtb_pa(machine: crate::machine::Machine) -> u64 {
    machine.ram_base() + (96 << 20)
}

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-aarch64";

/// The kernel command line: the user's words, then the options' own.
pub fn kernel_cmdline(boot: &Boot) -> String {
    let mut words: Vec<String> = boot.append.split_whitespace().map(str::to_owned).collect();
    if boot.nokaslr {
        words.push("nokaslr".into());
    }
    if let Some(seed) = boot.kaslr_seed {
        words.push(format!("kaslr.seed={seed:#x}"));
    }
    match boot.load_addr {
        Some(LoadAddr::At(pa)) => words.push(format!("splitmap.load={pa:#x}")),
        Some(LoadAddr::Random) => words.push("splitmap.load=random".into()),
        None => {}
    }
    if boot.raw_dtb.is_some() {
        words.push(format!("splitmap.dtb={:#x}", raw_dtb_pa(boot.machine)));
    }
    words.join(" ")
}

/// QEMU's arguments (without the program name).
pub fn qemu_args(boot: &Boot, artifacts: &Artifacts) -> Vec<String> {
    // EDK2 puts QEMU's device tree in its configuration table only with
    // ACPI off; with ACPI the stub would find no tree and refuse.
    let mut properties = Vec::new();
    if let Some(version) = boot.gic {
        properties.push(format!("gic-version={version}"));
    }
    if boot.uefi.is_some() {
        properties.push("acpi=off".to_string());
    }
    let mut args = boot
        .machine
        .qemu_args(boot.accel.name(), &properties, &boot.cpu, boot.mem, boot.smp);
    // No network: splitmap has no driver, and Debian's QEMU without recommends
    // lacks the default NIC's option ROM.
    args.extend(["-nic".into(), "none".into(), "-no-reboot".into()]);
    match boot.console {
        Console::Interactive => args.push("-nographic".into()),
        Console::Piped => args.extend(["-display", "none", "-serial", "stdio", "-monitor", "none"].map(String::from)),
        Console::Relayed => args.extend(["-display", "none", "-serial", "mon:stdio"].map(String::from)),
    }
    let kernel = match (&boot.load_addr, &boot.raw_dtb) {
        (None, None) => &artifacts.image,
        // The loader reports a refused address through semihosting's exit code.
        _ => {
            args.extend(["-semihosting-config".into(), "enable=on,target=native".into()]);
            &artifacts.boot
        }
    };
    let disk = boot.uefi.as_ref().and_then(|u| u.disk.as_ref());
    if let Some(dir) = disk {
        args.extend([
            "-drive".into(),
            format!("if=none,id=uboot,format=raw,readonly=on,file=fat:{}", path(dir)),
            "-device".into(),
            "virtio-blk-device,drive=uboot".into(),
        ]);
    } else {
        args.extend(["-kernel".into(), path(kernel)]);
    }
    if let Some(uefi) = &boot.uefi {
        args.extend(["-bios".into(), path(&uefi.firmware)]);
        if uefi.rng {
            args.extend(["-device".into(), "virtio-rng-pci".into()]);
        }
    }
    if non_empty(&artifacts.initrd) && disk.is_none() {
        args.extend(["-initrd".into(), path(&artifacts.initrd)]);
    }
    let cmdline = kernel_cmdline(boot);
    if !cmdline.is_empty() && disk.is_none() {
        args.extend(["-append".into(), cmdline]);
    }
    if let Some(dtb) = &boot.dtb {
        args.extend(["-dtb".into(), path(dtb)]);
    }
    if let Some(raw) = &boot.raw_dtb {
        args.extend([
            "-device".into(),
            format!(
                "loader,file={},addr={:#x},force-raw=on",
                path(raw),
                raw_dtb_pa(boot.machine)
            ),
        ]);
    }
    if let Some(port) = boot.gdb {
        args.extend(["-gdb".into(), format!("tcp:127.0.0.1:{port}"), "-S".into()]);
    }
    if boot.icount {
        args.extend(["-icount".into(), "shift=0".into()]);
    }
    args.extend(boot.extra.iter().cloned());
    args
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn non_empty(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
}

/// Reads a size such as `512M`, `1536M`, `4G`, `6g`, `1024` (MiB, as QEMU
/// reads a bare number) or `1073741824B`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    // A bare number is MiB, as QEMU's -m reads it.
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'M'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("size '{text}': unit must be K, M or G")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size '{text}' is not a number with an optional K, M or G"))?;
    let bytes = n.checked_mul(1 << shift).ok_or(format!("size '{text}' is too large"))?;
    if bytes < 128 << 20 || bytes % (1 << 20) != 0 {
        return Err(format!(
            "size '{text}': RAM must be a whole number of MiB, at least 128M"
        ));
    }
    Ok(bytes)
}

/// Reads `random` or a physical address (hex with `0x`, or decimal).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_load_addr(text: &str) -> Result<LoadAddr, String> {
    if text == "random" {
        return Ok(LoadAddr::Random);
    }
    parse_number(text)
        .map(LoadAddr::At)
        .ok_or(format!("load address '{text}': expected 0x… or 'random'"))
}

/// A QEMU command with `args` that ends with this process, however it ends
/// (SIGTERM, SIGHUP, even SIGKILL): QEMU would otherwise keep running, and
/// keep holding the gdb port. QEMU is asked to stop with SIGTERM, not
/// killed: it then gives back the terminal it set to raw mode for
/// `-nographic`, which a killed QEMU leaves raw (no echo, no line editing).
pub fn command(args: &[String]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(QEMU);
    command.args(args);
    // SAFETY: runs in the child between fork and exec, and only makes one
    // async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            // The child gets SIGTERM when the thread that forked it ends.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// The largest file QEMU's `-dtb` can take for the tree it hands the kernel
/// to fit the boot protocol's 2 MiB: QEMU makes room for its fixups by
/// growing the tree to twice the file's size plus 10000 bytes, twice
/// (`load_device_tree`).
pub const QEMU_DTB_LIMIT: u64 = crate::input::DTB_LIMIT / 2 - 10_000;

/// Checks a `--dtb` or `--raw-dtb` file (`option` says which) before QEMU
/// gets it: a regular file (a FIFO or `/dev/zero` would hang it or fill its
/// memory) of at most the boot protocol's 2 MiB, and for `--dtb` small
/// enough that what QEMU makes of it still is ([`QEMU_DTB_LIMIT`]; a tree
/// from QEMU's own `dumpdtb=`, 1 MiB, is not).
///
/// # Errors
/// What is wrong with it, with the option and the file.
pub fn check_dtb(option: &str, path: &Path) -> Result<PathBuf, String> {
    let size = crate::input::check_file(option, path, u64::MAX)?;
    if size > crate::input::DTB_LIMIT {
        return Err(format!(
            "{option} {}: {size} bytes; the boot protocol caps a device tree at 2 MiB",
            path.display()
        ));
    }
    if option == "--dtb" && size > QEMU_DTB_LIMIT {
        return Err(format!(
            "--dtb {}: {size} bytes; QEMU grows a tree it is given to twice its size plus 20000 bytes, past the boot protocol's 2 MiB from {} bytes on: pack it (`dtc -I dtb -O dtb -o PACKED {}`) or hand it over as it is with --raw-dtb",
            path.display(),
            QEMU_DTB_LIMIT + 1,
            path.display()
        ));
    }
    Ok(path.to_path_buf())
}

/// Reads hex (with or without `0x`) for `--kaslr-seed`. Zero is refused: the
/// kernel takes a zero seed as no seed and would pick its own.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_seed(text: &str) -> Result<u64, String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    match u64::from_str_radix(hex, 16) {
        Ok(0) => Err(format!(
            "seed '{text}': 0 means no seed: use --nokaslr, or a non-zero seed"
        )),
        Ok(seed) => Ok(seed),
        Err(_) => Err(format!(
            "seed '{text}': expected 1 to 16 hex digits, with or without 0x"
        )),
    }
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    }
}

/// The command line as a shell would take it, for `-v`.
pub fn shell_quoted(program: &str, args: &[String]) -> String {
    let quote = |a: &str| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@%".contains(c)) {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a socket listens on 127.0.0.1:`port` (or any address), as the
/// kernel's table of TCP sockets says: looking, unlike connecting, does not
/// take QEMU's one gdb connection.
///
/// The table is read a page at a time, and a socket opened or closed
/// between two pages can shift a line out of both (other programs' sockets
/// come and go): a socket missing from one reading is looked for in two
/// more before it counts as absent.
pub fn listening(port: u16) -> bool {
    (0..3).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        listed_as_listening(&std::fs::read_to_string("/proc/net/tcp").unwrap_or_default(), port)
    })
}

/// Whether `table` (the text of /proc/net/tcp) has a socket listening
/// (state 0A) on 127.0.0.1:`port` or on any address at `port`.
fn listed_as_listening(table: &str, port: u16) -> bool {
    let local = [format!("0100007F:{port:04X}"), format!("00000000:{port:04X}")];
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && local.iter().any(|l| l == fields[1]) && fields[3] == "0A"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1\n   1: 0100007F:04D3 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 2 1\n";
        assert!(listed_as_listening(table, 1234));
        // Connected (01), not listening.
        assert!(!listed_as_listening(table, 1235));
        assert!(!listed_as_listening(table, 1236));
    }

    fn artifacts() -> Artifacts {
        Artifacts {
            image: "/k/Image".into(),
            elf: "/k/splitmap.elf".into(),
            initrd: "/nonexistent/initrd.cpio".into(),
            boot: "/k/boot.bin".into(),
        }
    }

    /// QEMU's arguments for `boot` have `present` in this order and none of `absent`.
    fn assert_command_line(boot: &Boot, present: &[&str], absent: &[&str]) {
        let args = qemu_args(boot, &artifacts());
        let mut at = 0;
        for want in present {
            let found = args[at..]
                .iter()
                .position(|a| a == want)
                .unwrap_or_else(|| panic!("{want} missing or out of order in {args:?}"));
            at += found + 1;
        }
        for not in absent {
            assert!(!args.iter().any(|a| a == not), "{not} present in {args:?}");
        }
    }

    #[test]
    fn command_lines_for_each_console() {
        assert_command_line(
            &Boot::default(),
            &["-m", "1024M", "-nographic", "-kernel", "/k/Image"],
            &["-append", "-S", "-initrd"],
        );
        assert_command_line(
            &Boot {
                mem: 6 << 30,
                console: Console::Piped,
                ..Boot::default()
            },
            &["-m", "6144M", "-serial", "stdio", "-monitor", "none"],
            &["-nographic"],
        );
    }

    #[test]
    fn command_lines_through_stage_0() {
        assert_command_line(
            &Boot {
                load_addr: Some(LoadAddr::At(0x4123_4000)),
                append: "loglevel=debug".into(),
                ..Boot::default()
            },
            &[
                "-semihosting-config",
                "-kernel",
                "/k/boot.bin",
                "-append",
                "loglevel=debug splitmap.load=0x41234000",
            ],
            &["/k/Image"],
        );
        assert_command_line(
            &Boot {
                raw_dtb: Some("/t/broken.dtb".into()),
                ..Boot::default()
            },
            &[
                "-kernel",
                "/k/boot.bin",
                "-append",
                "splitmap.dtb=0x46000000",
                "-device",
                "loader,file=/t/broken.dtb,addr=0x46000000,force-raw=on",
            ],
            &[],
        );
        // On the Pi, RAM starts at 0: the raw tree goes 96 MiB into it.
        assert_command_line(
            &Boot {
                raw_dtb: Some("/t/broken.dtb".into()),
                machine: crate::machine::Machine::Raspi3b,
                ..Boot::default()
            },
            &[
                "-kernel",
                "/k/boot.bin",
                "-append",
                "splitmap.dtb=0x6000000",
                "-device",
                "loader,file=/t/broken.dtb,addr=0x6000000,force-raw=on",
            ],
            &[],
        );
    }

    #[test]
    fn command_lines_with_options() {
        assert_command_line(
            &Boot {
                nokaslr: true,
                kaslr_seed: Some(0xabc),
                gdb: Some(1234),
                ..Boot::default()
            },
            &[
                "-append",
                "nokaslr kaslr.seed=0xabc",
                "-gdb",
                "tcp:127.0.0.1:1234",
                "-S",
            ],
            &[],
        );
        assert_command_line(
            &Boot {
                icount: true,
                ..Boot::default()
            },
            &["-icount", "shift=0"],
            &[],
        );
        assert_command_line(
            &Boot {
                extra: vec!["-numa".into(), "node".into()],
                dtb: Some("/t/x.dtb".into()),
                ..Boot::default()
            },
            &["-dtb", "/t/x.dtb", "-numa", "node"],
            &[],
        );
    }

    #[test]
    fn the_accelerator_is_on_the_command_line_with_its_cpu() {
        assert_command_line(
            &Boot::default(),
            &["-accel", "tcg", "-cpu", DEFAULT_CPU],
            &["kvm", "host"],
        );
        for accel in [Accel::Kvm, Accel::Hvf] {
            assert_command_line(
                &Boot {
                    accel,
                    cpu: cpu_for("4k", accel).into(),
                    ..Boot::default()
                },
                &["-accel", accel.name(), "-cpu", "host"],
                &["tcg", DEFAULT_CPU],
            );
        }
        assert_eq!(cpu_for("16k", Accel::Tcg), CPU_FOR_16K);
        assert_eq!(cpu_for("16k", Accel::Kvm), "host");
        assert_eq!(Accel::parse("KVM"), Ok(Accel::Kvm));
        assert_eq!(Accel::parse("tcg"), Ok(Accel::Tcg));
        assert!(Accel::parse("xen").is_err());
    }

    #[test]
    fn a_hypervisor_the_host_or_the_options_rule_out_is_refused_by_name() {
        let x86 = Host {
            arch: "x86_64",
            os: "linux",
            dev_kvm: true,
        };
        let arm_linux = Host {
            arch: "aarch64",
            os: "linux",
            dev_kvm: true,
        };
        let arm_linux_no_kvm = Host {
            dev_kvm: false,
            ..arm_linux
        };
        let mac = Host {
            arch: "aarch64",
            os: "macos",
            dev_kvm: false,
        };
        let plain = AccelUse::default();
        // TCG runs anywhere, with anything.
        let all = AccelUse {
            load_addr: true,
            raw_dtb: true,
            icount: true,
            cpu: Some("cortex-a53"),
        };
        assert_eq!(check_accel(Accel::Tcg, all, x86), Ok(()));
        // Each hypervisor where the host has it, and only there.
        assert_eq!(check_accel(Accel::Kvm, plain, arm_linux), Ok(()));
        assert_eq!(check_accel(Accel::Hvf, plain, mac), Ok(()));
        let e = check_accel(Accel::Kvm, plain, x86).unwrap_err();
        assert!(
            e.starts_with("--accel kvm: needs an arm64 Linux host with /dev/kvm; this is a x86_64 linux host"),
            "{e}"
        );
        let e = check_accel(Accel::Kvm, plain, arm_linux_no_kvm).unwrap_err();
        assert!(e.contains("aarch64 linux host without /dev/kvm"), "{e}");
        assert!(check_accel(Accel::Kvm, plain, mac).is_err());
        let e = check_accel(Accel::Hvf, plain, arm_linux).unwrap_err();
        assert!(
            e.starts_with("--accel hvf: needs macOS on an arm64 host (Apple silicon)"),
            "{e}"
        );
        assert!(check_accel(Accel::Hvf, plain, x86).is_err());
        // What only TCG can do is refused first, on any host, every option named.
        for host in [x86, arm_linux, mac] {
            let e = check_accel(Accel::Kvm, all, host).unwrap_err();
            assert!(e.contains("--load-addr, --raw-dtb, --icount need TCG"), "{e}");
            let icount = AccelUse { icount: true, ..plain };
            let e = check_accel(Accel::Hvf, icount, host).unwrap_err();
            assert!(
                e.starts_with("--accel hvf runs the kernel on the host's own cores, and --icount needs TCG"),
                "{e}"
            );
        }
        // Under a hypervisor the CPU is the host's.
        let a72 = AccelUse {
            cpu: Some("cortex-a72"),
            ..plain
        };
        let e = check_accel(Accel::Kvm, a72, arm_linux).unwrap_err();
        assert!(e.contains("--cpu cortex-a72 cannot be emulated there"), "{e}");
        let host_cpu = AccelUse {
            cpu: Some("host"),
            ..plain
        };
        assert_eq!(check_accel(Accel::Kvm, host_cpu, arm_linux), Ok(()));
    }

    #[test]
    fn the_gic_version_goes_on_the_machine() {
        let with = |gic| {
            let boot = Boot { gic, ..Boot::default() };
            qemu_args(&boot, &artifacts())[..2].join(" ")
        };
        assert_eq!(with(None), "-machine virt");
        assert_eq!(with(Some(2)), "-machine virt,gic-version=2");
        assert_eq!(with(Some(3)), "-machine virt,gic-version=3");
        assert_eq!(parse_gic("3"), Ok(3));
        for bad in ["4", "max", "", "v3", "03"] {
            assert!(parse_gic(bad).unwrap_err().starts_with("say 2"), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let rows = [
            ("512M", Ok(512 << 20)),
            ("1G", Ok(1 << 30)),
            ("1536m", Ok(1536 << 20)),
            ("6G", Ok(6 << 30)),
            ("1024", Ok(1 << 30)),
            ("1073741824B", Ok(1 << 30)),
        ];
        for (text, want) in rows {
            assert_eq!(parse_size(text), want, "{text}");
        }
        for bad in ["", "G", "1T", "-1G", "64M", "1.5G", "1000000B", "64"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_cpus_with_aarch64_are_taken() {
        for cpu in ["cortex-a72", "max", "host", "max,sve=off", CPU_FOR_16K, DEFAULT_CPU] {
            assert_eq!(check_cpu(cpu), Ok(()), "{cpu}");
        }
        let e = check_cpu("cortex-a15").unwrap_err();
        assert!(e.starts_with("--cpu cortex-a15: a 32-bit CPU, without AArch64"), "{e}");
        assert!(e.contains("cortex-a53") && e.contains("max"), "{e}");
        assert!(check_cpu("cortex-m3").unwrap_err().contains("32-bit"));
        assert!(check_cpu("pentium").unwrap_err().contains("not an AArch64 CPU"));
    }

    #[test]
    fn device_trees_must_be_files_that_fit_2_mib() {
        let dir = std::env::temp_dir().join(format!("splitmap-raw-dtb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.dtb");
        std::fs::write(&ok, vec![0u8; 2 << 20]).unwrap();
        assert_eq!(check_dtb("--raw-dtb", &ok), Ok(ok.clone()));
        let big = dir.join("big.dtb");
        std::fs::write(&big, vec![0u8; (2 << 20) + 1]).unwrap();
        assert!(
            check_dtb("--dtb", &big)
                .unwrap_err()
                .ends_with("caps a device tree at 2 MiB")
        );
        assert!(check_dtb("--raw-dtb", &dir.join("missing.dtb")).is_err());
        // QEMU's -dtb doubles the tree: QEMU's own 1 MiB dump would reach
        // the kernel as 2 MiB and 20000 bytes.
        let dumped = dir.join("dumped.dtb");
        std::fs::write(&dumped, vec![0u8; 1 << 20]).unwrap();
        let e = check_dtb("--dtb", &dumped).unwrap_err();
        assert!(
            e.contains("QEMU grows a tree it is given to twice its size") && e.contains("--raw-dtb"),
            "{e}"
        );
        assert_eq!(check_dtb("--raw-dtb", &dumped), Ok(dumped.clone()));
        let fits = dir.join("fits.dtb");
        std::fs::write(&fits, vec![0u8; QEMU_DTB_LIMIT as usize]).unwrap();
        assert_eq!(check_dtb("--dtb", &fits), Ok(fits.clone()));
        std::fs::write(&fits, vec![0u8; QEMU_DTB_LIMIT as usize + 1]).unwrap();
        assert!(check_dtb("--dtb", &fits).is_err());
        let fifo = dir.join("fifo.dtb");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = check_dtb("--dtb", &fifo).unwrap_err();
        assert!(
            e.starts_with("--dtb ") && e.ends_with("is a FIFO, not a regular file"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_addresses_and_seeds() {
        assert_eq!(parse_load_addr("random"), Ok(LoadAddr::Random));
        assert_eq!(parse_load_addr("0x4020_0000"), Ok(LoadAddr::At(0x4020_0000)));
        assert_eq!(parse_load_addr("1075838976"), Ok(LoadAddr::At(0x4020_0000)));
        assert!(parse_load_addr("somewhere").is_err());
        assert_eq!(parse_seed("0xdeadbeef"), Ok(0xdead_beef));
        assert_eq!(parse_seed("ff"), Ok(0xff));
        assert_eq!(parse_seed("0X5"), Ok(5));
        assert!(parse_seed("0x").is_err());
        assert!(parse_seed("0x1ffffffffffffffff").is_err());
        assert!(parse_seed("xyz").is_err());
        let zero = parse_seed("0x0").unwrap_err();
        assert!(zero.contains("0 means no seed"), "{zero}");
    }

    #[test]
    fn the_first_build_of_a_granule_says_so() {
        let dir = std::env::temp_dir().join(format!("splitmap-granule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let note = first_build_note("64k", &dir).unwrap();
        assert!(note.starts_with("building the 64 KiB kernel"), "{note}");
        std::fs::write(dir.join("Image"), b"built").unwrap();
        assert_eq!(first_build_note("64k", &dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quoting() {
        let args = vec!["-append".to_string(), "a b".to_string(), "it's".to_string()];
        assert_eq!(shell_quoted("qemu", &args), r"qemu -append 'a b' 'it'\''s'");
    }
}
