//! Helpers for the QEMU tests: run the real `splitmap` binary, parse what the
//! shell prints: the formats the README documents (layout rows, the boot
//! line, KTAP).
#![allow(dead_code)] // each test binary uses its own subset

pub mod gdb;
pub mod mutants;

use std::process::Command;

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;
/// QEMU `virt` puts RAM here.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The kernel's link address (kernel/pi/src/layout.rs).
pub const KIMAGE_VADDR: u64 = 0xffff_8000_8000_0000;
/// The linear map's base (kernel/pi/src/layout.rs).
pub const PAGE_OFFSET: u64 = 0xffff_0000_0000_0000;

/// One run of `splitmap`.
pub struct Run {
    pub success: bool,
    /// The exit code (None when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `splitmap ARGS` to completion.
pub fn splitmap(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(args)
        .output()
        .expect("run splitmap");
    Run {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Boots with `options`, types `cmds`, and insists on a clean power-off.
pub fn session(options: &[&str], cmds: &[&str]) -> String {
    let mut args = vec!["run", "--timeout", "120"];
    args.extend_from_slice(options);
    for c in cmds {
        args.extend(["--cmd", c]);
    }
    let run = splitmap(&args);
    assert!(
        run.success,
        "splitmap {args:?} failed: {}\n--- output:\n{}",
        run.stderr, run.stdout
    );
    run.stdout
}

/// What `cmd` printed, up to the next prompt.
pub fn output<'a>(out: &'a str, cmd: &str) -> &'a str {
    let after = out
        .split(&format!("splitmap> {cmd}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `{cmd}` in\n{out}"));
    &after[..after.find("splitmap> ").unwrap_or(after.len())]
}

pub fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {text}"))
}

fn range(text: &str) -> (u64, u64) {
    let (a, b) = text.split_once('-').unwrap_or_else(|| panic!("not a range: {text}"));
    (hex(a), hex(b))
}

/// `splitmap: image pa=0x… va=0x… kaslr=0x… (SOURCE)` → (pa, va).
pub fn boot_line(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("splitmap: image "))
        .expect("boot line");
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(hex)
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    (field("pa="), field("va="))
}

/// One `layout` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub va: (u64, u64),
    pub pa: Option<(u64, u64)>,
    pub prot: String,
    /// (1G, 2M, 4K) descriptors.
    pub map: (u64, u64, u64),
    /// Runs of them marked contiguous (`+cont:N`).
    pub cont: u64,
}

/// Parses every layout row in `out`.
pub fn layout_rows(out: &str) -> Vec<Row> {
    out.lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|w| w.starts_with("va=")))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_string();
            let mut row = Row {
                name,
                va: (0, 0),
                pa: None,
                prot: String::new(),
                map: (0, 0, 0),
                cont: 0,
            };
            for w in words {
                if let Some(v) = w.strip_prefix("va=") {
                    row.va = range(v);
                } else if let Some(v) = w.strip_prefix("pa=") {
                    row.pa = Some(range(v));
                } else if let Some(v) = w.strip_prefix("prot=") {
                    row.prot = v.to_string();
                } else if let Some(v) = w.strip_prefix("map=") {
                    let (v, cont) = v.split_once("+cont:").unwrap_or((v, "0"));
                    row.cont = cont.parse().unwrap();
                    let n: Vec<u64> = v
                        .split(',')
                        .map(|kv| kv.split(':').nth(1).unwrap().parse().unwrap())
                        .collect();
                    row.map = (n[0], n[1], n[2]);
                }
            }
            row
        })
        .collect()
}

pub fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} row in {rows:#?}"))
}

/// The KTAP closing line `N passed, N failed[, N skipped]` → (passed, failed).
pub fn ktap_totals(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split(", ").collect();
            w.len() >= 2 && w[0].ends_with(" passed") && w[1].ends_with(" failed")
        })
        .unwrap_or_else(|| panic!("no closing KTAP line in:\n{out}"));
    let num = |part: &str| part.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    let parts: Vec<&str> = line.split(", ").collect();
    (num(parts[0]), num(parts[1]))
}

/// The minimum descriptors for a linear map of `[start, start + size)` when
/// VA and PA agree modulo 1 GiB, from arithmetic: (1G, 2M, 4K).
pub fn expected_linear_descriptors(start: u64, size: u64) -> (u64, u64, u64) {
    let end = start + size;
    let gigs = (end / GIB).saturating_sub(start.div_ceil(GIB));
    let two_megs = (end / (2 * MIB)).saturating_sub(start.div_ceil(2 * MIB)) - gigs * 512;
    let pages = size / 4096 - (gigs * 512 + two_megs) * 512;
    (gigs, two_megs, pages)
}

/// The contents of an artifact `splitmap build` lists (`image`, `elf`, …).
pub fn artifact(key: &str) -> Vec<u8> {
    granule_artifact("4k", key)
}

/// [`artifact`], of the build for `granule` (`4k`, `16k`, `64k`).
pub fn granule_artifact(granule: &str, key: &str) -> Vec<u8> {
    let build = splitmap(&["build", "--granule", granule]);
    assert!(build.success, "{}", build.stderr);
    let prefix = format!("{key}: ");
    let path = build
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key} line in {}", build.stdout));
    std::fs::read(path).unwrap()
}

/// The `free     frames=N` values `mem` printed, in order.
pub fn free_frames(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix("free     frames="))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// The tree QEMU makes for `machine` (`virt`, `virt,gic-version=3`, …)
/// with a cortex-a72, 1 GiB and `args`, as `-machine …,dumpdtb=` writes it
/// (into the tests' temporary directory as NAME.dtb).
pub fn qemu_tree(name: &str, machine: &str, args: &[&str]) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.dtb"));
    let out = Command::new("qemu-system-aarch64")
        .arg("-machine")
        .arg(format!("{machine},dumpdtb={}", path.display()))
        .args(["-cpu", "cortex-a72", "-m", "1024M", "-nic", "none", "-display", "none"])
        .args(args)
        .output()
        .expect("run qemu-system-aarch64");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&path).unwrap()
}

/// `dtc` turning `input` from `from` into `to` (each `dtb` or `dts`): a
/// blob it writes packed.
pub fn dtc(from: &str, to: &str, input: &[u8]) -> Vec<u8> {
    use std::process::Stdio;
    let mut child = Command::new("dtc")
        .args(["-q", "-I", from, "-O", to])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dtc (device-tree-compiler, scripts/setup.sh installs it)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dtc: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The kernel Image's `image_size` header field: bytes it needs in RAM.
pub fn image_size() -> u64 {
    u64::from_le_bytes(artifact("image")[16..24].try_into().unwrap())
}

/// Runs `f` on each case, a few at a time (QEMU uses one host core per boot).
pub fn in_parallel<T: Sync>(cases: &[T], f: impl Fn(&T) + Sync) {
    for chunk in cases.chunks(3) {
        std::thread::scope(|s| {
            for case in chunk {
                s.spawn(|| f(case));
            }
        });
    }
}

/// Module `name`.ko as build.rs made it (next to the initrd).
pub fn module_file(name: &str) -> Vec<u8> {
    let build = splitmap(&["build"]).stdout;
    let initrd = build.lines().find_map(|l| l.strip_prefix("initrd: ")).unwrap();
    let path = std::path::Path::new(initrd).with_file_name(format!("{name}.ko"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every sample module in modules/.
pub const MODULES: [&str; 5] = ["hello", "data", "farcalls", "pingpong", "faulty"];

/// What a kernel built with the test-only cargo `feature` prints when
/// booted as `boot` says (under target/FEATURE/), typing `lines`: for the
/// tests that show a check fails when the invariant it guards is broken.
pub fn boot_kernel_with_feature(feature: &str, boot: splitmap::qemu::Boot, lines: &[&str]) -> String {
    use splitmap::qemu::{self, Artifacts};
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = workspace.join("target").join(feature);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = splitmap::kbuild::cargo_build(
        std::path::Path::new(&cargo),
        workspace,
        &dir,
        "splitmap-kernel",
        &[feature],
        &[],
    )
    .unwrap();
    let image = splitmap::kbuild::kernel_image(&built.executable("splitmap-kernel").unwrap()).unwrap();
    let image_path = dir.join("Image");
    std::fs::write(&image_path, image).unwrap();
    let artifacts = Artifacts {
        image: image_path,
        ..Artifacts::built()
    };
    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let command = qemu::command(&qemu::qemu_args(&boot, &artifacts));
    let transcript = splitmap::session::run(command, &lines, std::time::Duration::from_secs(60), |_| {}).unwrap();
    transcript.output.replace('\r', "")
}
