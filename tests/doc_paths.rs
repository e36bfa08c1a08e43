//! Every repository path named in README.md, docs/ and the source's comments
//! exists: `scripts/check-docs.py --paths`, which boots nothing, so a file
//! that moves fails here until what names it follows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check_paths(files: &[&Path]) -> Output {
    let repo = env!("CARGO_MANIFEST_DIR");
    Command::new("python3")
        .arg(Path::new(repo).join("scripts/check-docs.py"))
        .arg("--paths")
        .args(files)
        .current_dir(repo)
        .output()
        .expect("python3 runs scripts/check-docs.py")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn every_path_the_docs_and_comments_name_exists() {
    let out = check_paths(&[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The check fails on what it is for: a missing file, a missing one among
/// alternatives, a glob that matches nothing, a broken link; and passes
/// what exists, however it is written, and what the build makes.
#[test]
fn a_path_that_does_not_exist_is_named() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("doc-paths");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.md");
    std::fs::write(
        &good,
        "`kernel/src/module/{load.rs,check.rs}`, `modules/*`, kernel/src/init/phases.rs:415:5, \
         `target/anything.md` [here](good.md)\n",
    )
    .unwrap();
    let out = check_paths(&[&good]);
    assert!(out.status.success(), "{}", text(&out));

    let bad = dir.join("bad.md");
    std::fs::write(
        &bad,
        "`kernel/src/dtb.rs` moved.\n`kernel/src/module/{load.rs,gone.rs}`, `modules/nothing*`\n[gone](nowhere.md)\n",
    )
    .unwrap();
    let out = check_paths(&[&bad]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for (line, name) in [
        (1, "kernel/src/dtb.rs"),
        (2, "kernel/src/module/{load.rs,gone.rs}"),
        (2, "modules/nothing*"),
        (3, "nowhere.md"),
    ] {
        assert!(
            said.contains(&format!("bad.md:{line}: {name} does not exist")),
            "{name}: {said}"
        );
    }
}
