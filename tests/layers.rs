//! The kernel's folders are layers (`kernel::LAYERS`, stated in
//! kernel/src/lib.rs): a file may name, through `crate::`, only its own layer
//! and those below it. So no folder reaches up, and no two folders depend
//! on each other. The paths are read from the source, comments left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// `text` without comments (`//`, doc comments, `/* */`) and without the
/// contents of string literals (`"…"`, `r#"…"#`), where `//`, `/*` or
/// `crate::` would be no code at all.
fn code(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..].find(&close).map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            i += (j + 1).min(rest.len());
            out.push_str("\"\"");
        } else if rest.starts_with("'\"'") {
            // The character '"' opens no string.
            i += 3;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `r##"`…: how many `#`s a raw string at the start of `text`
/// has, if one starts there.
fn raw_string_start(text: &str) -> Option<usize> {
    let after_r = text.strip_prefix('r')?;
    let hashes = after_r.chars().take_while(|&c| c == '#').count();
    after_r[hashes..].starts_with('"').then_some(hashes)
}

/// The first path segment after every `crate::` in `code`, groups included:
/// `crate::{mm::tables, boot}` names `mm` and `boot`.
fn named(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            // Top-level items of the group: split on commas outside braces.
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let first = item.trim().split("::").next().unwrap_or("").to_string();
                        names.insert(first);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let first: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.insert(first);
        }
    }
    names
}

/// The layer of a file: its folder under kernel/src, or its own name there.
fn layer_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn no_layer_names_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel/src");
    let rank = |name: &str| kernel::LAYERS.iter().position(|l| *l == name);
    let mut wrong = Vec::new();
    let mut files = 0;
    for file in sources(&src) {
        let layer = layer_of(&src, &file);
        let Some(own) = rank(&layer) else {
            // lib.rs and main.rs sit above every layer.
            assert!(
                ["lib", "main"].contains(&layer.as_str()),
                "{} is in no layer",
                file.display()
            );
            continue;
        };
        files += 1;
        let text = code(&std::fs::read_to_string(&file).unwrap());
        // `super::super::` would climb out of a folder unseen.
        if text.contains("super::super") {
            wrong.push(format!("{}: super::super", file.display()));
        }
        for name in named(&text) {
            if let Some(theirs) = rank(&name)
                && theirs > own
            {
                wrong.push(format!("{} ({layer}) names crate::{name}", file.display()));
            }
        }
    }
    assert!(files > 50, "read {files} files: the kernel's sources moved?");
    assert!(wrong.is_empty(), "layers reached up:\n{}", wrong.join("\n"));
}

#[test]
fn every_folder_is_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel/src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        assert!(
            kernel::LAYERS.contains(&name.as_str()) || ["lib", "main"].contains(&name.as_str()),
            "kernel/src/{name} is in no layer: add it to LAYERS in kernel/src/lib.rs"
        );
    }
}

#[test]
fn the_reader_sees_what_a_file_names() {
    let text = code(
        "use crate::{mm::tables, boot::{dtb, info}};\n// crate::shell\n/* crate::init */ let x = crate::debug::f();\n\
         let s = \"/* not a comment\"; let t = r#\"crate::init // \"#; let c = '\"'; crate::console::f();",
    );
    let names: Vec<String> = named(&text).into_iter().collect();
    assert_eq!(names, ["boot", "console", "debug", "mm"]);
}
