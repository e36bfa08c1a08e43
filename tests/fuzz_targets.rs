//! The fuzz targets (`fuzz/`, run with the nightly toolchain by
//! `scripts/fuzz.sh`) still compile against today's kernel. Checked here on
//! stable, so a change to a parser's API that breaks them fails `cargo test`
//! instead of the next fuzzing session.

use std::process::Command;

#[test]
fn the_fuzz_targets_still_compile() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO"))
        .args(["check", "--quiet", "--bins", "--manifest-path", "fuzz/Cargo.toml"])
        .current_dir(root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
