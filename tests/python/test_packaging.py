"""Packaging: the wheel built from this repository is py3-none-<platform>, carries libmla.so
inside the `mla` package with the header's version, and works from its installed location
(outside the repository, without MLA_LIBRARY)."""
import glob
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

import mla

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _header_version():
    hdr = open(os.path.join(REPO, "include", "mla.h")).read()
    return ".".join(re.search(r"#define MLA_VERSION_%s (\d+)" % k, hdr).group(1) for k in ("MAJOR", "MINOR", "PATCH"))


def _setuptools_ok():
    try:
        import setuptools
    except ImportError:
        return False
    try:
        from setuptools.command.bdist_wheel import bdist_wheel  # noqa: F401
        return True
    except ImportError:
        try:
            from wheel.bdist_wheel import bdist_wheel  # noqa: F401
            return True
        except ImportError:
            return False


def test_wheel_tag_contents_and_installed_use(tmp_path):
    if not _setuptools_ok():
        pytest.skip("setuptools with bdist_wheel (>= 70.1, or the wheel package) is not installed")
    # Package the library these tests already use instead of rebuilding it (setup.py honours
    # MLA_PREBUILT_LIB); `pip install .` without it runs `make lib`.
    env = dict(os.environ, MLA_PREBUILT_LIB=mla.library_path(), PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                        "-w", str(tmp_path / "dist"), REPO], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = glob.glob(str(tmp_path / "dist" / "*.whl"))
    assert len(wheels) == 1, wheels
    name = os.path.basename(wheels[0])
    version = _header_version()
    assert name.startswith("mla_c-%s-py3-none-" % version), name
    assert not name.endswith("-any.whl"), name
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
        for f in ("mla/__init__.py", "mla/libmla.so", "mla/_version.py", "flash_mla/__init__.py",
                  "flash_mla/flash_mla_interface.py"):
            assert f in names, f
        assert ("__version__ = %r" % version) in z.read("mla/_version.py").decode()
        wheel_meta = [n for n in names if n.endswith(".dist-info/WHEEL")]
        assert "Root-Is-Purelib: false" in z.read(wheel_meta[0]).decode()
        site = tmp_path / "site"
        z.extractall(str(site))
    # import from the unpacked wheel, from another directory, with no MLA_LIBRARY and no repo on the path
    env = {k: v for k, v in os.environ.items() if k not in ("MLA_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    code = textwrap.dedent("""
        import mla, flash_mla, torch
        assert mla.library_path().startswith(%r), mla.library_path()
        q = torch.zeros(1, 1, 2, 576, dtype=torch.bfloat16); k = torch.zeros(1, 64, 1, 576, dtype=torch.bfloat16)
        out, lse = flash_mla.flash_mla_with_kvcache(q, k, torch.zeros(1, 1, dtype=torch.int32),
                                                    torch.tensor([5], dtype=torch.int32), 512,
                                                    flash_mla.get_mla_metadata()[0])
        assert out.shape == (1, 1, 2, 512) and abs(float(lse[0, 0, 0]) - float(torch.tensor(5.0).log())) < 1e-5
        print("OK", flash_mla.__file__)
    """ % str(site))
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK " + str(site) in r.stdout
