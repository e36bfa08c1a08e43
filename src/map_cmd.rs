//! `splitmap map`: one boot's layout drawn as SVG, HTML or Markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use splitmap::map::{self, Model, draw, page, table};

use crate::boots::transcript_of;
use crate::run_cmd::check_run;
use crate::{MapArgs, RunArgs};

/// `splitmap map`: boots (or reads a transcript), draws, and says what it wrote.
pub fn map(mut args: MapArgs) -> Result<(), String> {
    let kind = drawing_kind(&args.output)?;
    splitmap::output::check_writable(&args.output)?;
    if args.from.is_none() {
        check_boot(&args.run)?;
    }
    let user_cmds = args.run.cmds.clone();
    let transcript = match &args.from {
        Some(path) => splitmap::input::read_text("--from", path, splitmap::input::TRANSCRIPT_LIMIT)?,
        None => {
            args.run.cmds.extend(map::DRAWN_FROM.map(String::from));
            transcript_of(&args.run)?
        }
    };
    let mut model = map::parse(&transcript)?;
    if let Some(missing) = model.missing_answers() {
        return Err(missing);
    }
    if kind == "html" && args.from.is_none() {
        args.run.cmds = user_cmds;
        model.walks = walks(&model, args.run)?;
    }
    let title = title(&model);
    let text = match kind.as_str() {
        "svg" => draw::svg(&model, &title),
        "html" => page::html(&model, &title),
        _ => table::markdown(&model),
    };
    splitmap::output::write_whole(&args.output, text)?;
    println!(
        "map: {} regions, {} mappings, {} pieces of physical memory -> {}",
        model.regions.len(),
        model.runs.len(),
        model.pieces().len(),
        args.output.display()
    );
    Ok(())
}

/// What `-o`'s extension asks for: svg, html or md.
pub fn drawing_kind(output: &Path) -> Result<String, String> {
    let kind = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["svg", "html", "md"].contains(&kind.as_str()) {
        return Err(format!("-o {}: say FILE.svg, FILE.html or FILE.md", output.display()));
    }
    Ok(kind)
}

/// Refuses what map cannot do: `run`'s options that `map --help` does not
/// list (they would change nothing in a map, or wait for gdb in a boot
/// nobody watches), and with a boot, what [`check_boot`] refuses.
pub fn check_options(args: &MapArgs) -> Result<(), String> {
    let run = &args.run;
    let given = [
        (run.gdb, "--gdb"),
        (run.gdb_port != 1234, "--gdb-port"),
        (run.icount, "--icount"),
        (run.verbose, "--verbose"),
    ];
    if let Some((_, option)) = given.iter().find(|(given, _)| *given) {
        return Err(format!("map does not take {option}: it is run's (see map --help)"));
    }
    match &args.from {
        Some(from) => splitmap::input::check_file("--from", from, splitmap::input::TRANSCRIPT_LIMIT).map(|_| ()),
        None => check_boot(run),
    }
}

/// Refuses, before QEMU starts, what `run` refuses and a `poweroff` of the
/// user's: map's own commands come after the user's lines.
fn check_boot(run: &RunArgs) -> Result<(), String> {
    check_run(run)?;
    if run.cmds.iter().any(|c| c.trim() == "poweroff") {
        return Err(format!(
            "--cmd poweroff: map types {} after your lines, and powers off itself",
            map::DRAWN_FROM.join(", ")
        ));
    }
    Ok(())
}

/// The table walk of the first address of every region of `model`, from the
/// same boot again: `run` (with the user's lines only) and, for what it left
/// to chance, the seed and load address `model`'s boot had.
fn walks(model: &Model, mut run: RunArgs) -> Result<BTreeMap<u64, Vec<String>>, String> {
    // A raw tree carries its own seed, or none (RNDR's then differs, and the
    // replay cannot match).
    let boot = &mut run.boot;
    if !boot.nokaslr && boot.kaslr_seed.is_none() && run.raw_dtb.is_none() {
        boot.kaslr_seed = model.kaslr.seed.map(|seed| format!("{seed:#x}"));
    }
    if run.load_addr.as_deref() == Some("random") {
        let pa = model.regions.iter().find(|r| r.name == "text").and_then(|r| r.pa);
        run.load_addr = pa.map(|(pa, _)| format!("{pa:#x}"));
    }
    run.cmds.push("layout".into());
    let starts: BTreeSet<u64> = model.regions.iter().map(|r| r.va.0).collect();
    run.cmds.extend(starts.iter().map(|va| format!("walk {va:#x}")));
    let replay = map::parse(&transcript_of(&run)?)?;
    if replay.regions != model.regions {
        let hint = match run.raw_dtb {
            Some(_) => " (with --raw-dtb, only if the tree has a /chosen/kaslr-seed)",
            None => "",
        };
        return Err(format!(
            "the second boot (for the walks) did not lay out the same: is the boot reproducible?{hint}"
        ));
    }
    Ok(replay.walks)
}

/// The drawing's title: the page size and where KASLR put the image.
fn title(model: &Model) -> String {
    let kaslr = match (model.kaslr.source.as_str(), model.kaslr.seed) {
        (_, Some(seed)) => format!("KASLR offset {:#x} (seed {seed:#x})", model.kaslr.offset),
        ("", None) => "KASLR unknown".to_string(),
        (source, None) => format!("KASLR {source}, offset {:#x}", model.kaslr.offset),
    };
    format!("splitmap, {} pages: {kaslr}", model.page_size())
}
