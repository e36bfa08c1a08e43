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

/// Refuses `path` before any work is done for it: its folder must exist and
/// take a new file, and it must not be a folder itself.
///
/// # Errors
/// Says what is wrong with `path`.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{}: is a folder, not a file", path.display()));
    }
    let probe = beside(path);
    std::fs::write(&probe, b"").map_err(|e| format!("{}: cannot write there: {e}", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all.
///
/// # Errors
/// The file system's, with the path.
pub fn write_whole(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    let fresh = beside(path);
    let written = std::fs::write(&fresh, bytes).and_then(|()| std::fs::rename(&fresh, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&fresh);
        format!("{}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A write that fails leaves the old file as it was.
        assert!(write_whole(&dir, "x").is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
