//! Files the tool writes for the user (maps, archives, charts, bench
//! tables): where one goes is checked before the work that fills it, and it
//! is written beside and renamed into place, so a failure leaves the old
//! file whole, never half of a new one.

use std::path::{Path, PathBuf};

/// The temporary name `path` is written under before it is renamed.
fn beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// What `path` names now, if anything, that a file must not replace: the
/// rename in [`write_whole`] would swap a device (`-o /dev/null`), a FIFO
/// or a socket for a regular file, and the machine would lose the device.
fn not_a_file(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path).ok()?.file_type();
    if kind.is_dir() {
        Some("a folder")
    } else if kind.is_block_device() || kind.is_char_device() {
        Some("a device")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// Where a write to `path` goes: the file a symbolic link names (the link
/// stays a link), else `path` itself.
fn target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Refuses `path` before any work is done for it: its folder must exist and
/// take a new file, and it must not be a folder, a device, a FIFO or a
/// socket.
///
/// # Errors
/// Says what is wrong with `path`.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if let Some(kind) = not_a_file(path) {
        return Err(format!(
            "{}: is {kind}, not a file: name a file to write",
            path.display()
        ));
    }
    let probe = beside(&target(path));
    std::fs::write(&probe, b"").map_err(|e| format!("{}: cannot write there: {e}", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all.
///
/// # Errors
/// The file system's, with the path.
pub fn write_whole(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(kind) = not_a_file(path) {
        return Err(format!(
            "{}: is {kind}, not a file: name a file to write",
            path.display()
        ));
    }
    let into = target(path);
    let fresh = beside(&into);
    let written = std::fs::write(&fresh, bytes).and_then(|()| std::fs::rename(&fresh, &into));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&fresh);
        format!("{}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn a_file_is_replaced_whole_and_a_bad_place_refused_first() {
        let dir = std::env::temp_dir().join(format!("splitmap-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("map.svg");
        write_whole(&file, "old").unwrap();
        write_whole(&file, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        assert!(check_writable(&file).is_ok());
        assert!(
            check_writable(&dir.join("no/such/folder.svg"))
                .unwrap_err()
                .contains("cannot write there")
        );
        assert!(check_writable(&dir).unwrap_err().contains("is a folder"));
        // A FIFO (as a device would be) is never replaced by a file.
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(check_writable(&fifo).unwrap_err().contains("is a FIFO, not a file"));
        assert!(write_whole(&fifo, "x").unwrap_err().contains("is a FIFO"));
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        std::fs::remove_file(&fifo).unwrap();
        // A symbolic link to a file: the file is written, the link stays.
        let link = dir.join("link.svg");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        write_whole(&link, "through").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "through");
        std::fs::remove_file(&link).unwrap();
        write_whole(&file, "new").unwrap();
        // A write that fails leaves the old file as it was.
        assert!(write_whole(&dir, "x").is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
