#!/usr/bin/env python3
"""Per-kernel SASS instruction counts of sm_90a cubins, off the device.

usage: tools/sass_counts.py [--nvdisasm PATH] [--filter SUBSTR] CUBIN...

Runs nvdisasm on each cubin (built by `make sass-counts`, or by hand with
`nvcc -cubin -arch=sm_90a ...`) and prints, for every kernel entry, the counts of the instructions
the notes check after each build: HGMMA (wgmma), UTMALDG (TMA loads), LDGSTS (cp.async), SYNCS
(mbarrier), BAR (named / CTA barriers), LDG / STG, and STL / LDL (local memory: spills or stack
arrays), plus the total. Exits 1 when any entry touches local memory, 2 when nvdisasm is missing.

nvdisasm ships with the CUDA toolkit; where the toolkit has no nvdisasm (this project's CI and
build machines have nvcc only), the PyPI wheel `nvidia-cuda-nvdisasm` carries one
(nvidia/cu13/bin/nvdisasm inside it): `pip download --no-deps nvidia-cuda-nvdisasm` and unzip.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

COLUMNS = ["HGMMA", "UTMALDG", "LDGSTS", "SYNCS", "BAR", "LDG", "STG", "STL", "LDL"]
INSN = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
FUNC = re.compile(r"^\.text\.(\S+):\s*$")


def find_nvdisasm(explicit):
    cands = [explicit] if explicit else []
    cands += [shutil.which("nvdisasm") or "", "/usr/local/cuda/bin/nvdisasm"]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def functions(text):
    """(name, opcode list) per .text section of nvdisasm's output"""
    name, ops = None, []
    for line in text.splitlines():
        m = FUNC.match(line.strip())
        if m:
            if name:
                yield name, ops
            name, ops = m.group(1), []
            continue
        if name:
            i = INSN.search(line)
            if i:
                ops.append(i.group(1))
    if name:
        yield name, ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvdisasm")
    ap.add_argument("--filter", default="", help="only entries whose mangled name contains this")
    ap.add_argument("cubins", nargs="+")
    a = ap.parse_args()
    tool = find_nvdisasm(a.nvdisasm)
    if not tool:
        print("sass_counts: no nvdisasm (see this script's docstring for the PyPI wheel)", file=sys.stderr)
        return 2
    local = 0
    print("%-64s %6s " % ("entry", "total") + " ".join("%7s" % c for c in COLUMNS))
    for cubin in a.cubins:
        out = subprocess.run([tool, "-c", cubin], capture_output=True, text=True)
        if out.returncode:
            print("sass_counts: nvdisasm failed on %s: %s" % (cubin, out.stderr.strip()), file=sys.stderr)
            return 2
        for name, ops in functions(out.stdout):
            if a.filter not in name:
                continue
            c = collections.Counter(ops)
            row = [c[k] for k in COLUMNS]
            local += c["STL"] + c["LDL"]
            print("%-64s %6d " % (name[:64], len(ops)) + " ".join("%7d" % v for v in row))
    if local:
        print("sass_counts: local memory used (STL/LDL) in the entries above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
