//! The early-code relocation check must catch an absolute address in code that
//! runs before the MMU is on, and name it. The canary feature of kernel/pi adds
//! exactly such a reference (a table of pointers reached from the boot code);
//! the check must fail on it and pass on the real early code. A second canary
//! stores to a `.bss` static from the same code, which the check must refuse
//! too: `.bss` is zeroed only once the MMU is on.

use std::path::{Path, PathBuf};

use splitmap::kbuild::cargo_build;
use splitmap::relacheck::check_archive;

fn build_pi(features: &[&str], dir: &str) -> Vec<u8> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let built = cargo_build(&cargo, workspace, &target_dir, "splitmap-pi", features, &[]).expect("build pi");
    std::fs::read(built.kernel_rlib("pi").expect("pi rlib")).expect("read rlib")
}

#[test]
fn real_early_code_passes() {
    check_archive(&build_pi(&[], "pi-clean")).expect("the early code is position-independent");
}

#[test]
fn absolute_reference_fails_the_check_and_is_named() {
    let errors = check_archive(&build_pi(&["relacheck-canary"], "pi-canary")).expect_err("the canary must be caught");
    eprintln!("{}", errors.join("\n"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("R_AARCH64_ABS64") && e.contains("RELACHECK_CANARY")),
        "errors do not name the canary: {errors:#?}"
    );
}

#[test]
fn early_bss_store_fails_the_check_and_is_named() {
    let errors =
        check_archive(&build_pi(&["relacheck-bss-canary"], "pi-bss-canary")).expect_err("the store must be caught");
    eprintln!("{}", errors.join("\n"));
    assert!(
        errors.iter().any(|e| e.contains("BSS_CANARY") && e.contains(".bss")),
        "errors do not name the .bss canary: {errors:#?}"
    );
}
