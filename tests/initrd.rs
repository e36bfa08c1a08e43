//! The initrd: build.rs packs the sample modules into a cpio (newc) archive,
//! QEMU passes it, the kernel lists it.

mod common;
use common::*;

#[test]
fn the_kernel_reads_what_the_build_packs() {
    let files: Vec<(&str, &[u8])> = vec![("a.ko", b"\x7fELF"), ("empty", b""), ("odd-sized.bin", &[7; 13])];
    let archive = splitmap::kbuild::cpio(&files);
    let read: Vec<(String, Vec<u8>)> = kernel::boot::cpio::files(&archive)
        .map(|f| f.map(|f| (f.name.to_string(), f.data.to_vec())).unwrap())
        .collect();
    let want: Vec<(String, Vec<u8>)> = files.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect();
    assert_eq!(read, want);
    // Truncated or foreign archives are errors, not panics.
    assert!(kernel::boot::cpio::files(&archive[..archive.len() / 2]).any(|f| f.is_err()));
    assert!(matches!(kernel::boot::cpio::files(b"not a cpio archive at all, long enough to hold a header of 110 bytes............................................").next(), Some(Err(kernel::boot::cpio::CpioError::BadMagic(0)))));
}

#[test]
fn modules_lists_the_initrd() {
    // The archive on the host, read by hand: the header's filesize field
    // (hex, at offset 54) of the entry named hello.ko.
    let initrd = artifact("initrd");
    let name_at = initrd
        .windows(9)
        .position(|w| w == b"hello.ko\0")
        .expect("hello.ko in the initrd");
    let header = &initrd[name_at - 110..name_at];
    assert_eq!(&header[..6], b"070701");
    let size = u64::from_str_radix(std::str::from_utf8(&header[54..62]).unwrap(), 16).unwrap();

    let out = session(&[], &["modules"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("hello "))
        .expect("modules lists hello, as insmod takes it");
    assert_eq!(line, format!("hello size={size} elf=rel/aarch64"));
    assert!(!out.contains(".ko "), "no file name where a module name goes:\n{out}");
}

/// An initrd made by hand (`splitmap initrd` would refuse it) with files no
/// `insmod` could load: `modules` lists each as a comment saying why, its
/// name escaped, and lists the loadable ones by the name `insmod` takes.
#[test]
fn modules_says_which_files_insmod_would_refuse_and_why() {
    let hello = module_file("hello");
    let files: Vec<(&str, &[u8])> = vec![
        ("hello.ko", &hello),
        ("data.ko.ko", &hello),
        ("my mod.ko", &hello),
        (".ko", &hello),
        ("\x1b[31mred.ko", &hello),
        ("README", b"not a module"),
    ];
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("odd-names.cpio");
    std::fs::write(&path, splitmap::kbuild::cpio(&files)).unwrap();
    let out = session(
        &["--initrd", &path.display().to_string()],
        &["modules", "insmod hello.ko", "lsmod"],
    );
    let size = hello.len();
    // (the line `modules` prints for each file, in archive order)
    let want = [
        format!("hello size={size} elf=rel/aarch64"),
        format!(
            "# data.ko.ko size={size}: no module: a module name does not end in .ko (NAME and NAME.ko both mean module NAME)"
        ),
        format!(
            "# my mod.ko size={size}: no module: a module name is printable ASCII without spaces, as the shell types it; this one has a space (0x20) at byte 2"
        ),
        format!("# .ko size={size}: no module: no module name before .ko (insmod NAME loads NAME.ko)"),
        format!(
            "# \\x1b[31mred.ko size={size}: no module: a module name is printable ASCII without spaces, as the shell types it; this one has a control character (0x1b) at byte 0"
        ),
        "# README size=12: no module: not a .ko file (insmod NAME loads NAME.ko)".to_string(),
    ];
    let listed: Vec<&str> = out
        .split("splitmap> modules")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("splitmap> "))
        .collect();
    assert_eq!(listed, want, "{out}");
    assert!(!out.contains('\x1b'), "the escape byte is never printed raw");
    assert!(out.lines().any(|l| l.starts_with("hello base=")), "hello loads: {out}");
}

/// `splitmap initrd` refuses a `.ko` whose name no `insmod` could take,
/// naming the file and the rule, and writes nothing: one row per name.
#[test]
fn initrd_refuses_names_insmod_could_not_take() {
    let long = format!("{}.ko", "m".repeat(kernel::module::name::NAME_MAX + 1));
    // (file name, what the error says)
    let rows = [
        ("my mod.ko", "a space (0x20) at byte 2"),
        ("tab\t.ko", "a control character (0x09) at byte 3"),
        ("\x1b[31m.ko", "a control character (0x1b) at byte 0"),
        ("caf\u{e9}.ko", "a non-ASCII byte (0xc3) at byte 3"),
        (".ko", "no module name before .ko"),
        ("data.ko.ko", "a module name does not end in .ko"),
        (long.as_str(), "a module name is at most 55 bytes; this one has 56"),
    ];
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("initrd-odd-names");
    let out = dir.with_extension("cpio");
    for (name, why) in rows {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&out);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello.ko"), b"\x7fELF").unwrap();
        std::fs::write(dir.join(name), b"\x7fELF").unwrap();
        let run = splitmap(&["initrd", &dir.display().to_string(), "-o", &out.display().to_string()]);
        assert_eq!(run.code, Some(1), "{name:?}: {}", run.stderr);
        let named = format!("{:?}: ", dir.join(name).display().to_string());
        assert!(
            run.stderr.contains(&named) && run.stderr.contains(why) && run.stderr.contains("rename it"),
            "{name:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains('\x1b') && !run.stderr.contains('\t'),
            "printed escaped"
        );
        assert!(!out.exists(), "{name:?}: no archive written");
    }
    // A name that is fine goes in as before.
    std::fs::remove_file(dir.join(rows.last().unwrap().0)).unwrap();
    let run = splitmap(&["initrd", &dir.display().to_string(), "-o", &out.display().to_string()]);
    assert!(run.success && out.exists(), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `.ko` in the folder that is a FIFO or a symlink to `/dev/zero` is
/// refused by name, not read forever.
#[test]
fn initrd_refuses_a_ko_that_is_no_regular_file() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("initrd-odd-ko");
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("initrd-odd.cpio");
    for (name, make) in [("fifo.ko", "fifo"), ("zero.ko", "link")] {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.ko"), b"\x7fELF").unwrap();
        let odd = dir.join(name);
        if make == "fifo" {
            assert!(Command::new("mkfifo").arg(&odd).status().unwrap().success());
        } else {
            std::os::unix::fs::symlink("/dev/zero", &odd).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_splitmap"))
            .args(["initrd", &dir.display().to_string(), "-o", &out.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("initrd with {name} still running after 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let run = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!("{}: is a", odd.display())) && err.contains("not a regular file"),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}: no archive written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
