//! The machines `splitmap` boots: QEMU `virt` (the default) and `raspi3b`, a
//! Raspberry Pi 3 with RAM at physical address 0. The kernel is the same
//! Image for both: only QEMU's arguments and the device tree differ, and on
//! `raspi3b`, where QEMU has no tree of its own, the tree is the project's
//! (boot/boards/raspi3b.dts).

use std::path::{Path, PathBuf};

/// A machine QEMU emulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Machine {
    /// QEMU `virt`: RAM from 0x40000000, PSCI, a GIC, a tree from QEMU.
    #[default]
    Virt,
    /// QEMU `raspi3b`: 1 GiB at 0 (the top 64 MiB the VideoCore's), four
    /// Cortex-A53s entered at EL2, the secondaries on a spin table, no PSCI.
    Raspi3b,
}

/// The Raspberry Pi 3's tree, compiled from boot/boards/raspi3b.dts
/// (tests/raspi.rs checks they agree), with a zero `/chosen/kaslr-seed`
/// that [`raspi3b_tree`] fills in.
pub const RASPI3B_DTB: &[u8] = include_bytes!("../boot/boards/raspi3b.dtb");

/// What `raspi3b` insists on: QEMU refuses any other RAM size or CPU count.
pub const RASPI3B_MEM: u64 = 1 << 30;
/// The BCM2837's four cores.
pub const RASPI3B_SMP: u32 = 4;
/// The most CPUs `--smp` gives QEMU `virt` (the kernel's `MAX_CPUS`).
pub const VIRT_MAX_SMP: u32 = 8;

impl Machine {
    /// Reads `--machine`'s value.
    ///
    /// # Errors
    /// The machines there are.
    pub fn parse(text: &str) -> Result<Machine, String> {
        match text {
            "virt" => Ok(Machine::Virt),
            "raspi3b" => Ok(Machine::Raspi3b),
            _ => Err("say virt or raspi3b".into()),
        }
    }

    /// Where its RAM starts.
    pub fn ram_base(self) -> u64 {
        match self {
            Machine::Virt => 0x4000_0000,
            Machine::Raspi3b => 0,
        }
    }

    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Virt => "virt",
            Machine::Raspi3b => "raspi3b",
        }
    }

    /// QEMU's `-machine` (with `properties`, e.g. `gic-version=3`), `-accel`,
    /// `-cpu`, `-m` and `-smp` for this machine. `raspi3b`
    /// has its own CPU (QEMU ignores `-cpu` there, so none is passed).
    pub fn qemu_args(self, accel: &str, properties: &[String], cpu: &str, mem: u64, smp: u32) -> Vec<String> {
        let machine = std::iter::once(self.name().to_string())
            .chain(properties.iter().cloned())
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec!["-machine".into(), machine, "-accel".into(), accel.into()];
        if self == Machine::Virt {
            args.extend(["-cpu".into(), cpu.into()]);
        }
        args.extend(["-m".into(), format!("{}M", mem >> 20), "-smp".into(), smp.to_string()]);
        args
    }

    /// Refuses, before QEMU starts, what this machine cannot do: on
    /// `raspi3b`, RAM other than 1 GiB, CPUs other than 4, a `--cpu` (its
    /// CPU is the SoC's), and the 16 KiB granule, which the Cortex-A53 lacks.
    ///
    /// # Errors
    /// Which option, and why.
    pub fn check(self, mem: u64, smp: Option<u32>, granule: &str, cpu: Option<&str>) -> Result<(), String> {
        if self == Machine::Virt {
            return match smp {
                Some(n) if !(1..=VIRT_MAX_SMP).contains(&n) => Err(format!(
                    "--smp {n}: the kernel brings up 1 to {VIRT_MAX_SMP} CPUs; say a number in that range"
                )),
                _ => Ok(()),
            };
        }
        if mem != RASPI3B_MEM {
            return Err(format!(
                "--machine raspi3b has 1 GiB of RAM, no more and no less: drop --mem (it is {} MiB)",
                mem >> 20
            ));
        }
        if let Some(smp) = smp.filter(|n| !(1..=RASPI3B_SMP).contains(n)) {
            return Err(format!(
                "--machine raspi3b has {RASPI3B_SMP} CPUs, which QEMU insists on: --smp takes 1 to {RASPI3B_SMP} there, as maxcpus=N (it is {smp})"
            ));
        }
        if let Some(cpu) = cpu {
            return Err(format!(
                "--machine raspi3b has its own CPU (a Cortex-A53): drop --cpu (it is {cpu})"
            ));
        }
        if granule.eq_ignore_ascii_case("16k") {
            return Err("--granule 16k: the Raspberry Pi 3's Cortex-A53 has no 16 KiB granule; say 4k or 64k".into());
        }
        Ok(())
    }
}

/// The Pi's tree with `seed` in `/chosen/kaslr-seed` (0: none, for
/// `--nokaslr`): QEMU's `raspi3b` writes no seed, and without one (and no
/// RNDR on the A53) the kernel would not randomise.
///
/// # Errors
/// If the compiled tree has no 8-byte `/chosen/kaslr-seed` to fill.
pub fn raspi3b_tree(seed: u64) -> Result<Vec<u8>, String> {
    let mut tree = RASPI3B_DTB.to_vec();
    let at = property_value(&tree, "chosen", "kaslr-seed")
        .filter(|r| r.len() == 8)
        .ok_or("boot/boards/raspi3b.dtb has no 8-byte /chosen/kaslr-seed to fill")?;
    tree[at].copy_from_slice(&seed.to_be_bytes());
    Ok(tree)
}

/// Where the value of property `name` of the root's child `node` (its name
/// before any `@`) sits in the flattened tree `fdt`.
fn property_value(fdt: &[u8], node: &str, name: &str) -> Option<std::ops::Range<usize>> {
    const BEGIN_NODE: u32 = 1;
    const END_NODE: u32 = 2;
    const PROP: u32 = 3;
    const NOP: u32 = 4;
    let word = |at: usize| -> Option<u32> { Some(u32::from_be_bytes(fdt.get(at..at + 4)?.try_into().ok()?)) };
    let (structs, strings) = (word(8)? as usize, word(12)? as usize);
    let mut at = structs;
    let mut path: Vec<&[u8]> = Vec::new();
    loop {
        match word(at)? {
            BEGIN_NODE => {
                let start = at + 4;
                let len = fdt.get(start..)?.iter().position(|&b| b == 0)?;
                let full = &fdt[start..start + len];
                path.push(full.split(|&b| b == b'@').next().unwrap_or(full));
                at = (start + len + 1).next_multiple_of(4);
            }
            END_NODE => {
                path.pop()?;
                at += 4;
            }
            PROP => {
                let len = word(at + 4)? as usize;
                let name_at = strings + word(at + 8)? as usize;
                let prop = fdt.get(name_at..)?.split(|&b| b == 0).next()?;
                let value = at + 12..at + 12 + len;
                if path.len() == 2 && path[1] == node.as_bytes() && prop == name.as_bytes() {
                    return (value.end <= fdt.len()).then_some(value);
                }
                at = (value.end).next_multiple_of(4);
            }
            NOP => at += 4,
            _ => return None,
        }
    }
}

/// Where the seeded trees go while their boots run.
pub fn trees_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/machines")
}

/// Writes the tree a `raspi3b` boot gets (see [`raspi3b_tree`]) where QEMU
/// can read it: a file of its own per boot (`raspi3b-PID-N.dtb`: a sweep
/// boots several at once, each with its own seed). [`remove_trees`] deletes
/// this process's files when it ends; files a process left behind (killed
/// before it could) are deleted here once that process is gone.
///
/// # Errors
/// If it cannot be written.
pub fn write_raspi3b_tree(dir: &Path, seed: u64) -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    remove_orphans(dir);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("raspi3b-{}-{n}.dtb", std::process::id()));
    crate::output::write_whole(&path, &raspi3b_tree(seed)?)?;
    Ok(path)
}

/// The process that wrote a seeded tree, from its name.
fn writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("raspi3b-")?.strip_suffix(".dtb")?;
    rest.split('-').next()?.parse().ok()
}

/// Deletes the seeded trees `dir` holds whose writer `gone` says is gone.
fn remove_where(dir: &Path, gone: impl Fn(u32) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if writer(&name.to_string_lossy()).is_some_and(&gone) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes trees whose writer no longer runs (where /proc says so).
fn remove_orphans(dir: &Path) {
    if Path::new("/proc/self").exists() {
        remove_where(dir, |pid| !Path::new(&format!("/proc/{pid}")).exists());
    }
}

/// Deletes the trees this process wrote: its boots are over.
pub fn remove_trees(dir: &Path) {
    let me = std::process::id();
    remove_where(dir, |pid| pid == me);
}

/// A fresh random seed (from the host's /dev/urandom), never 0.
///
/// # Errors
/// If /dev/urandom cannot be read.
pub fn fresh_seed() -> Result<u64, String> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(u64::from_ne_bytes(bytes).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_machine_has_its_qemu_arguments() {
        assert_eq!(
            Machine::Virt.qemu_args("tcg", &[], "cortex-a72", 1 << 30, 1),
            [
                "-machine",
                "virt",
                "-accel",
                "tcg",
                "-cpu",
                "cortex-a72",
                "-m",
                "1024M",
                "-smp",
                "1"
            ]
        );
        assert_eq!(
            Machine::Raspi3b.qemu_args("tcg", &[], "cortex-a72", 1 << 30, 4),
            ["-machine", "raspi3b", "-accel", "tcg", "-m", "1024M", "-smp", "4"]
        );
        assert_eq!(Machine::parse("raspi3b"), Ok(Machine::Raspi3b));
        assert!(Machine::parse("raspi4b").is_err());
    }

    #[test]
    fn smp_is_one_to_eight_on_virt_and_one_to_four_on_the_pi() {
        for n in [1, 4, 8] {
            assert_eq!(Machine::Virt.check(1 << 30, Some(n), "4k", None), Ok(()));
        }
        for n in [0, 9] {
            let e = Machine::Virt.check(1 << 30, Some(n), "4k", None).unwrap_err();
            assert!(e.contains("1 to 8"), "{e}");
        }
        assert_eq!(Machine::Raspi3b.check(1 << 30, Some(2), "4k", None), Ok(()));
    }

    #[test]
    fn raspi3b_refuses_what_it_cannot_be() {
        let ok = Machine::Raspi3b.check(1 << 30, None, "4k", None);
        assert_eq!(ok, Ok(()));
        assert_eq!(Machine::Raspi3b.check(1 << 30, Some(4), "64k", None), Ok(()));
        let mem = Machine::Raspi3b.check(2 << 30, None, "4k", None).unwrap_err();
        assert!(mem.contains("1 GiB") && mem.contains("2048 MiB"), "{mem}");
        assert!(
            Machine::Raspi3b
                .check(1 << 30, Some(5), "4k", None)
                .unwrap_err()
                .contains("--smp takes 1 to 4")
        );
        assert!(
            Machine::Raspi3b
                .check(1 << 30, None, "4k", Some("max"))
                .unwrap_err()
                .contains("drop --cpu")
        );
        let g = Machine::Raspi3b.check(1 << 30, None, "16K", None).unwrap_err();
        assert!(
            g.starts_with("--granule 16k: the Raspberry Pi 3's Cortex-A53 has no 16 KiB granule"),
            "{g}"
        );
        // virt takes them all.
        assert_eq!(Machine::Virt.check(2 << 30, Some(2), "16k", Some("max")), Ok(()));
    }

    #[test]
    fn seeded_trees_are_one_per_boot_and_removed_after() {
        let dir = std::env::temp_dir().join(format!("splitmap-trees-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (
            write_raspi3b_tree(&dir, 1).unwrap(),
            write_raspi3b_tree(&dir, 2).unwrap(),
        );
        assert_ne!(a, b, "two boots at once, two files");
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Left by a process that is gone (no PID is this large), and a file
        // that is none of these trees: only the first goes on the next write.
        let orphan = dir.join("raspi3b-4294967295-0.dtb");
        let other = dir.join("notes.txt");
        std::fs::write(&orphan, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        let c = write_raspi3b_tree(&dir, 3).unwrap();
        assert!(!orphan.exists() && other.exists() && a.exists() && c.exists());
        remove_trees(&dir);
        assert!(!a.exists() && !b.exists() && !c.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_seed_lands_in_chosen_and_nowhere_else() {
        let seeded = raspi3b_tree(0x0123_4567_89ab_cdef).unwrap();
        let at = property_value(&seeded, "chosen", "kaslr-seed").unwrap();
        assert_eq!(seeded[at.clone()], 0x0123_4567_89ab_cdef_u64.to_be_bytes());
        let differing: Vec<usize> = (0..seeded.len()).filter(|&i| seeded[i] != RASPI3B_DTB[i]).collect();
        assert!(differing.iter().all(|i| at.contains(i)), "{differing:?}");
        assert_eq!(seeded.len(), RASPI3B_DTB.len());
        assert_eq!(property_value(RASPI3B_DTB, "chosen", "nothing"), None);
        assert_ne!(fresh_seed().unwrap(), 0);
    }
}
