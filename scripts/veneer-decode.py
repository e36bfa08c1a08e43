#!/usr/bin/env python3
"""Prints docs/modules.md's hand decoding of a real veneer, from a fresh run.

The numbers in that paragraph (the instruction words, the page arithmetic,
the target) move with every change to the kernel; `scripts/check-docs.py`
runs this script and checks that the paragraph in the document is what it
prints now (`--update` puts the new one in). The run is the one the document
shows: `hello` loaded far from the kernel, then `lsmod -v` and `sym` of the
three exports it calls.
"""

import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPORTS = ["splitmap_log", "splitmap_register_command_usage", "splitmap_unregister_command"]
COMMAND = ["cargo", "run", "-q", "--", "run", "--nokaslr", "--append", "module.region=far",
           "--cmd", "insmod hello", "--cmd", "lsmod -v"] + [w for e in EXPORTS for w in ("--cmd", f"sym {e}")]


def decode(line):
    """(veneer address, target, name, words, immlo, immhi, pages, page, add) of a veneer line."""
    words = line.split()
    at, target, name = int(words[1], 16), int(words[3], 16), words[4].split("+")[0]
    w = [int(x, 16) for x in line.split("words=")[1].split(",")]
    immlo, immhi = (w[0] >> 29) & 3, (w[0] >> 5) & 0x7FFFF
    pages = (immhi << 2) | immlo
    if pages & (1 << 20):
        pages -= 1 << 21
    page = (at & ~0xFFF) + (pages << 12)
    return at, target, name, w, immlo, immhi, pages, page, (w[1] >> 10) & 0xFFF


def main():
    out = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    veneers = [decode(l) for l in out.splitlines() if l.startswith("  veneer ")]
    at, target, name, w, immlo, immhi, pages, page, add = veneers[0]
    print(f"""Decoding the first veneer by hand (ARM ARM C6, ADRP and ADD (immediate)):
`{w[0]:#010x}` is `adrp x16` with immlo = {immlo} and immhi = {immhi:#x}, so
imm = {pages:#x} pages: `{at & ~0xFFF:#x} + {pages << 12:#x} = {page:#x}`.
`{w[1]:#010x}` is `add x16, x16, #{add:#x}`; `{w[2]:#010x}` is `br x16`. The target,
`{target:#x}`, is `{name}`, as `sym` says above.""")
    for ordinal, v in zip(["second", "third"], veneers[1:]):
        where = "the same page" if v[7] == page else f"page {v[7]:#x}"
        print(f"The {ordinal} veneer (`add #{v[8]:#x}`, {where}) goes to `{v[2]}`.")


if __name__ == "__main__":
    main()
