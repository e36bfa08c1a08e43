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
        let range = format!(">{:#x}-{:#x}</tspan>", row.va.0, row.va.1);
        assert!(picture.contains(&range), "{} labelled {range}", row.name);
    }
    // A reservation is drawn whole, or cut where a region's frames are.
    for reserved in out.lines().filter(|l| l.starts_with("reserved pa=")) {
        let range = reserved.split_whitespace().nth(1).unwrap().trim_start_matches("pa=");
        let (start, end) = range.split_once('-').unwrap();
        assert!(
            picture.contains(&format!(">{start}-")) && picture.contains(&format!("-{end}</tspan>")),
            "{reserved} is drawn"
        );
    }
    // The module's pages and the kernel stack's frames are in use, each
    // drawn with the range `layout` and `ptdump` give it.
    let hello = row(&rows, "hello:text").pa.unwrap();
    assert!(
        picture.contains(&format!(">{:#x}-{:#x}</tspan>", hello.0, hello.1)),
        "hello's text frames"
    );
    assert!(picture.contains(">in use: stack 64 KiB</tspan>"), "the stack's frames");
    assert!(
        picture.contains(">hello: 3 veneers</tspan>"),
        "far from the kernel: veneers"
    );
    // Readable at the README's width: 10 px or more once scaled to 880 px.
    let width = splitmap::map::draw::width_of(&picture).unwrap();
    assert!(13.0 * 880.0 / width >= 10.0, "{width} px wide");

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
    let dom = dom_of(&format!("file://{}#text", page.display()));
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

    // Pointing anywhere at a label is pointing at its box; bands, pieces of
    // physical memory and window bars each say what they are.
    let html = std::fs::read_to_string(&page).unwrap();
    let probed = temp("probed.html");
    std::fs::write(
        &probed,
        html.replace("</body>", &format!("<script>{PROBE}</script>\n</body>")),
    )
    .unwrap();
    let dom = dom_of(&format!("file://{}", probed.display()));
    let result = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .unwrap_or("")
        .split("</pre>")
        .next()
        .unwrap_or("");
    assert!(result.contains("labels ok") && !result.contains("FAIL"), "{result}");
    for what in ["bands", "pieces", "windows"] {
        assert!(result.contains(&format!("{what} ok")), "{result}");
    }
    assert!(result.contains("window KASLR window"), "{result}");
    let _ = std::fs::remove_file(page);
    let _ = std::fs::remove_file(probed);
}

/// The DOM headless Chromium has made of `url` once its scripts ran, in a
/// window tall enough that the whole map is on screen.
fn dom_of(url: &str) -> String {
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
            "--window-size=1600,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium is missing: run scripts/setup.sh");
    let _ = std::fs::remove_dir_all(profile);
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// Points as a mouse would (`elementFromPoint`, then a `mouseover` there)
/// at many places on each region's and piece's label and at each window's
/// bar, sends a `mouseover` to each band, and writes what the panel said
/// into `<pre id="probe">`.
const PROBE: &str = r#"
const panel = document.getElementById("panel");
const log = [];
function point(x, y) {
  panel.textContent = "";
  const e = document.elementFromPoint(x, y);
  if (e) e.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
  return panel.textContent;
}
function grid(r, each) {
  for (const fx of [0.05, 0.25, 0.5, 0.75, 0.95])
    for (const fy of [0.1, 0.3, 0.5, 0.7, 0.9]) each(r.left + fx * r.width, r.top + fy * r.height, fx, fy);
}
let failed = 0;
for (const g of document.querySelectorAll("g[data-region]")) {
  grid(g.querySelector("text[text-anchor=end]").getBoundingClientRect(), (x, y, fx, fy) => {
    if (!point(x, y).startsWith(g.dataset.region + "  va=")) { failed++; log.push("FAIL label of " + g.dataset.region + " at " + fx + "," + fy); }
  });
}
if (!failed) log.push("labels ok");
failed = 0;
for (const g of document.querySelectorAll("g[data-piece]")) {
  grid(g.querySelector("text").getBoundingClientRect(), (x, y, fx, fy) => {
    if (point(x, y) !== g.dataset.info) { failed++; log.push("FAIL piece " + g.dataset.piece + " at " + fx + "," + fy); }
  });
}
if (!failed) log.push("pieces ok");
failed = 0;
for (const g of document.querySelectorAll("g[data-window]")) {
  const r = g.querySelector("rect:not(.hit)").getBoundingClientRect();
  const said = point(r.left + r.width / 2, r.top + r.height / 2);
  if (!said.startsWith(g.dataset.window + ": 0x")) { failed++; log.push("FAIL window " + g.dataset.window + ": " + said); }
  else log.push("window " + g.dataset.window);
}
if (!failed) log.push("windows ok");
failed = 0;
for (const path of document.querySelectorAll("g[data-info] > path[fill-opacity]")) {
  panel.textContent = "";
  path.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
  if (!panel.textContent.startsWith("mapping")) { failed++; log.push("FAIL band: " + panel.textContent); }
}
if (!failed) log.push("bands ok");
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = log.join("\n");
document.body.appendChild(pre);
"#;

/// `map --cmd layout`: the user's `layout` and the map's own are both in
/// the transcript, and the map counts the regions once, as without it.
#[test]
fn a_layout_of_your_own_is_not_counted_twice() {
    let file = temp("own-layout.md");
    let path = file.to_str().unwrap();
    let plain = splitmap(&["map", "--nokaslr", "-o", path]);
    assert!(plain.success, "{}", plain.stderr);
    let table = std::fs::read_to_string(&file).unwrap();
    let own = splitmap(&["map", "--nokaslr", "--cmd", "layout", "-o", path]);
    assert!(own.success, "{}", own.stderr);
    assert_eq!(own.stdout, plain.stdout, "the same regions, mappings and pieces");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), table);
    let _ = std::fs::remove_file(file);
}
