"""tools/sass_counts.py (make sass-counts): its parser of nvdisasm listings and its exit codes, on a
listing in nvdisasm's format and a stand-in nvdisasm script (no CUDA needed)."""
import importlib.util
import os
import stat
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "sass_counts.py")

LISTING = """\t.text
//--------------------- .text._Z3onev --------------------------
\t.section\t.text._Z3onev,"ax",@progbits
.text._Z3onev:
        /*0000*/                   LDC R1, c[0x0][0x28] ;                /* 0x00000a00ff017b82 */
        /*0010*/              @!UP0 SYNCS.EXCH.64 URZ, [UR6+0x38780], UR4 ;   /* 0x03878004063f85b2 */
        /*0020*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], RZ, !UPT ;  /* 0x00e0000004187df0 */
        /*0030*/              @P0  LDGSTS.E.BYPASS.128 [R25], desc[UR12][R6.64], !P0 ;  /* 0x0000000006197fae */
        /*0040*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;          /* 0x0000000000007b1d */
        /*0050*/                   EXIT ;                                 /* 0x000000000000794d */
//--------------------- .text._Z3twov --------------------------
.text._Z3twov:
        /*0000*/                   UTMALDG.4D [UR8], [UR4] ;              /* 0x00000008040075b4 */
        /*0010*/              @!PT STL [R1], R2 ;                         /* 0x0000000201007387 */
        /*0020*/                   LDL R3, [R1] ;                         /* 0x0000000001037983 */
        /*0030*/                   EXIT ;                                 /* 0x000000000000794d */
"""


def _tool():
    spec = importlib.util.spec_from_file_location("sass_counts", TOOL)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_functions_split_and_opcodes():
    got = dict(_tool().functions(LISTING))
    assert list(got) == ["_Z3onev", "_Z3twov"]
    assert got["_Z3onev"] == ["LDC", "SYNCS", "HGMMA", "LDGSTS", "BAR", "EXIT"]
    assert got["_Z3twov"] == ["UTMALDG", "STL", "LDL", "EXIT"]


def _fake_nvdisasm(tmp_path, text):
    lst = tmp_path / "listing.txt"
    lst.write_text(text)
    exe = tmp_path / "nvdisasm"
    exe.write_text("#!/bin/sh\ncat '%s'\n" % lst)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_exit_codes_and_table(tmp_path):
    exe = _fake_nvdisasm(tmp_path, LISTING)
    cubin = tmp_path / "k.cubin"
    cubin.write_bytes(b"")
    r = subprocess.run([sys.executable, TOOL, "--nvdisasm", exe, str(cubin)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr  # _Z3twov touches local memory
    rows = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines()[1:]}
    # total HGMMA UTMALDG LDGSTS SYNCS BAR LDG STG STL LDL
    assert rows["_Z3onev"] == ["6", "1", "0", "1", "1", "1", "0", "0", "0", "0"]
    assert rows["_Z3twov"] == ["4", "0", "1", "0", "0", "0", "0", "0", "1", "1"]
    r = subprocess.run([sys.executable, TOOL, "--nvdisasm", exe, "--filter", "one", str(cubin)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "_Z3twov" not in r.stdout
    r = subprocess.run([sys.executable, TOOL, "--nvdisasm", str(tmp_path / "missing"), str(cubin)],
                       capture_output=True, text=True, env={**os.environ, "PATH": "/nonexistent"})
    # no nvdisasm found (2), or the toolkit's fallback one rejects the empty cubin (also 2)
    assert r.returncode == 2, r.stdout + r.stderr
