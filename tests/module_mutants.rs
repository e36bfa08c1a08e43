//! Structural mutants of every sample module (tests/common/mutants.rs): the
//! loader refuses each one before anything runs, naming what is wrong.

mod common;
use common::mutants::structural;
use common::*;
use kernel::module::load::{Aligned, Module};

/// Refused by parsing or by linking at a base in the kernel half, with every
/// import found (so only the structure can fail).
fn refusal(bytes: &[u8]) -> Option<String> {
    let copy = Aligned::new(bytes);
    let module = match Module::parse(copy.bytes()) {
        Ok(m) => m,
        Err(e) => return Some(e),
    };
    let mut image = vec![0u8; module.size() as usize];
    module
        .link(&mut image, 0xffff_8000_7800_0000, |_| Some(0xffff_8000_8000_1000))
        .err()
}

#[test]
fn every_structural_mutant_is_refused_by_name() {
    for name in MODULES {
        let ko = module_file(name);
        assert!(refusal(&ko).is_none(), "{name} itself loads");
        let mutants = structural(&ko, 0x5eed);
        assert!(mutants.len() >= 50, "{name}: only {} mutants", mutants.len());
        for m in mutants {
            let why = refusal(&m.bytes).unwrap_or_else(|| panic!("{name}: accepted with {}", m.what));
            if let Some(names) = &m.names {
                assert!(
                    why.contains(names.as_str()),
                    "{name}: {}: the refusal does not name {names}: {why}",
                    m.what
                );
            }
        }
    }
}

/// Writes every sample's mutants to a folder and packs them with
/// `splitmap initrd`; their module names, in order.
fn mutant_initrd() -> (String, Vec<(String, String)>) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutants");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for name in MODULES {
        for (i, m) in structural(&module_file(name), 0x5eed).into_iter().enumerate() {
            let module = format!("{name}-m{i:02}");
            std::fs::write(dir.join(format!("{module}.ko")), &m.bytes).unwrap();
            names.push((module, m.what));
        }
    }
    let initrd = dir.with_extension("cpio").display().to_string();
    let packed = splitmap(&["initrd", &dir.display().to_string(), "-o", &initrd]);
    assert!(packed.success, "{}", packed.stderr);
    (initrd, names)
}

#[test]
fn the_kernel_refuses_every_mutant_and_stays_as_it_was() {
    let (initrd, names) = mutant_initrd();
    assert!(names.len() >= 50 * MODULES.len(), "{} mutants", names.len());
    let mut cmds = vec!["mem".to_string()];
    for (module, _) in &names {
        cmds.push(format!("insmod {module}"));
        cmds.push("mem".into());
    }
    cmds.push("lsmod".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--nokaslr", "--initrd", &initrd], &refs);
    // One answer per insmod, in order: every one an error naming the module.
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: insmod") || l.contains(" base=0x"))
        .collect();
    assert_eq!(answers.len(), names.len(), "{out}");
    for ((module, what), answer) in names.iter().zip(&answers) {
        assert!(
            answer.starts_with(&format!("error: insmod {module}: ")),
            "{module} ({what}) was not refused: {answer}"
        );
    }
    // Free memory never moved, and nothing is left loaded.
    let free: Vec<&str> = out.lines().filter(|l| l.starts_with("free     frames=")).collect();
    assert_eq!(free.len(), names.len() + 1);
    assert!(free.iter().all(|f| *f == free[0]), "free frames changed: {free:?}");
    let after_lsmod = out.rsplit("splitmap> lsmod").next().unwrap();
    assert!(!after_lsmod.contains(" base=0x"), "{after_lsmod}");
}
