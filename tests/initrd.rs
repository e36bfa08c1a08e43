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
        .find(|l| l.starts_with("hello.ko "))
        .expect("modules lists hello.ko");
    assert_eq!(line, format!("hello.ko size={size} elf=rel/aarch64"));
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
