"""tests/gpu/ncu_lines.py (offline stall samples per source line) on a synthetic kernel: the sums per
innermost line and per --range frame, and the refusal to sum a csv of another kernel."""
import csv
import gzip
import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(__file__), "..", "gpu", "ncu_lines.py")

SASS = """//--------------------- .text._Z1kv --------------------------
.text._Z1kv:
	//## File "/x/k.cu", line 10
        /*0000*/                   MOV R1, c[0x0][0x28] ;
	//## File "/x/ops.cuh", line 5 inlined at "/x/k.cu", line 20
	//## File "/x/k.cu", line 20
        /*0010*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24 ;
        /*0020*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
	//## File "/x/ops.cuh", line 7 inlined at "/x/k.cu", line 30
	//## File "/x/k.cu", line 30
        /*0030*/              @!P0 BRA `(.L_x_1) ;
        /*0040*/                   EXIT ;
//--------------------- .text._Z1jv --------------------------
.text._Z1jv:
        /*0000*/                   NOP ;
"""


def write_csv(path, ops, samples):
    with gzip.open(path, "wt") as f:
        w = csv.writer(f)
        w.writerow(["File Name", "k.cu"])  # a preamble row, as ncu writes
        w.writerow(["Address", "Source", "Warp Stall Sampling (All Samples)",
                    "Warp Stall Sampling (Not-issued Samples)", "stall_barrier", "stall_long_sb",
                    "stall_long_sb (Not Issued)"])
        for i, (op, (b, l)) in enumerate(zip(ops, samples)):
            w.writerow([hex(0x7f00 + 16 * i), op, str(b + l), str(b), str(b), str(l), str(l)])


def run(tmp_path, ops, samples, *extra):
    sass = tmp_path / "k.sass"
    sass.write_text(SASS)
    c = tmp_path / "k.csv.gz"
    write_csv(str(c), ops, samples)
    return subprocess.run([sys.executable, TOOL, str(c), str(sass), "_Z1kv", *extra],
                          capture_output=True, text=True)


OPS = ["MOV R1, c[0x0][0x28]", "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24",
       "WARPGROUP.DEPBAR.LE gsb0, 0x0", "@!P0  BRA 0x7f0050", "EXIT"]


def test_sums_per_line_and_range(tmp_path):
    # samples (barrier, long_sb) per instruction: 100 in all
    r = run(tmp_path, OPS, [(0, 0), (10, 0), (30, 0), (0, 50), (10, 0)], "--range", "k.cu:20-30")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "5 instructions, 100 stall samples" in out
    assert "barrier=50.0%" in out and "long_sb=50.0%" in out
    lines = out.splitlines()
    top = lines[lines.index(next(l for l in lines if l.startswith("== top"))) + 1:]
    # ops.cuh:7 (BRA + EXIT) = 60, ops.cuh:5 (HGMMA + DEPBAR) = 40, k.cu:10 none
    assert top[0].split()[:2] == ["60.0%", "ops.cuh:7"]
    assert top[1].split()[:2] == ["40.0%", "ops.cuh:5"]
    assert "long_sb=83%" in top[0] and "barrier=17%" in top[0]
    assert "<- k.cu:30" in top[0]
    rng = lines[lines.index(next(l for l in lines if l.startswith("== by line of k.cu:20-30"))) + 1:]
    assert rng[0].split()[:2] == ["60.0%", "k.cu:30"]
    assert rng[1].split()[:2] == ["40.0%", "k.cu:20"]


def test_refuses_another_kernel(tmp_path):
    ops = list(OPS)
    ops[2] = "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24"
    r = run(tmp_path, ops, [(1, 1)] * 5)
    assert r.returncode != 0
    assert "opcodes differ, first at #2" in r.stderr
    r = run(tmp_path, OPS[:4], [(1, 1)] * 4)
    assert r.returncode != 0
    assert "4 instructions in the csv, 5 in" in r.stderr


def test_sass_top_needs_no_disassembly(tmp_path):
    c = tmp_path / "k.csv.gz"
    write_csv(str(c), OPS, [(0, 0), (10, 0), (30, 0), (0, 50), (10, 0)])
    r = subprocess.run([sys.executable, TOOL, str(c), "--sass-top", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "== top SASS by stall samples (5 instructions, 100 samples)"
    assert len(lines) == 3
    # the BRA (50 long_sb) first, then the DEPBAR (30 barrier)
    assert lines[1].split()[:3] == ["50.0%", "0x7f30", "@!P0"] and "long_sb=100%" in lines[1]
    assert lines[2].split()[:3] == ["30.0%", "0x7f20", "WARPGROUP.DEPBAR.LE"] and "barrier=100%" in lines[2]
