#!/usr/bin/env python3
"""Checks that the output pasted into README.md and docs/*.md is still real.

Every fenced block in which a line starts with `$ cargo run -- ` is a
transcript: the script runs that command (as `cargo run -q -- ...`, from the
repository root) and checks that each line pasted under it still appears in
the real output, in the same order. A block may show only some of the lines
(an excerpt); a line `...` stands for any number of lines. Durations
(`5.2 s`) are not compared.

    scripts/check-docs.py                     # check every document
    scripts/check-docs.py README.md           # check one
    scripts/check-docs.py --update [FILE...]  # and re-paste what changed

`--update` replaces each stale line with the next real line of the same shape
(the same text once numbers are ignored): `text va=0x… map=…` takes the new
addresses, `ok 18 name` the new number. Numbers quoted in the prose around a
block, and addresses inside the commands themselves, are still yours to fix.

A block right after `<!-- not checked: WHY -->` is skipped.

Prints each pasted line a fresh run no longer prints, with the real line that
has the same first word (usually the new value), and exits 1 if there is any.
Not part of `cargo test`: addresses and counts in the docs change with every
kernel change, and re-pasting them is a deliberate step.
"""

import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DURATION = re.compile(r"\d+(\.\d+)? s\b")
NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")


def transcripts(path):
    """(line number, command, [(line number, pasted line)]) for each `$ cargo run` in a block.

    A block right after a line containing `<!-- not checked` is skipped (say why
    in the comment: a file the reader makes by hand, say).
    """
    lines = path.read_text().splitlines()
    in_block, skip, current = False, False, None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if in_block and current and not skip:
                yield current
            previous = next((l for l in reversed(lines[: number - 1]) if l.strip()), "")
            in_block, current = not in_block, None
            skip = in_block and "<!-- not checked" in previous
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            if current and not skip:
                yield current
            command = line[2:]
            current = (number, command, []) if command.startswith("cargo run -- ") else None
        elif current is not None:
            current[2].append((number, line))


def run(command, cache={}):
    if command not in cache:
        words = shlex.split(command)
        words[:3] = ["cargo", "run", "-q", "--"]
        done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=300)
        cache[command] = (done.stdout + done.stderr).splitlines()
    return cache[command]


def normal(line):
    return DURATION.sub("# s", line.rstrip())


def shape(line):
    return NUMBER.sub("#", line.strip())


def check(path, update):
    """Stale pasted lines in `path`, re-pasted from a fresh run if `update`."""
    problems = 0
    text = path.read_text().splitlines(keepends=True)
    for number, command, pasted in transcripts(path):
        real = [normal(line) for line in run(command)]
        at = 0
        for line_number, line in pasted:
            if line.strip() in ("", "..."):
                continue
            want = normal(line)
            try:
                at = real.index(want, at) + 1
                continue
            except ValueError:
                pass
            problems += 1
            alike = [i for i in range(at, len(real)) if shape(real[i]) == shape(want)]
            print(f"{path.relative_to(ROOT)}:{line_number}: no longer printed by `{command}` (line {number}):")
            print(f"    pasted: {line}")
            if alike:
                print(f"    now:    {real[alike[0]]}")
                at = alike[0] + 1
                if update:
                    text[line_number - 1] = run(command)[alike[0]].rstrip() + "\n"
    if update:
        path.write_text("".join(text))
    return problems


def main():
    args = sys.argv[1:]
    update = "--update" in args
    paths = [ROOT / p for p in args if p != "--update"] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    problems = sum(check(p, update) for p in paths)
    if problems and update:
        print(f"check-docs: re-pasted what changed in {problems} line(s); check the prose around them and run again")
        return 1
    if problems:
        print(f"check-docs: {problems} pasted line(s) are out of date")
        return 1
    print(f"check-docs: every transcript in {len(paths)} document(s) matches a fresh run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
