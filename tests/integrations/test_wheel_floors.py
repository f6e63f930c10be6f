"""Release floors (tools/check_wheel.py): the native library needs only the C library and, for the
GPU path, the driver (static CUDA runtime, no libcudart.so); its glibc floor is what docs/deploy.md
states. Plus negative cases proving the checker catches a dynamic libcudart, libstdc++ symbol
versions and a too-new glibc, and the check of a real wheel built from this repo."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import mlops_support

TOOL = os.path.join(mlops_support.REPO, "tools", "check_wheel.py")
# The floors docs/deploy.md states for the library this repo builds (Debian 12 toolchain):
# glibc 2.34 with and without CUDA (libgcc_s is linked dynamically: its static unwinder would need 2.35).
STATED_GLIBC_FLOOR = {"cuda": "2.34", "cpu": "2.34"}
DRIVER_FLOOR = {12: "525.60.13", 13: "580.65.06"}


def check(*args):
    r = subprocess.run([sys.executable, TOOL, "--json", *args], capture_output=True, text=True, timeout=300)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip().startswith("[") else r.stdout + r.stderr


def vkey(v):
    return tuple(int(x) for x in v.split("."))


def test_library_floors(mlops_lib):
    rc, (rep,) = check(mlops_lib, "--require-sass", "sm_90a")
    assert rc == 0, rep["problems"]
    assert not [n for n in rep["needed"] if "cudart" in n or n.startswith("libcuda.so") or "stdc++" in n]
    assert set(rep["needed"]) <= {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                                  "ld-linux-x86-64.so.2", "libgcc_s.so.1"}
    kind = "cuda" if rep["has_cuda"] else "cpu"
    assert vkey(rep["glibc_floor"]) <= vkey(STATED_GLIBC_FLOOR[kind]), (
        "glibc floor rose to %s (%s): update docs/deploy.md" % (rep["glibc_floor"], rep["glibc_floor_symbols"]))
    if rep["has_cuda"]:
        c = rep["cuda"]
        assert c["static_cudart"]
        assert "sm_90a" in c["sass"]
        assert c["driver_floor"] == DRIVER_FLOOR[c["cuda_major"]]
    print(json.dumps(rep, indent=1))


def test_human_report_states_floors(mlops_lib):
    r = subprocess.run([sys.executable, TOOL, mlops_lib], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    assert "glibc floor: 2." in r.stdout and "NEEDED: " in r.stdout
    assert ("driver floor: " in r.stdout) or ("CPU-only build" in r.stdout)


def test_too_new_glibc_is_reported(mlops_lib):
    rc, (rep,) = check(mlops_lib, "--max-glibc", "2.17")
    assert rc == 1
    assert any("needs glibc" in p and "> allowed 2.17" in p for p in rep["problems"])


def _cc(tmp, name, src, *flags, lang="c"):
    path = tmp / ("%s.%s" % (name, "cpp" if lang == "c++" else "c"))
    path.write_text(textwrap.dedent(src))
    out = tmp / ("lib%s.so" % name)
    compiler = shutil.which("g++" if lang == "c++" else "cc")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(out), str(path), *flags], check=True)
    return out


@pytest.mark.skipif(not shutil.which("cc") or not shutil.which("g++"), reason="needs a C/C++ compiler")
def test_dynamic_cudart_and_libstdcxx_are_caught(tmp_path):
    # a stand-in libcudart.so.12 (a real soname, no CUDA toolkit needed) and a library linked to it
    stub = _cc(tmp_path, "cudart_stub", "int cudaRuntimeGetVersion(int *v) { *v = 12080; return 0; }\n",
               "-Wl,-soname,libcudart.so.12")
    os.symlink(stub, tmp_path / "libcudart.so")
    bad = _cc(tmp_path, "uses_cudart", """
        int cudaRuntimeGetVersion(int *v);
        int f(void) { int v = 0; cudaRuntimeGetVersion(&v); return v; }
    """, "-L%s" % tmp_path, "-lcudart")
    rc, (rep,) = check(str(bad))
    assert rc == 1
    assert "libcudart.so.12" in rep["needed"]
    assert any("linked statically" in p for p in rep["problems"])
    cxx = _cc(tmp_path, "uses_stdcxx", """
        #include <string>
        extern "C" int g(const char *s) { std::string x(s); x += "y"; return (int)x.size(); }
    """, lang="c++")
    rc, (rep,) = check(str(cxx))
    assert rc == 1
    assert any("libstdc++" in p for p in rep["problems"])


def test_wheel_built_from_repo(tmp_path, mlops_lib):
    """Build the release wheel from a copy of the packaging files (MLA_PREBUILT_LIB: no compile),
    then check it: py3-none-<platform> tag, libmla.so inside, same floors as the library."""
    src = tmp_path / "src"
    src.mkdir()
    repo = mlops_support.REPO
    for f in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        if os.path.exists(os.path.join(repo, f)):
            shutil.copy2(os.path.join(repo, f), src / f)
    shutil.copytree(os.path.join(repo, "include"), src / "include")
    for pkg in ("mla", "flash_mla"):
        shutil.copytree(os.path.join(repo, "python", pkg), src / "python" / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    out = tmp_path / "dist"
    env = dict(os.environ, MLA_PREBUILT_LIB=mlops_lib)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (whl,) = list(out.glob("*.whl"))
    assert whl.name.startswith("mla_c-") and "-py3-none-" in whl.name
    rc, reports = check(str(whl))
    assert rc == 0, reports
    (rep,) = reports
    assert rep["path"].endswith("!mla/libmla.so")
    rc2, (lib_rep,) = check(mlops_lib)
    assert rep["glibc_floor"] == lib_rep["glibc_floor"] and rep["needed"] == lib_rep["needed"]
