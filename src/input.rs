//! Files the user names for the tool to read (`map --from`, the `.ko` files
//! of `initrd DIR`) or to hand to QEMU (`--dtb`, `--raw-dtb`, `--initrd`):
//! each is checked before it is opened, so that a FIFO, a device
//! (`/dev/zero`) or a symlink to one is refused by name instead of hanging
//! the tool or filling its memory. The writing side is [`crate::output`].

use std::io::Read;
use std::path::Path;

/// The largest transcript `map --from` reads.
pub const TRANSCRIPT_LIMIT: u64 = 64 << 20;
/// The largest `.ko` file `initrd` packs.
pub const MODULE_LIMIT: u64 = 64 << 20;
/// The boot protocol's cap on a device tree (`--dtb`, `--raw-dtb`).
pub const DTB_LIMIT: u64 = 2 << 20;
/// The largest `--initrd`: QEMU puts it at RAM + 128 MiB, and the smallest
/// RAM is 512 MiB.
pub const INITRD_LIMIT: u64 = 256 << 20;

/// Checks that `path` is a regular file (after symlinks) of at most `limit`
/// bytes, and returns its size. `what` names it in the error: the option
/// (`--from`) or an empty string.
///
/// # Errors
/// Says which file, and what is wrong with it.
pub fn check_file(what: &str, path: &Path, limit: u64) -> Result<u64, String> {
    let named = named(what, path);
    // `metadata` follows symlinks and, unlike opening, never waits on a FIFO.
    let meta = std::fs::metadata(path).map_err(|e| format!("{named}: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let is = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(format!("{named}: is {is}, not a regular file"));
    }
    let size = meta.len();
    if size > limit {
        return Err(format!(
            "{named}: {size} bytes, more than the {} MiB this takes",
            limit >> 20
        ));
    }
    Ok(size)
}

/// Reads `path` whole after [`check_file`], and never more than `limit`
/// bytes even if it grows meanwhile.
///
/// # Errors
/// As [`check_file`], or the file system's, with the file's name.
pub fn read_file(what: &str, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let size = check_file(what, path, limit)?;
    let named = || named(what, path);
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", named()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", named()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{}: grew past {} MiB while read", named(), limit >> 20));
    }
    Ok(bytes)
}

/// [`read_file`] as text.
///
/// # Errors
/// As [`read_file`], or if it is not UTF-8.
pub fn read_text(what: &str, path: &Path, limit: u64) -> Result<String, String> {
    String::from_utf8(read_file(what, path, limit)?).map_err(|_| format!("{}: not text (UTF-8)", named(what, path)))
}

/// `--from FILE`, or `FILE` where no option names it.
fn named(what: &str, path: &Path) -> String {
    if what.is_empty() {
        path.display().to_string()
    } else {
        format!("{what} {}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("splitmap-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.txt");
        std::fs::write(&file, "hello").unwrap();
        assert_eq!(read_text("--from", &file, 5).unwrap(), "hello");
        let big = read_file("--from", &file, 4).unwrap_err();
        assert!(big.contains("--from") && big.contains("5 bytes"), "{big}");
        // A symlink to a regular file is read; to a device, refused.
        let link = dir.join("ok.ko");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_file("", &link, 5).unwrap(), b"hello");
        let zero = dir.join("zero.ko");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_file("", &zero, 1 << 20).unwrap_err();
        assert!(e.contains("zero.ko: is a device, not a regular file"), "{e}");
        let e = check_file("--dtb", Path::new("/dev/zero"), DTB_LIMIT).unwrap_err();
        assert!(e.starts_with("--dtb /dev/zero: is a device"), "{e}");
        assert!(check_file("", &dir, 1).unwrap_err().contains("is a folder"));
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // Opening it would wait for a writer: it must be refused first.
        let e = read_text("--from", &fifo, 1 << 20).unwrap_err();
        assert!(e.contains("is a FIFO"), "{e}");
        assert!(read_file("", &dir.join("missing"), 1).unwrap_err().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
