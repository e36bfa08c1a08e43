//! Cortex-A53 erratum 843419 (the Raspberry Pi 3's cores have it; QEMU does
//! not model it): no sequence that triggers it may be left in the kernel's
//! code in any granule's build, which the kernel's link asks `rust-lld` to
//! patch (`--fix-cortex-a53-843419`). The sequence finder is the one the
//! module loader uses on every module it links (`kernel::module::a53`,
//! unit-tested on sequences from the erratum notice).

mod common;
use common::splitmap;

use object::{Object, ObjectSection, SectionFlags};

#[test]
fn no_kernel_code_holds_the_a53_843419_sequence() {
    for granule in ["4k", "16k", "64k"] {
        let build = splitmap(&["build", "--granule", granule]);
        assert!(build.success, "{}", build.stderr);
        let elf_path = build
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("elf: "))
            .expect("an elf line");
        let elf = std::fs::read(elf_path).unwrap();
        let file = object::File::parse(&*elf).unwrap();
        let mut code_bytes = 0;
        for section in file.sections() {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                continue;
            };
            if sh_flags & u64::from(object::elf::SHF_EXECINSTR) == 0 {
                continue;
            }
            let code = section.data().unwrap();
            code_bytes += code.len();
            let found = kernel::module::a53::find(section.address(), code);
            assert_eq!(
                found,
                None,
                "{granule}: {} holds the sequence at {found:#x?}",
                section.name().unwrap_or("?")
            );
        }
        assert!(code_bytes > 100_000, "{granule}: only {code_bytes} bytes of code found");
    }
}
