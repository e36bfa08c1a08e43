//! `splitmap initrd`: a folder's modules packed for `run --initrd`.

use crate::InitrdArgs;

/// `splitmap initrd`: writes the `.ko` files of `args.dir` into a cpio
/// archive, and says which went in. A `.ko` whose name no `insmod` could
/// take (`kernel::module::name`: a space or a control character in it, a
/// bare `.ko`, `x.ko.ko`, not UTF-8) is refused by name, and nothing is
/// written.
pub fn initrd(args: &InitrdArgs) -> Result<(), String> {
    splitmap::output::check_writable(&args.output)?;
    let dir = &args.dir;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        // Not `Path::extension`: it sees none in `.ko`, which would be left
        // out without a word.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".ko") {
            kernel::module::name::of_file(&name).map_err(|e| {
                format!(
                    "{:?}: {e}; rename it, or move it out of {}",
                    path.display().to_string(),
                    dir.display()
                )
            })?;
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
