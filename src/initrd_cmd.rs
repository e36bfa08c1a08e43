//! `splitmap initrd`: a folder's modules packed for `run --initrd`.

use crate::InitrdArgs;

/// `splitmap initrd`: writes the `.ko` files of `args.dir` into a cpio
/// archive, and says which went in.
pub fn initrd(args: &InitrdArgs) -> Result<(), String> {
    splitmap::output::check_writable(&args.output)?;
    let dir = &args.dir;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "ko") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A `.ko` may be a FIFO or a symlink to a device: read with care.
            let bytes = splitmap::input::read_file("", &path, splitmap::input::MODULE_LIMIT)?;
            files.push((name, bytes));
        }
    }
    if files.is_empty() {
        return Err(format!("{}: no .ko files", dir.display()));
    }
    files.sort();
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    splitmap::output::write_whole(&args.output, splitmap::kbuild::cpio(&entries))?;
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    println!("initrd: {} ({})", args.output.display(), names.join(", "));
    Ok(())
}
