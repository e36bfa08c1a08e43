//! Structural mutants of a module file: each breaks one thing a loader must
//! check before it runs anything (ELF header, section headers, the symbol
//! table, relocation sections and entries, entry points). Generated from the
//! file itself, read here with a few lines of our own rather than the
//! kernel's ELF reader, so the two do not share mistakes; which relocation
//! sections are mutated is chosen from a seed, reproducibly.

/// One mutant: what was broken (for messages), the name the refusal must
/// mention (a section or symbol, when there is one), and the bytes.
pub struct Mutant {
    pub what: String,
    pub names: Option<String>,
    pub bytes: Vec<u8>,
}

use object::elf::{SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_RELA, SHT_SYMTAB};

const SHF_ALLOC: u64 = object::elf::SHF_ALLOC as u64;
const SHF_EXECINSTR: u64 = object::elf::SHF_EXECINSTR as u64;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A section header, and where it sits in the file.
#[derive(Clone)]
struct Section {
    at: usize,
    name: String,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
}

fn sections(ko: &[u8]) -> Vec<Section> {
    let (shoff, shnum, shstrndx) = (
        u64_at(ko, 0x28) as usize,
        u16_at(ko, 0x3c) as usize,
        u16_at(ko, 0x3e) as usize,
    );
    let header = |i: usize| shoff + i * 64;
    let strings = u64_at(ko, header(shstrndx) + 24) as usize;
    (0..shnum)
        .map(|i| {
            let at = header(i);
            let name_at = strings + u32_at(ko, at) as usize;
            let end = ko[name_at..].iter().position(|&b| b == 0).unwrap();
            Section {
                at,
                name: String::from_utf8_lossy(&ko[name_at..name_at + end]).into_owned(),
                kind: u32_at(ko, at + 4),
                flags: u64_at(ko, at + 8),
                offset: u64_at(ko, at + 24),
                size: u64_at(ko, at + 32),
                link: u32_at(ko, at + 40),
            }
        })
        .collect()
}

/// The symbol table entry of `name`: (its file offset, its section index).
fn symbol(ko: &[u8], secs: &[Section], name: &str) -> Option<(usize, u16)> {
    let symtab = secs.iter().find(|s| s.kind == SHT_SYMTAB)?;
    let strings = secs[symtab.link as usize].offset as usize;
    (0..symtab.size as usize / 24).find_map(|i| {
        let at = symtab.offset as usize + i * 24;
        let name_at = strings + u32_at(ko, at) as usize;
        let end = ko[name_at..].iter().position(|&b| b == 0)?;
        (&ko[name_at..name_at + end] == name.as_bytes()).then(|| (at, u16_at(ko, at + 6)))
    })
}

/// SplitMix64, for choosing reproducibly.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The structural mutants of `ko` for `seed`: at least 50 for every sample.
pub fn structural(ko: &[u8], seed: u64) -> Vec<Mutant> {
    let secs = sections(ko);
    let shnum = secs.len() as u64;
    let mut out = Vec::new();
    let mut push = |what: String, names: Option<&str>, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = ko.to_vec();
        edit(&mut bytes);
        out.push(Mutant {
            what,
            names: names.map(str::to_string),
            bytes,
        });
    };
    let put16 = |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());

    // The ELF header.
    push("broken magic".into(), None, &|b| b[1] = b'X');
    push("32-bit class".into(), None, &|b| b[4] = 1);
    push("an executable, not relocatable".into(), None, &|b| put16(b, 0x10, 2));
    push("for x86-64".into(), None, &|b| put16(b, 0x12, 62));
    push("section headers past the end".into(), None, &|b| {
        let len = b.len() as u64;
        put64(b, 0x28, len + 64)
    });
    push("section header size 40".into(), None, &|b| put16(b, 0x3a, 40));
    push("65535 section headers".into(), None, &|b| put16(b, 0x3c, 0xffff));

    // Relocation sections: up to four, chosen from the seed.
    let symtab = secs.iter().position(|s| s.kind == SHT_SYMTAB).unwrap();
    let progbits = secs.iter().position(|s| s.kind == SHT_PROGBITS).unwrap();
    let mut relas: Vec<usize> = (0..secs.len()).filter(|&i| secs[i].kind == SHT_RELA).collect();
    let start = (mix(seed) % relas.len() as u64) as usize;
    relas.rotate_left(start);
    relas.truncate(4);
    for &i in &relas {
        let s = secs[i].clone();
        let (at, name) = (s.at, s.name.as_str());
        // A refusal may name the relocation section or the section it patches.
        let n = Some(name.trim_start_matches(".rela"));
        push(format!("{name}: sh_link 0"), n, &|b| put32(b, at + 40, 0));
        push(format!("{name}: sh_link to a PROGBITS section"), n, &|b| {
            put32(b, at + 40, progbits as u32)
        });
        push(format!("{name}: size one byte short"), n, &|b| {
            put64(b, at + 32, s.size - 1)
        });
        push(format!("{name}: size past the file"), n, &|b| {
            put64(b, at + 32, s.size + 24 * 100_000)
        });
        push(format!("{name}: misaligned offset"), n, &|b| {
            put64(b, at + 24, s.offset + 4)
        });
        push(format!("{name}: sh_info 0"), n, &|b| put32(b, at + 44, 0));
        push(format!("{name}: sh_info out of range"), n, &|b| {
            put32(b, at + 44, shnum as u32 + 3)
        });
        push(format!("{name}: sh_info the symbol table"), n, &|b| {
            put32(b, at + 44, symtab as u32)
        });
        push(format!("{name}: typed PROGBITS"), n, &|b| {
            put32(b, at + 4, SHT_PROGBITS)
        });
        push(format!("{name}: typed REL"), n, &|b| put32(b, at + 4, SHT_REL));
        push(format!("{name}: 16-byte entries"), n, &|b| put64(b, at + 56, 16));
        let first = s.offset as usize;
        push(format!("{name}: relocation type 0x7fff"), n, &|b| {
            let info = u64_at(b, first + 8);
            put64(b, first + 8, (info & !0xffff_ffff) | 0x7fff)
        });
        push(format!("{name}: symbol 0xffffff"), n, &|b| {
            let info = u64_at(b, first + 8);
            put64(b, first + 8, (info & 0xffff_ffff) | (0xff_ffff << 32))
        });
        push(format!("{name}: offset past its section"), n, &|b| {
            put64(b, first, 0x10_0000)
        });
    }

    // Relocations retargeted: a relocation section whose sh_info names
    // another code section, so its own target would run unrelocated.
    let code: Vec<usize> = (0..secs.len())
        .filter(|&i| secs[i].kind == SHT_PROGBITS && secs[i].flags & SHF_EXECINSTR != 0)
        .collect();
    for &i in &relas {
        let s = secs[i].clone();
        let target = u32_at(ko, s.at + 44) as usize;
        let Some(&other) = code.iter().find(|&&c| c != target) else {
            continue;
        };
        let n = Some(s.name.trim_start_matches(".rela"));
        push(
            format!("{}: sh_info another code section ({})", s.name, secs[other].name),
            n,
            &|b| put32(b, s.at + 44, other as u32),
        );
    }

    // A branch to a kernel export with an addend: it would land inside the
    // export. The first CALL26 or JUMP26 to an undefined symbol.
    let syms = secs[symtab].offset as usize;
    let branch = (0..secs.len()).filter(|&i| secs[i].kind == SHT_RELA).find_map(|i| {
        let s = &secs[i];
        (0..s.size as usize / 24).find_map(|k| {
            let at = s.offset as usize + k * 24;
            let info = u64_at(ko, at + 8);
            let (r_type, sym) = (info & 0xffff_ffff, (info >> 32) as usize);
            let undefined = u16_at(ko, syms + sym * 24 + 6) == 0 && sym != 0;
            (matches!(r_type, 282 | 283) && undefined).then(|| (s.name.clone(), at))
        })
    });
    if let Some((name, at)) = branch {
        let n = Some(name.trim_start_matches(".rela").to_string());
        for addend in [4i64, -4, 0x100] {
            push(
                format!("{name}: a branch to an export with addend {addend}"),
                n.as_deref(),
                &|b| put64(b, at + 16, addend as u64),
            );
        }
    }

    // A branch relocation moved onto another instruction (r_offset): the
    // first CALL26 or JUMP26 of each relocation section, onto the first word
    // of the section it patches that is neither B nor BL. Patching it would
    // make another instruction than the compiler wrote.
    for i in (0..secs.len()).filter(|&i| secs[i].kind == SHT_RELA) {
        let s = &secs[i];
        let Some(patched) = secs.get(u32_at(ko, s.at + 44) as usize) else {
            continue;
        };
        let first_branch = (0..s.size as usize / 24)
            .map(|k| s.offset as usize + k * 24)
            .find(|&at| matches!(u64_at(ko, at + 8) & 0xffff_ffff, 282 | 283));
        let not_a_branch = (0..patched.size as usize / 4)
            .map(|w| w * 4)
            .find(|&off| u32_at(ko, patched.offset as usize + off) & 0x7c00_0000 != 0x1400_0000);
        if let (Some(at), Some(off)) = (first_branch, not_a_branch) {
            let n = Some(s.name.trim_start_matches(".rela"));
            push(
                format!(
                    "{}: a branch relocation moved onto another instruction (+{off:#x})",
                    s.name
                ),
                n,
                &|b| put64(b, at, off as u64),
            );
        }
    }

    // The symbol table.
    let st = secs[symtab].clone();
    let n = Some(".symtab");
    push(".symtab typed PROGBITS".into(), n, &|b| {
        put32(b, st.at + 4, SHT_PROGBITS)
    });
    push(".symtab with 16-byte entries".into(), n, &|b| put64(b, st.at + 56, 16));
    push(".symtab linked to section 0".into(), n, &|b| put32(b, st.at + 40, 0));
    push(".symtab one byte short".into(), n, &|b| {
        put64(b, st.at + 32, st.size - 1)
    });

    // The entry points.
    let rodata = secs
        .iter()
        .position(|s| s.kind == SHT_PROGBITS && s.flags & SHF_ALLOC != 0 && s.flags & SHF_EXECINSTR == 0)
        .unwrap();
    for entry in ["init_module", "exit_module"] {
        let Some((at, shndx)) = symbol(ko, &secs, entry) else {
            continue;
        };
        let size = secs[shndx as usize].size;
        let n = Some(entry);
        push(format!("{entry} misaligned"), n, &|b| {
            let v = u64_at(b, at + 8);
            put64(b, at + 8, v + 2)
        });
        push(format!("{entry} past its section"), n, &|b| put64(b, at + 8, size));
        push(format!("{entry} absolute"), n, &|b| put16(b, at + 6, 0xfff1));
        push(format!("{entry} in section {}", shnum + 5), n, &|b| {
            put16(b, at + 6, shnum as u16 + 5)
        });
        push(format!("{entry} in rodata"), n, &|b| put16(b, at + 6, rodata as u16));
        push(format!("{entry} undefined"), n, &|b| put16(b, at + 6, 0));
    }

    // The code itself with no contents.
    let text = secs.iter().find(|s| s.flags & SHF_EXECINSTR != 0).unwrap().clone();
    push(format!("{} typed NOBITS", text.name), Some(&text.name), &|b| {
        put32(b, text.at + 4, SHT_NOBITS)
    });
    out
}
