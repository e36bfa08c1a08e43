//! Module ELF files, malformed every way: `Module::parse` and `Module::link`
//! return Ok or an error, never panic, and a successful link never uses more
//! veneers than were counted. Two inputs per run: the raw bytes as a file, and
//! the bytes as edits (offset, value) to a real module from the build, which
//! gets past the ELF header checks that random bytes rarely pass.
#![no_main]

use kernel::module::load::{Aligned, Module};
use libfuzzer_sys::fuzz_target;

/// Real modules, as build.rs made them (scripts/fuzz.sh builds them first).
const MODULES: &[&[u8]] = &[
    include_bytes!("../../target/splitmap/hello.ko"),
    include_bytes!("../../target/splitmap/data.ko"),
    include_bytes!("../../target/splitmap/farcalls.ko"),
];

/// Module bases: in `bl` reach of the imports, and 1 GiB away (veneers).
const BASES: [u64; 2] = [0xffff_8000_7800_0000, 0xffff_8000_4000_0000];
const KERNEL: u64 = 0xffff_8000_8000_0000;

fn load(bytes: &[u8]) {
    let copy = Aligned::new(bytes);
    let Ok(module) = Module::parse(copy.bytes()) else { return };
    let _ = module.sections().count();
    for base in BASES {
        let mut image = vec![0u8; module.size() as usize];
        let import = |name: &str| name.starts_with("splitmap_").then(|| KERNEL + 4 * name.len() as u64);
        if let Ok(linked) = module.link(&mut image, base, import) {
            assert!(linked.plt <= module.plt_slots);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    load(data);
    let Some((&which, edits)) = data.split_first() else { return };
    let mut file = MODULES[usize::from(which) % MODULES.len()].to_vec();
    for edit in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % file.len();
        file[at] = edit[2];
    }
    load(&file);
});
