//! No write-once cell (`kernel/src/arch/once.rs`) starts with a value that
//! holds an address in the image. Boot fills some cells before the KASLR
//! move, and the move adds its offset to every word the linker listed as
//! holding a link-time address (the RELR list): over such a word, what boot
//! wrote (a pointer into the device tree, a count) would be moved too.
//! `spin::Once`, which the cells replaced, held nothing until filled.
//!
//! Read from the built kernel: every `static NAME: WriteOnce<…>` in the
//! kernel's sources, found among the ELF's symbols, against the RELR list.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};

/// `kernel::a::b::NAME` for each `static NAME: WriteOnce<` in `dir`, the
/// module path following the file's (`mod.rs` is its folder's module).
fn cells(dir: &Path, module: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            cells(&path, &format!("{module}::{stem}"), found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let here = match stem.as_str() {
                "mod" | "lib" => module.to_string(),
                _ => format!("{module}::{stem}"),
            };
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Some(rest) = line.trim_start().strip_prefix("static ") else {
                    continue;
                };
                if let Some((name, ty)) = rest.split_once(':')
                    && ty.trim_start().starts_with("WriteOnce<")
                {
                    found.push(format!("{here}::{}", name.trim()));
                }
            }
        }
    }
}

#[test]
fn no_write_once_cell_starts_with_an_image_address() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = vec![];
    cells(&workspace.join("kernel/src"), "kernel", &mut names);
    assert!(names.len() >= 5, "the kernel's cells, found in its sources: {names:?}");

    let elf = std::fs::read(splitmap::qemu::Artifacts::built().elf).expect("the built kernel's ELF");
    let elf = object::File::parse(&*elf).unwrap();
    let relr = elf.section_by_name(".relr.dyn").expect("a RELR list").data().unwrap();
    let entries: Vec<u64> = relr
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let mut sites = vec![];
    kernel::kaslr::relr::for_each_site(&entries, |at| sites.push(at));
    assert!(sites.len() > 100, "the image's relocations: {}", sites.len());

    for name in &names {
        let symbol = elf
            .symbols()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| format!("{:#}", rustc_demangle::demangle(n)) == *name)
            })
            .unwrap_or_else(|| panic!("{name} is not in the kernel's ELF"));
        let cell = symbol.address()..symbol.address() + symbol.size();
        let inside: Vec<String> = sites
            .iter()
            .filter(|at| cell.contains(at))
            .map(|at| format!("{:#x} (+{:#x})", at, at - cell.start))
            .collect();
        assert!(
            inside.is_empty(),
            "{name} ({:#x}, {} bytes) starts with an image address, which the KASLR move would add \
             its offset to: words {inside:?}",
            cell.start,
            cell.end - cell.start
        );
    }
}
