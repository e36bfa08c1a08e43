//! `splitmap map` draws a real boot: every `layout` row of the same boot is
//! in the picture with its exact range, the SVG renders to a real image, the
//! HTML page shows the kernel's own walk of a region in a browser, and
//! `--from` a saved transcript draws the same picture.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("splitmap-map-{}-{name}", std::process::id()))
}

/// A boot of the test's own seed, modules loaded far from the kernel.
fn boot(seed: &str) -> [&str; 4] {
    ["--kaslr-seed", seed, "--append", "module.region=far"]
}

/// `splitmap map -o FILE` of that boot with `hello` loaded; what it wrote.
fn map_of_boot(seed: &str, file: &std::path::Path) -> String {
    let mut args = vec!["map", "-o", file.to_str().unwrap(), "--cmd", "insmod hello"];
    args.extend(boot(seed));
    let map = splitmap(&args);
    assert!(map.success, "{}{}", map.stdout, map.stderr);
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn the_svg_has_every_layout_row_of_the_boot_and_renders() {
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0x9);
    let svg = temp("boot.svg");
    let picture = map_of_boot(&seed, &svg);

    // The same boot, asked directly.
    let out = session(&boot(&seed), &["insmod hello", "layout", "mem"]);
    let rows = layout_rows(&out);
    assert!(rows.len() >= 14, "{out}");
    for row in rows.iter().filter(|r| r.name != "modules") {
        assert!(
            picture.contains(&format!("data-region=\"{}\"", row.name)),
            "{} is drawn",
            row.name
        );
        let range = format!("{:#x}-{:#x} (", row.va.0, row.va.1);
        assert!(picture.contains(&range), "{} labelled {range}", row.name);
    }
    for reserved in out.lines().filter(|l| l.starts_with("reserved pa=")) {
        let range = reserved.split_whitespace().nth(1).unwrap().trim_start_matches("pa=");
        assert!(picture.contains(&format!("{range} (")), "{reserved} is drawn");
    }

    // Rendered as a viewer would: a picture of many colours, mostly not blank.
    let tree = resvg::usvg::Tree::from_str(&picture, &resvg::usvg::Options::default()).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let pixels: Vec<&[u8]> = pixmap.data().chunks(4).collect();
    let inked = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    let mut colours: Vec<&[u8]> = pixels.clone();
    colours.sort();
    colours.dedup();
    assert!(
        inked * 5 > pixels.len(),
        "at least a fifth is drawn on: {inked} of {}",
        pixels.len()
    );
    assert!(colours.len() > 50, "{} colours", colours.len());
    let _ = std::fs::remove_file(&svg);
}

#[test]
fn a_saved_transcript_draws_the_same_map_and_the_table_lists_every_row() {
    let transcript = temp("session.txt");
    let run = splitmap(&[
        "run",
        "--nokaslr",
        "--cmd",
        "layout",
        "--cmd",
        "ptdump",
        "--cmd",
        "mem",
        "--cmd",
        "kaslr",
    ]);
    assert!(run.success, "{}", run.stderr);
    std::fs::write(&transcript, &run.stdout).unwrap();
    let (from, booted, table) = (temp("from.svg"), temp("booted.svg"), temp("table.md"));
    let t = transcript.to_str().unwrap();
    assert!(splitmap(&["map", "--from", t, "-o", from.to_str().unwrap()]).success);
    assert!(splitmap(&["map", "--nokaslr", "-o", booted.to_str().unwrap()]).success);
    assert_eq!(
        std::fs::read_to_string(&from).unwrap(),
        std::fs::read_to_string(&booted).unwrap()
    );
    assert!(splitmap(&["map", "--from", t, "-o", table.to_str().unwrap()]).success);
    let table = std::fs::read_to_string(&table).unwrap();
    for row in layout_rows(&run.stdout) {
        assert!(
            table.contains(&format!("| `{:#x}` | `{:#x}` |", row.va.0, row.va.1)),
            "{} in\n{table}",
            row.name
        );
    }
    // Bad requests change nothing.
    let bad = temp("map.png");
    let refused = splitmap(&["map", "--from", t, "-o", bad.to_str().unwrap()]);
    assert!(
        !refused.success && refused.stderr.contains("FILE.svg, FILE.html or FILE.md"),
        "{}",
        refused.stderr
    );
    assert!(!bad.exists());
    let empty = temp("empty.txt");
    std::fs::write(&empty, "splitmap> mem\n").unwrap();
    let refused = splitmap(&["map", "--from", empty.to_str().unwrap(), "-o", from.to_str().unwrap()]);
    assert!(
        !refused.success && refused.stderr.contains("no `layout` rows"),
        "{}",
        refused.stderr
    );
    // A transcript that answered `layout` alone: the map says what it lacks
    // rather than drawing an empty physical column.
    let partial = temp("layout-only.txt");
    let layout_only: String = run
        .stdout
        .split_inclusive('\n')
        .take_while(|l| !l.starts_with("splitmap> ptdump"))
        .collect();
    std::fs::write(&partial, layout_only).unwrap();
    let refused = splitmap(&["map", "--from", partial.to_str().unwrap(), "-o", from.to_str().unwrap()]);
    assert!(
        !refused.success && refused.stderr.contains("no answer to `ptdump`, `mem`, `kaslr`"),
        "{}",
        refused.stderr
    );
    for f in [transcript, from, booted, empty, partial] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn the_page_shows_the_kernels_own_walk_of_a_region_in_a_browser() {
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0xb);
    let page = temp("page.html");
    map_of_boot(&seed, &page);

    // The kernel's walk of the text, in a boot of its own.
    let out = session(&boot(&seed), &["insmod hello", "layout"]);
    let text = row(&layout_rows(&out), "text").va.0;
    let walk = session(&boot(&seed), &[&format!("walk {text:#x}")]);
    let walk: Vec<&str> = walk
        .lines()
        .skip_while(|l| !l.starts_with("splitmap> walk"))
        .skip(1)
        .take_while(|l| !l.starts_with("splitmap> "))
        .collect();
    assert!(walk.last().unwrap().starts_with("=> pa="), "{walk:?}");

    // Headless Chromium opens the page at #text, as a click on the text box
    // does, and the DOM then holds the panel with that walk.
    let profile = temp("chromium-profile");
    let dom = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}#text", page.display()))
        .output()
        .expect("chromium is missing: run scripts/setup.sh");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let panel = dom
        .split("<div id=\"panel\">")
        .nth(1)
        .unwrap_or("")
        .split("</div>")
        .next()
        .unwrap_or("");
    assert!(panel.starts_with(&format!("text  va={text:#x}-")), "panel: {panel}");
    for line in &walk {
        let line = line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        assert!(panel.contains(&line), "{line} in the panel:\n{panel}");
    }
    let _ = std::fs::remove_dir_all(profile);
    let _ = std::fs::remove_file(page);
}
