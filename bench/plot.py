#!/usr/bin/env python3
"""Plot mla-bench JSON results: GB/s and TFLOPS per case (two panels), FlashMLA's published
figures (spec section 7) as markers with their lo-hi range, and the measured ceilings as lines.

    python3 bench/plot.py results.json [-o results.png]

Needs matplotlib; without it this prints a message and exits 0 (the plot is optional)."""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    if data.get("tool") != "mla-bench" or "cases" not in data:
        raise SystemExit(f"plot.py: {path} is not mla-bench JSON")
    return data


def ref_points(cases, key):
    """x positions, midpoints and (lower, upper) error lengths of FlashMLA's figures."""
    xs, mids, lo_err, hi_err = [], [], [], []
    for i, c in enumerate(cases):
        ref = c.get("flashmla")
        if not ref or not ref.get(key):
            continue
        lo, hi = ref[key]
        mid = (lo + hi) / 2
        xs.append(i)
        mids.append(mid)
        lo_err.append(mid - lo)
        hi_err.append(hi - mid)
    return xs, mids, (lo_err, hi_err)


def panel(ax, cases, key, ylabel, ceiling, ceiling_label, is_gpu):
    values = [c[key] if c.get("ok") and c.get(key) is not None else 0.0 for c in cases]
    x = range(len(cases))
    ax.bar(x, values, color="#3b75af", label="mla.c")
    if is_gpu:
        rx, rmid, rerr = ref_points(cases, key)
        if rx:
            ax.errorbar(rx, rmid, yerr=rerr, fmt="D", color="#d9822b", markersize=5, capsize=3,
                        label="FlashMLA H100 (spec §7, no L2 flush)")
    if ceiling:
        ax.axhline(ceiling, color="#555555", linestyle="--", linewidth=1,
                   label=f"{ceiling_label} {ceiling:.4g}")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def case_label(c):
    label = c["label"]
    return label if c.get("ok") else label + " (failed)"


def plot(data, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = data["cases"]
    dev = data["device"]
    ceil = data.get("ceilings", {})
    is_gpu = dev.get("kind") == "gpu"
    width = max(8.0, 0.45 * len(cases) + 3)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 9), sharex=True)
    panel(top, cases, "gbs", "GB/s", ceil.get("copy_gbs"), "copy ceiling", is_gpu)
    panel(bottom, cases, "tflops", "TFLOPS", ceil.get("gemm_tflops"), "bf16 GEMM ceiling", is_gpu)
    bottom.set_xticks(range(len(cases)))
    bottom.set_xticklabels([case_label(c) for c in cases], rotation=60, ha="right", fontsize=7)
    where = f"{dev.get('kind', '?').upper()} {dev.get('name', '?')}"
    proto = data.get("protocol", {})
    flush = proto.get("l2_flush_bytes", 0)
    fig.suptitle(f"mla-bench dense MLA decode, {proto.get('dtype', 'bf16')}: {where}\n"
                 f"git {data.get('git_commit', '?')}, {proto.get('timing', '?')}"
                 f"{', L2 flushed' if flush else ''}, median of {proto.get('iters', '?')}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="mla-bench --json output")
    ap.add_argument("-o", "--output", help="PNG path (default: the JSON path with .png)")
    args = ap.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot.py: matplotlib is not installed; skipping the plot "
              "(pip install matplotlib)", file=sys.stderr)
        return 0
    out = args.output or os.path.splitext(args.json)[0] + ".png"
    plot(load(args.json), out)
    print(f"plot.py: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
