#!/usr/bin/env python3
"""ncu_lines.py — stall samples of one kernel per CUDA source line, offline.

ncu's CUDA-source view printed no metric columns on the device (ncu of CUDA 13.0, `--page source
--print-source cuda --csv`), so this maps its SASS view instead: tests/gpu/ncu_stalls.sh keeps the
whole SASS page (`ncu_src_<name>.csv.gz`, one row per instruction in program order), and the same
kernel's SASS, disassembled here with its inlining chains (`nvdisasm -c -gi` of a cubin built with
the library's flags and -lineinfo), gives each instruction's source line. The two instruction streams
are checked to be the same kernel (opcode by opcode) before anything is summed.

Usage: ncu_lines.py CSV[.gz] SASS_GI KERNEL_SYMBOL [--range FILE:A-B]... [--top N]
       ncu_lines.py CSV[.gz] --sass-top N   (no disassembly: the N SASS instructions with the most
                                             samples, each with its stall reasons; ncu_stalls.sh's table)
  --range FILE:A-B  also attribute each instruction to the deepest frame of its inlining chain that
                    lies in FILE's lines A..B (e.g. one device function's body), and sum by that line
Prints: total samples; per stall reason; the top source lines (innermost frame) with their reasons
and chain; per --range, the top lines of that range.
"""
import csv
import gzip
import re
import sys
from collections import defaultdict


def read_csv(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt", errors="replace") as f:
        rows = list(csv.reader(f))
    hi = next((i for i, r in enumerate(rows) if "Address" in r and "Source" in r), None)
    if hi is None:
        sys.exit("no SASS source page (Address / Source columns) in " + path)
    hdr = rows[hi]
    out = []
    for r in rows[hi + 1:]:
        if len(r) != len(hdr) or not r[hdr.index("Address")].startswith("0x"):
            continue
        out.append(r)
    return hdr, out


def read_sass(path, symbol):
    """[(opcode, [(file, line), ...] innermost first)] of the kernel's instructions, in order"""
    ins, chain, on = [], [], False
    pending = []
    for ln in open(path, errors="replace"):
        if ln.startswith(".text." + symbol + ":"):
            on = True
            continue
        if not on:
            continue
        if ln.startswith("//----") or (ln.startswith(".text.") and not ln.startswith(".text." + symbol)):
            break
        m = re.match(r'\s*//## File "([^"]+)", line (\d+)', ln)
        if m:
            pending.append((m.group(1).rsplit("/", 1)[-1], int(m.group(2))))
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", ln)
        if m:
            if pending:
                chain, pending = pending, []
            ins.append((opcode(m.group(2)), chain))
    return ins


def opcode(text):
    t = text.strip()
    t = re.sub(r"^@!?U?P\w+\s+", "", t)
    return t.split()[0] if t else ""


def num(x):
    try:
        return float(x.replace(",", ""))
    except ValueError:
        return 0.0


def sass_top(csv_path, n):
    """the n instructions of the SASS page with the most stall samples, in the page's own terms"""
    hdr, rows = read_csv(csv_path)
    src = hdr.index("Source")
    col = next((i for i, c in enumerate(hdr) if c.startswith("Warp Stall Sampling (All")), None)
    if col is None:
        sys.exit("no stall-sampling column in the source page; columns: %s" % hdr)
    reasons = [i for i, c in enumerate(hdr) if c.startswith("stall_") and "(Not Issued)" not in c]
    data = [(num(r[col]), r) for r in rows]
    tot = sum(v for v, _ in data) or 1.0
    print(f"== top SASS by stall samples ({len(data)} instructions, {tot:.0f} samples)")
    for v, r in sorted(data, key=lambda d: -d[0])[:n]:
        rs = sorted(((num(r[i]), hdr[i][6:]) for i in reasons if num(r[i])), reverse=True)[:4]
        why = " ".join(f"{nm}={100 * x / v:.0f}%" for x, nm in rs) if v else ""
        print(f"{100 * v / tot:5.1f}%  {r[hdr.index('Address')]:>8}  {r[src][:90]:90s}  {why}")


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[1] == "--sass-top":
        sass_top(a[0], int(a[2]))
        return
    if len(a) < 3:
        sys.exit(__doc__)
    csv_path, sass_path, symbol = a[:3]
    ranges, top = [], 30
    i = 3
    while i < len(a):
        if a[i] == "--range":
            f, ab = a[i + 1].rsplit(":", 1)
            lo, hi = (int(x) for x in ab.split("-"))
            ranges.append((f, lo, hi))
            i += 2
        elif a[i] == "--top":
            top = int(a[i + 1])
            i += 2
        else:
            sys.exit("unknown argument " + a[i])
    hdr, rows = read_csv(csv_path)
    ins = read_sass(sass_path, symbol)
    src = hdr.index("Source")
    col = next(i for i, c in enumerate(hdr) if c.startswith("Warp Stall Sampling (All"))
    reasons = [i for i, c in enumerate(hdr) if c.startswith("stall_") and "(Not Issued)" not in c]
    if len(rows) != len(ins):
        sys.exit(f"{len(rows)} instructions in the csv, {len(ins)} in {sass_path}: not the same kernel")
    bad = [k for k in range(len(rows)) if opcode(rows[k][src]) != ins[k][0]]
    if bad:
        k = bad[0]
        sys.exit(f"{len(bad)} opcodes differ, first at #{k}: csv '{rows[k][src]}' vs sass '{ins[k][0]}'")

    tot = 0.0
    by_reason = defaultdict(float)
    by_line = defaultdict(lambda: defaultdict(float))
    chain_of = {}
    by_range = [defaultdict(lambda: defaultdict(float)) for _ in ranges]
    for r, (op, chain) in zip(rows, ins):
        v = num(r[col])
        if not v:
            continue
        tot += v
        key = "%s:%d" % chain[0] if chain else "?"
        chain_of.setdefault(key, " <- ".join("%s:%d" % c for c in chain[1:4]))
        rs = {hdr[i]: num(r[i]) for i in reasons if num(r[i])}
        for nm, x in rs.items():
            by_reason[nm] += x
        by_line[key]["all"] += v
        for nm, x in rs.items():
            by_line[key][nm] += x
        for ri, (f, lo, hi) in enumerate(ranges):
            fr = next((c for c in chain if c[0] == f and lo <= c[1] <= hi), None)
            k2 = "%s:%d" % fr if fr else "(outside)"
            by_range[ri][k2]["all"] += v
            for nm, x in rs.items():
                by_range[ri][k2][nm] += x
    tot = tot or 1.0

    def reasons_str(d):
        items = sorted(((x, nm) for nm, x in d.items() if nm != "all"), reverse=True)[:4]
        return " ".join(f"{nm[6:]}={100 * x / d['all']:.0f}%" for x, nm in items)

    print(f"{symbol}: {len(ins)} instructions, {tot:.0f} stall samples")
    print("by reason: " + " ".join(f"{nm[6:]}={100 * x / tot:.1f}%" for nm, x in
                                   sorted(by_reason.items(), key=lambda t: -t[1])[:10]))
    print(f"\n== top {top} source lines (innermost frame; share of all samples; reasons within the line)")
    for key, d in sorted(by_line.items(), key=lambda t: -t[1]["all"])[:top]:
        print(f"{100 * d['all'] / tot:5.1f}%  {key:24s} {reasons_str(d):60s} <- {chain_of.get(key, '')}")
    for (f, lo, hi), br in zip(ranges, by_range):
        print(f"\n== by line of {f}:{lo}-{hi} (deepest frame in that range)")
        for key, d in sorted(br.items(), key=lambda t: -t[1]["all"])[:top]:
            print(f"{100 * d['all'] / tot:5.1f}%  {key:24s} {reasons_str(d)}")


if __name__ == "__main__":
    main()
