"""mla (the native binding): library facts, ABI mirror, numpy input, Plan lifetime, errors."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import mla
from mla_testlib import check_out_lse, make_case, ref_decode

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(REPO, "python")


def test_library_facts():
    assert os.path.exists(mla.library_path())
    code = mla.version()
    assert code // 10000 == int(mla.__version__.split(".")[0])
    assert mla.version_string() == "%d.%d.%d" % (code // 10000, code // 100 % 100, code % 100)
    assert isinstance(mla.has_cuda(), bool)
    assert mla.is_available()
    for st in range(0, 7):
        assert mla.status_string(st) == mla.status_name(st)
    assert mla.dtype_size(mla.MLA_DTYPE_BF16) == 2 and mla.dtype_size(mla.MLA_DTYPE_FP32) == 4
    assert mla.dtype_size(mla.MLA_DTYPE_FP8_E4M3) == 1 and mla.dtype_size(999) == 0


def test_struct_sizes_match_library():
    lib = mla._lib.lib()
    assert lib.mla_decode_shape_default().struct_size == ctypes.sizeof(mla.DecodeShape)
    assert lib.mla_decode_args_default().struct_size == ctypes.sizeof(mla.DecodeArgs)
    s = lib.mla_decode_shape_default()
    assert s.d_qk == 576 and s.d_v == 512


def test_struct_layout_matches_header(tmp_path):
    """Every field offset of the ctypes mirror equals offsetof() in include/mla.h."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to read the header's layout")
    lines = []
    for cname, cls in (("mla_decode_shape", mla.DecodeShape), ("mla_decode_args", mla.DecodeArgs)):
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (cname, cname))
        for fname, _ in cls._fields_:
            lines.append('printf("%s %s %%zu\\n", offsetof(%s, %s));' % (cname, fname, cname, fname))
    src = tmp_path / "layout.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"mla.h\"\nint main(void){\n%s\nreturn 0;}\n"
                   % "\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.check_call([cc, "-std=c11", "-I", os.path.join(REPO, "include"), str(src), "-o", str(exe)])
    got = {}
    for line in subprocess.check_output([str(exe)]).decode().splitlines():
        cname, fname, val = line.split()
        got[(cname, fname)] = int(val)
    for cname, cls in (("mla_decode_shape", mla.DecodeShape), ("mla_decode_args", mla.DecodeArgs)):
        assert got[(cname, "sizeof")] == ctypes.sizeof(cls), cname
        for fname, _ in cls._fields_:
            assert got[(cname, fname)] == getattr(cls, fname).offset, "%s.%s" % (cname, fname)


def test_header_field_names_mirrored():
    """The ctypes structs list exactly the fields of the header's structs, in order."""
    hdr = open(os.path.join(REPO, "include", "mla.h")).read()
    for cname, cls in (("mla_decode_shape", mla.DecodeShape), ("mla_decode_args", mla.DecodeArgs)):
        body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (cname, cname), hdr, re.S).group(1)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        names = [re.findall(r"[A-Za-z_]\w*", re.sub(r"\[.*?\]", "", d))[-1] for d in body.split(";") if d.strip()]
        assert names == [f for f, _ in cls._fields_], cname


def _np_case(dtype_np, seed=0, b=2, s_q=2, h_q=4, h_kv=2, seqlens=(40, 100), page=16, causal=True):
    tdt = torch.bfloat16 if dtype_np == "bf16" else torch.float16
    q, kc, bt, cs = make_case(b, s_q, h_q, h_kv, list(seqlens), page, tdt, seed=seed)
    if dtype_np == "bf16":
        qn, kn = q.view(torch.int16).numpy().view(np.uint16), kc.view(torch.int16).numpy().view(np.uint16)
    else:
        qn, kn = q.numpy(), kc.numpy()
    return (q, kc, bt, cs), (qn, kn, bt.numpy(), cs.numpy())


@pytest.mark.parametrize("kind", ["fp16", "bf16"])
def test_numpy_decode(kind):
    (q, kc, bt, cs), (qn, kn, btn, csn) = _np_case(kind, seed=4)
    kw = dict(dtype="bf16") if kind == "bf16" else {}
    out, lse = mla.decode(qn, kn, btn, csn, causal=True, **kw)
    assert isinstance(out, np.ndarray) and isinstance(lse, np.ndarray)
    assert out.shape == (2, 2, 4, 512) and lse.shape == (2, 4, 2) and lse.dtype == np.float32
    if kind == "bf16":
        assert out.dtype == np.uint16
        out_t = torch.from_numpy(out.view(np.int16)).view(torch.bfloat16)
    else:
        assert out.dtype == np.float16
        out_t = torch.from_numpy(out)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
    check_out_lse(out_t, torch.from_numpy(lse), ref_out, ref_lse)


def test_numpy_uint16_needs_dtype():
    _, (qn, kn, btn, csn) = _np_case("bf16")
    with pytest.raises(mla.InvalidArgumentError, match="dtype='bf16'"):
        mla.decode(qn, kn, btn, csn)


def test_numpy_errors_carry_c_message():
    _, (qn, kn, btn, csn) = _np_case("fp16", h_q=6, h_kv=4, seqlens=(5, 5))
    with pytest.raises(mla.InvalidArgumentError) as ei:
        mla.decode(qn, kn, btn, csn)
    assert ei.value.message == mla.last_error() and "h_q (6) is not divisible by h_kv (4)" in str(ei.value)
    _, (qn, kn, btn, csn) = _np_case("fp16", h_q=8, h_kv=4, seqlens=(5, 5))
    with pytest.raises(mla.InvalidArgumentError) as ei:   # negative length: checked by the CPU path
        mla.decode(qn, kn, btn, np.array([5, -1], dtype=np.int32))
    assert ei.value.message == mla.last_error() and "cache_seqlens" in ei.value.message
    with pytest.raises(mla.InvalidArgumentError, match="stream"):
        mla.decode(qn, kn, btn, csn, stream=1234)
    with pytest.raises(mla.InvalidArgumentError, match="numpy.ndarray or a torch.Tensor"):
        mla.decode(qn.tolist(), kn, btn, csn)


def test_torch_cpu_decode_and_explicit_plan():
    q, kc, bt, cs = make_case(3, 1, 16, 1, [0, 64, 65], 64, torch.bfloat16, seed=8)
    with mla.Plan(3, 1, 16, 1, 64, torch.bfloat16, cpu_threads=1) as plan:
        # CPU workspace: the optional key-split partials; 3 row tiles (< 16) of 16 rows, up to
        # 64 ranges of 514 floats per row, + 64 bytes of alignment; 0 where the reference runs
        assert plan.device == mla.MLA_DEVICE_CPU and plan.num_sm_parts == 1
        assert plan.workspace_size in (0, 3 * 64 * 16 * 514 * 4 + 64)
        assert "b=3" in repr(plan)
        out, lse = plan.decode(q, kc, bt, cs, softmax_scale=0.07, cpu_threads=1)
        ref_out, ref_lse = ref_decode(q, kc, bt, cs, softmax_scale=0.07)
        check_out_lse(out, lse, ref_out, ref_lse)
        with pytest.raises(mla.InvalidArgumentError, match="do not match the plan"):
            plan.decode(q[:2], kc, bt[:2], cs[:2], cpu_threads=1)
    assert plan.closed
    with pytest.raises(mla.InvalidArgumentError, match="closed"):
        plan.decode(q, kc, bt, cs, cpu_threads=1)
    plan.close()     # idempotent


def test_plan_cache_reuses_plans():
    mla.clear_plan_cache()
    p1 = mla.cached_plan(2, 1, 8, 1, 64, "bf16")
    p2 = mla.cached_plan(2, 1, 8, 1, 64, mla.MLA_DTYPE_BF16)
    p3 = mla.cached_plan(2, 1, 8, 1, 64, "fp16")
    assert p1 is p2 and p1 is not p3


def test_plan_errors():
    with pytest.raises(mla.InvalidArgumentError) as ei:
        mla.Plan(0, 1, 16, 1, 64, "bf16")
    assert ei.value.message == mla.last_error() and "b" in ei.value.message
    with pytest.raises(mla.InvalidArgumentError):
        mla.Plan(1, 1, 16, 1, 64, "fp32")       # Python: unknown alias
    with pytest.raises(mla.InvalidArgumentError) as ei:
        mla.Plan(1, 1, 16, 1, 64, mla.MLA_DTYPE_FP32)
    assert ei.value.message == mla.last_error()  # the C library's dtype message


def test_exception_hierarchy():
    assert issubclass(mla.InvalidArgumentError, ValueError)
    assert issubclass(mla.UnsupportedError, NotImplementedError)
    assert issubclass(mla.CudaError, RuntimeError)
    assert issubclass(mla.LibraryNotFoundError, OSError)
    for st in range(1, 7):
        cls = mla.error_class(st)
        assert issubclass(cls, mla.MlaError)
        e = cls("m", status=st, function="f")
        assert e.status == st and "m" in str(e) and mla.status_name(st) in str(e)


def _run_py(code, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = PYDIR if os.environ.get("MLA_TEST_INSTALLED") != "1" else env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_missing_library_is_a_lazy_clear_error(tmp_path):
    bogus = str(tmp_path / "nope" / "libmla.so")
    r = _run_py("""
        import mla, flash_mla            # importing never needs the library
        assert not mla.is_available()
        try:
            mla.version()
        except mla.LibraryNotFoundError as e:
            print("ERR", e)
    """, {"MLA_LIBRARY": bogus})
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and bogus in r.stdout and "MLA_LIBRARY" in r.stdout


def test_import_without_torch():
    r = _run_py("""
        import sys
        sys.modules["torch"] = None      # make `import torch` fail
        import numpy as np, mla
        q = np.zeros((1, 1, 2, 576), np.float16); k = np.zeros((1, 16, 1, 576), np.float16)
        out, lse = mla.decode(q, k, np.zeros((1, 1), np.int32), np.array([3], np.int32))
        assert out.shape == (1, 1, 2, 512) and abs(float(lse[0, 0, 0]) - np.log(3)) < 1e-5
        print("OK", mla.version())
    """, {"MLA_LIBRARY": mla.library_path()})
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_version_file_matches_header():
    hdr = open(os.path.join(REPO, "include", "mla.h")).read()
    parts = [re.search(r"#define MLA_VERSION_%s (\d+)" % k, hdr).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    assert mla.__version__ == ".".join(parts)


def test_schedule_and_reuse_flag_on_cpu():
    (q, kc, bt, cs), _ = _np_case("fp16", seed=6)
    plan = mla.cached_plan(2, 2, 4, 2, 16, "fp16", causal=True)
    plan.schedule(cs, None)                      # a no-op on the CPU, but a real C call
    out, lse = mla.decode(q, kc, bt, cs, causal=True, plan=plan, reuse_schedule=True)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
    check_out_lse(out, lse, ref_out, ref_lse)
    with pytest.raises(mla.InvalidArgumentError, match="stream"):
        plan.schedule(cs, None, stream=1234)   # a CPU call takes no stream


def test_python_dash_m_mla():
    env = dict(os.environ, MLA_LIBRARY=mla.library_path())
    if os.environ.get("MLA_TEST_INSTALLED") != "1":
        env["PYTHONPATH"] = PYDIR
    r = subprocess.run([sys.executable, "-m", "mla"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert mla.library_path() in r.stdout and mla.version_string() in r.stdout
