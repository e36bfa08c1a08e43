#!/usr/bin/env python3
"""Prints docs/guide/10-another-machine.md's table: `layout` on `virt` and on
`raspi3b` side by side (`--nokaslr`), one row per region that maps physical
memory, from two fresh boots. `scripts/check-docs.py` compares the chapter
with this output.
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROW = re.compile(r"^(\S+)\s+va=(\S+) pa=(\S+) prot=\S+ map=(\S+)$")


def layout(*machine):
    """{region: (va, pa, map)} of `layout` on a fresh boot, in order."""
    done = subprocess.run(
        ["cargo", "run", "-q", "--", "run", *machine, "--nokaslr", "--cmd", "layout"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        sys.exit(f"layout on {machine or 'virt'} failed:\n{done.stderr}")
    rows = {}
    for line in done.stdout.replace("\r", "").splitlines():
        found = ROW.match(line)
        if found:
            name, va, pa, blocks = found.groups()
            rows[name] = (va, pa, blocks.split("+")[0])
    return rows


def main():
    virt, pi = layout(), layout("--machine", "raspi3b")
    print("| region | va | pa on `virt` | pa on `raspi3b` |")
    print("|---|---|---|---|")
    for name in list(virt) + [n for n in pi if n not in virt]:
        v, p = virt.get(name), pi.get(name)
        vas = {row[0] for row in (v, p) if row}
        va = vas.pop() if len(vas) == 1 else f"{v[0]} on `virt`, {p[0]} on the Pi"

        def cell(row, missing):
            if not row:
                return missing
            # The linear map's blocks differ with the RAM: say which.
            return f"{row[1]} ({row[2]})" if name == "linear" else row[1]

        gone = "(no GIC)" if name.startswith("gic") else "(none)"
        print(f"| {name} | {va} | {cell(v, gone)} | {cell(p, gone)} |")


main()
