//! The guide's "a module of your own" (docs/guide/7-modules.md), done as a
//! reader does it: in a copy of the tree, `modules/hello` copied to
//! `modules/mine` with its names changed, then `cargo run` with no other
//! step. The build must pick the new crate up, pack `mine.ko` into the
//! initrd, and the kernel must load it and run its command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files git would hand a newcomer (tracked, or new and not ignored),
/// copied from this tree to `to`.
fn copy_tree(from: &Path, to: &Path) {
    let listed = Command::new("git")
        .current_dir(from)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .expect("run git");
    assert!(listed.status.success(), "git ls-files failed");
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).expect("a UTF-8 path");
        let (src, dst) = (from.join(name), to.join(name));
        if !src.is_file() {
            continue; // listed but deleted in the working tree
        }
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
}

/// `path` with each `(old, new)` replaced once, insisting each was there.
fn edit(path: &Path, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for (old, new) in edits {
        assert!(text.contains(old), "{} has no {old:?}", path.display());
        text = text.replacen(old, new, 1);
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_copy_of_hello_under_a_new_name_is_built_and_loads() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = repo.join("target/own-module");
    let tree = work.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    copy_tree(&repo, &tree);

    let mine = tree.join("modules/mine");
    copy_tree(&repo.join("modules/hello"), &mine);
    edit(
        &mine.join("Cargo.toml"),
        &[
            ("name = \"splitmap-module-hello\"", "name = \"splitmap-module-mine\""),
            ("name = \"hello\"", "name = \"mine\""),
        ],
    );
    edit(
        &mine.join("src/lib.rs"),
        &[
            ("const COMMAND: &str = \"hello\"", "const COMMAND: &str = \"mine\""),
            ("\"hello from a module\"", "\"mine: a module of my own\""),
        ],
    );

    // The copy's build gets a target directory of its own (kept between
    // runs, so only the first is a full build), and nothing of this cargo's.
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(&tree)
        .args(["run", "--quiet", "--", "run", "--nokaslr"])
        .args(["--cmd", "insmod mine", "--cmd", "mine", "--cmd", "lsmod"]);
    splitmap::kbuild::without_outer_cargo(&mut cargo);
    cargo.env("CARGO_TARGET_DIR", work.join("target"));
    let out = cargo.output().expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("mine: a module of my own"),
        "its command ran:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("mine base=0x")),
        "lsmod lists it under its own name:\n{stdout}"
    );
}
