//! The layout as a Start/End/Size/Use table in Markdown, as Linux's
//! `Documentation/arch/arm64/memory.rst` gives it, made from `layout`.

use std::fmt::Write;

use super::{Model, size};

/// What a `layout` row is for: its row's why in the kernel's map (a
/// secondary CPU's `stack.N` and `guard.N` are the `stack` and `guard` rows'
/// for CPU N), or else it is a loaded module's area (`hello:text`).
fn purpose(name: &str) -> String {
    if let Some(row) = pi::kmap::find(name) {
        return row.why.to_string();
    }
    let per_cpu = name
        .split_once('.')
        .filter(|(_, cpu)| !cpu.is_empty() && cpu.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(base, cpu)| Some((pi::kmap::find(base)?, cpu)));
    match per_cpu {
        Some((row, cpu)) => format!("{}, CPU {cpu}", row.why),
        None => format!("module area `{name}`"),
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
        assert!(lines[10].contains("the kernel stack (`rw-`)"), "{table}");
    }

    #[test]
    fn a_secondary_cpus_stack_is_not_a_module_area() {
        assert_eq!(purpose("stack.3"), format!("{}, CPU 3", purpose("stack")));
        assert_eq!(purpose("guard.1"), format!("{}, CPU 1", purpose("guard")));
        assert_eq!(purpose("hello:text"), "module area `hello:text`");
        assert_eq!(purpose("stack."), "module area `stack.`");
    }
}
