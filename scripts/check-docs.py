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

A block right after `<!-- not checked: WHY -->` is skipped. A block right
after `<!-- beside: cargo run -- … -->` runs that command at the same time,
in the background: `run --gdb` beside the `gdb` that attaches to it (the one
with `run --gdb` starts first; the other once its `--gdb-port` listens).

Prints each pasted line a fresh run no longer prints, with the real line that
has the same first word (usually the new value), and exits 1 if there is any.
Not part of `cargo test`: addresses and counts in the docs change with every
kernel change, and re-pasting them is a deliberate step.
"""

import pathlib
import re
import shlex
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DURATION = re.compile(r"\d+(\.\d+)? s\b")
NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")
BESIDE = re.compile(r"<!-- beside: (.*?) -->")


def transcripts(path):
    """(line number, command, [(line number, pasted line)], beside) for each
    `$ cargo run` in a block; `beside` is the command to run at the same time.

    A block right after a line containing `<!-- not checked` is skipped (say why
    in the comment: a file the reader makes by hand, say).
    """
    lines = path.read_text().splitlines()
    in_block, skip, beside, current = False, False, None, None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if in_block and current and not skip:
                yield current
            previous = next((l for l in reversed(lines[: number - 1]) if l.strip()), "")
            in_block, current = not in_block, None
            skip = in_block and "<!-- not checked" in previous
            found = BESIDE.search(previous) if in_block else None
            beside = found.group(1) if found else None
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            if current and not skip:
                yield current
            command = line[2:]
            current = (number, command, [], beside) if command.startswith("cargo run -- ") else None
        elif current is not None:
            current[2].append((number, line))


def cargo_run(command):
    words = shlex.split(command)
    words[:3] = ["cargo", "run", "-q", "--"]
    return words


def run(command, beside=None, cache={}):
    key = (command, beside)
    if key not in cache:
        if beside is None:
            done = subprocess.run(cargo_run(command), cwd=ROOT, capture_output=True, text=True, timeout=300)
            cache[key] = (done.stdout + done.stderr).splitlines()
        else:
            cache[key] = run_beside(command, beside)
    return cache[key]


def run_beside(command, beside):
    """`command`'s output, run with `beside` at the same time: the one that
    says `run --gdb` first, the other once QEMU listens on the gdb port."""
    server, client = (command, beside) if " run --gdb" in command else (beside, command)
    port = int(re.search(r"--gdb-port (\d+)", server).group(1))
    background = subprocess.Popen(cargo_run(server), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and background.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    done = subprocess.run(cargo_run(client), cwd=ROOT, capture_output=True, text=True, timeout=300)
    served = background.communicate(timeout=300)[0]
    output = served if command == server else done.stdout + done.stderr
    return output.replace("\r", "").splitlines()


def normal(line):
    return DURATION.sub("# s", line.rstrip())


def shape(line):
    return NUMBER.sub("#", line.strip())


def check(path, update):
    """Stale pasted lines in `path`, re-pasted from a fresh run if `update`."""
    problems = 0
    text = path.read_text().splitlines(keepends=True)
    for number, command, pasted, beside in transcripts(path):
        real = [normal(line) for line in run(command, beside)]
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
                    text[line_number - 1] = run(command, beside)[alike[0]].rstrip() + "\n"
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
