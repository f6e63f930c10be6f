#!/usr/bin/env python3
"""Release floors of libmla.so (alone or inside a wheel): what a user's machine must have.

For every shared library given (or found inside a given .whl) this reads, with binutils:

* ``readelf -d``  NEEDED entries: only the C library family is allowed (libc, libm, libpthread,
  libdl, librt, ld-linux). In particular no ``libcudart.so*`` (the CUDA runtime must be linked
  statically: the user needs the driver only, no toolkit) and no ``libcuda.so*`` (static cudart
  dlopens the driver), no libstdc++ (linked statically; libgcc_s.so.1, present on every glibc system, is allowed);
* ``objdump -T``  the symbol versions referenced by undefined symbols: the highest ``GLIBC_x.y``
  is the glibc floor (checked against ``--max-glibc``); ``GLIBCXX_``/``CXXABI_`` must be absent;
* the CUDA part, when there is one (``.nv_fatbin`` section): the CUDA release that built it (from
  the embedded PTX header or the static runtime), hence the driver floor (CUDA 12.x runtime:
  R525+ through minor-version compatibility; 13.x: R580+), and the SASS architectures
  (``cuobjdump --list-elf`` when available); ``sm_90a`` must be there for the Hopper kernel.

For a wheel it also reports the tags (py3-none-<platform>) and checks that a ``manylinux_X_Y``
platform tag is not lower than the glibc floor.

    python tools/check_wheel.py build/libmla.so
    python tools/check_wheel.py dist/mla-0.1.0-py3-none-*.whl --max-glibc 2.34 --require-cuda --json
Exit status 0 when every check passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ALLOWED_NEEDED = re.compile(r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|"
                            r"ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|libgcc_s\.so\.1)$")
# Minimum Linux driver for a CUDA runtime of each major release (CUDA minor-version compatibility:
# anything built with 12.x runs on the 12.0 driver floor, 13.x on the 13.0 floor).
DRIVER_FLOOR = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
# A marker string that only the CUDA runtime (libcudart, static or shared) contains.
CUDART_MARKER = b"CUDA driver version is insufficient for CUDA runtime version"


def vkey(v: str):
    return tuple(int(x) for x in re.findall(r"\d+", v))


def run(cmd) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def needed(path: str) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", "-W", path]))


def symbol_versions(path: str) -> dict[str, set[str]]:
    """{version tag: {undefined symbols referencing it}} from objdump -T."""
    out: dict[str, set[str]] = {}
    for line in run(["objdump", "-T", "-w", path]).splitlines():
        if "*UND*" not in line:
            continue
        m = re.search(r"\(?((?:GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+)\)?\s+(\S+)\s*$", line)
        if m:
            out.setdefault(m.group(1), set()).add(m.group(2))
    return out


def sections(path: str) -> list[str]:
    return re.findall(r"^\s*\[\s*\d+\]\s+(\S+)", run(["readelf", "-S", "-W", path]), re.M)


def cuda_info(path: str) -> dict:
    with open(path, "rb") as f:
        blob = f.read()
    info: dict = {"static_cudart": CUDART_MARKER in blob}
    m = re.search(rb"Cuda compilation tools, release (\d+)\.(\d+), V([\d.]+)", blob)
    if m:
        info["cuda_release"] = "%s.%s" % (m.group(1).decode(), m.group(2).decode())
        info["nvcc_version"] = m.group(3).decode()
    ptx = sorted({v.decode() for v in re.findall(rb"\.version (\d+\.\d+)\s", blob)}, key=vkey)
    if ptx:
        info["ptx_isa"] = ptx
    tool = shutil.which("cuobjdump") or ("/usr/local/cuda/bin/cuobjdump"
                                         if os.path.exists("/usr/local/cuda/bin/cuobjdump") else None)
    if tool:
        try:
            elfs = run([tool, "--list-elf", path])
            info["sass"] = sorted(set(re.findall(r"\.(sm_\d+a?)\.", elfs)), key=vkey)
            ptxs = run([tool, "--list-ptx", path])
            info["ptx_targets"] = sorted(set(re.findall(r"\.(sm_\d+a?)\.", ptxs)), key=vkey)
        except subprocess.CalledProcessError as e:
            info["cuobjdump_error"] = (e.stderr or "").strip()[:200]
    else:
        info["sass"] = sorted({s.decode() for s in re.findall(rb"\b(sm_\d{2,3}a?)\b", blob)}, key=vkey)
    major = int(info["cuda_release"].split(".")[0]) if "cuda_release" in info else None
    if major is None and info.get("ptx_isa"):
        # PTX ISA 8.x ships with CUDA 12.x, 9.x with 13.x
        major = {7: 11, 8: 12, 9: 13}.get(vkey(info["ptx_isa"][-1])[0])
    if major is not None:
        info["cuda_major"] = major
        info["driver_floor"] = DRIVER_FLOOR.get(major, "unknown")
    return info


def check_library(path: str, max_glibc: str | None, require_cuda: bool, require_sass: list[str]) -> dict:
    res = {"path": path, "problems": []}
    res["needed"] = needed(path)
    for n in res["needed"]:
        if n.startswith("libcudart"):
            res["problems"].append("NEEDED %s: the CUDA runtime must be linked statically "
                                   "(users must need only the driver)" % n)
        elif n.startswith("libcuda.so"):
            res["problems"].append("NEEDED %s: link the runtime statically; it loads the driver itself" % n)
        elif not ALLOWED_NEEDED.match(n):
            res["problems"].append("NEEDED %s is not part of the C library" % n)
    vers = symbol_versions(path)
    glibc = sorted((v for v in vers if v.startswith("GLIBC_")), key=vkey)
    res["glibc_floor"] = glibc[-1].split("_", 1)[1] if glibc else None
    res["glibc_floor_symbols"] = sorted(vers[glibc[-1]]) if glibc else []
    for v in vers:
        if v.startswith(("GLIBCXX_", "CXXABI_")):
            res["problems"].append("references %s (%s): link libstdc++ statically"
                                   % (v, ", ".join(sorted(vers[v])[:3])))
    if max_glibc and res["glibc_floor"] and vkey(res["glibc_floor"]) > vkey(max_glibc):
        res["problems"].append("needs glibc %s (symbols %s) > allowed %s" % (
            res["glibc_floor"], ", ".join(res["glibc_floor_symbols"][:5]), max_glibc))
    secs = sections(path)
    res["has_cuda"] = ".nv_fatbin" in secs or "__nv_relfatbin" in secs
    if res["has_cuda"]:
        res["cuda"] = cuda_info(path)
        if not res["cuda"]["static_cudart"]:
            res["problems"].append("CUDA code present but no statically linked CUDA runtime found")
        for arch in require_sass:
            if "sass" in res["cuda"] and arch not in res["cuda"]["sass"]:
                res["problems"].append("no %s SASS in the fat binary (has %s)" % (arch, res["cuda"]["sass"]))
    elif require_cuda:
        res["problems"].append("no CUDA code (.nv_fatbin) in the library: a CPU-only build")
    return res


def wheel_tags(whl: str) -> dict:
    with zipfile.ZipFile(whl) as z:
        meta = [n for n in z.namelist() if n.endswith(".dist-info/WHEEL")]
        tags = []
        if meta:
            tags = [line.split(":", 1)[1].strip() for line in z.read(meta[0]).decode().splitlines()
                    if line.startswith("Tag:")]
    return {"tags": tags, "filename_tag": "-".join(os.path.basename(whl)[:-4].split("-")[-3:])}


def check_path(path: str, args) -> list[dict]:
    if path.endswith(".whl"):
        out = []
        tags = wheel_tags(path)
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(path) as z:
                libs = [n for n in z.namelist() if re.search(r"\.so(\.\d+)*$", n)]
                for n in libs:
                    z.extract(n, tmp)
            if not libs:
                return [{"path": path, "problems": ["no shared library inside the wheel"], **tags}]
            for n in libs:
                r = check_library(os.path.join(tmp, n), args.max_glibc, args.require_cuda, args.require_sass)
                r["path"] = "%s!%s" % (path, n)
                r.update(tags)
                for t in tags["tags"]:
                    m = re.search(r"manylinux_(\d+)_(\d+)_", t)
                    if m and r["glibc_floor"] and vkey(r["glibc_floor"]) > (int(m.group(1)), int(m.group(2))):
                        r["problems"].append("tag %s promises glibc %s.%s but the library needs %s" % (
                            t, m.group(1), m.group(2), r["glibc_floor"]))
                    if t.endswith("-linux_x86_64") or t.endswith("-linux_aarch64"):
                        r.setdefault("notes", []).append(
                            "tag %s is not a manylinux tag: PyPI refuses it; tag the wheel "
                            "manylinux_%s_<arch> (the glibc floor) for upload" % (t, (r["glibc_floor"] or "2_17").replace(".", "_")))
                    if not t.startswith("py3-none-"):
                        r["problems"].append("tag %s: expected py3-none-<platform> (ctypes, no ABI tie)" % t)
                out.append(r)
        return out
    return [check_library(path, args.max_glibc, args.require_cuda, args.require_sass)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check libmla.so / mla wheels for their run-time floors.")
    p.add_argument("paths", nargs="+", help="libmla.so files and/or .whl files")
    p.add_argument("--max-glibc", default=None, help="fail if the library needs a newer glibc (e.g. 2.34)")
    p.add_argument("--require-cuda", action="store_true", help="fail on a CPU-only library")
    p.add_argument("--require-sass", action="append", default=[], help="SASS arch that must be present "
                   "(e.g. sm_90a); only checked when CUDA code is present")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = p.parse_args(argv)
    for tool in ("readelf", "objdump"):
        if not shutil.which(tool):
            print("error: %s not found (install binutils)" % tool, file=sys.stderr)
            return 2
    reports = []
    for path in args.paths:
        if not os.path.exists(path):
            reports.append({"path": path, "problems": ["does not exist"]})
            continue
        reports.extend(check_path(path, args))
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    else:
        for r in reports:
            print("== %s" % r["path"])
            if "tags" in r:
                print("   wheel tags: %s" % ", ".join(r["tags"] or [r.get("filename_tag", "?")]))
            if "needed" in r:
                print("   NEEDED: %s" % ", ".join(r["needed"]))
                print("   glibc floor: %s (%s)" % (r["glibc_floor"], ", ".join(r["glibc_floor_symbols"][:6])))
            if r.get("has_cuda"):
                c = r["cuda"]
                print("   CUDA: release %s, static runtime %s, SASS %s, PTX %s" % (
                    c.get("cuda_release", "?"), "yes" if c["static_cudart"] else "NO",
                    ",".join(c.get("sass", [])) or "?", ",".join(c.get("ptx_targets", c.get("ptx_isa", []))) or "-"))
                print("   driver floor: %s (CUDA %s.x runtime)" % (c.get("driver_floor", "?"), c.get("cuda_major", "?")))
            elif "has_cuda" in r:
                print("   CUDA: none (CPU-only build: no driver needed)")
            for note in r.get("notes", []):
                print("   note: %s" % note)
            for prob in r["problems"]:
                print("   FAIL: %s" % prob)
            if not r["problems"]:
                print("   OK")
    return 1 if any(r["problems"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
