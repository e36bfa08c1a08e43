//! The layout as a Start/End/Size/Use table in Markdown, as Linux's
//! `Documentation/arch/arm64/memory.rst` gives it, made from `layout`.

use std::fmt::Write;

use super::{Model, size};

/// What a `layout` row is for: its row's why in the kernel's map, CPU N's
/// copy of a template row (`stack.N`, `guard.N`), or else a loaded
/// module's area (`hello:text`).
fn purpose(name: &str) -> String {
    if let Some(row) = pi::kmap::find(name) {
        return row.why.to_string();
    }
    match name.split_once('.') {
        Some((template, cpu)) if cpu.parse::<usize>().is_ok() && pi::kmap::find(template).is_some() => {
            let why = pi::kmap::find(template).map_or("", |r| r.why);
            format!("cpu {cpu}'s: {why}")
        }
        _ => format!("module area `{name}`"),
    }
}

/// The table, one row per `layout` row, lowest address first.
pub fn markdown(model: &Model) -> String {
    let mut rows: Vec<_> = model.regions.iter().collect();
    // A window before what it holds.
    rows.sort_by_key(|r| (r.va.0, std::cmp::Reverse(r.va.1)));
    let mut out = String::from("| Start | End | Size | Use |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| `{:#x}` | `{:#x}` | {} | {} (`{}`) |",
            r.va.0,
            r.va.1,
            size(r.va.1 - r.va.0),
            purpose(&r.name),
            r.prot
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{parse, tests::SESSION};

    #[test]
    fn a_row_per_region_lowest_first() {
        let table = markdown(&parse(SESSION).unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 9);
        assert!(
            lines[2].starts_with("| `0xffff000000000000` | `0xffff000040000000` | 1 GiB | linear map"),
            "{table}"
        );
        assert!(lines[3].contains("module window"), "{table}");
        assert!(lines[4].contains("module area `hello:text`"), "{table}");
        assert_eq!(purpose("stack.2"), format!("cpu 2's: {}", pi::kmap::row("stack").why));
        assert_eq!(purpose("guard.7"), format!("cpu 7's: {}", pi::kmap::row("guard").why));
        assert_eq!(purpose("guard.x"), "module area `guard.x`");
        assert!(lines[10].contains("the kernel stack (`rw-`)"), "{table}");
    }
}
