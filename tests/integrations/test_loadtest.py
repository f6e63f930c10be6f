"""tools/loadtest.py against the local SageMaker-contract server (nginx + MLflow scoring server):
concurrent clients for a bounded time, every answer checked against in-process predict, no errors,
p50/p90/p99 printed; and the tool really fails on wrong answers and on a dead server."""
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import mlops_support

TOOL = os.path.join(mlops_support.REPO, "tools", "loadtest.py")
sys.path.insert(0, os.path.dirname(TOOL))
import loadtest  # noqa: E402


@pytest.fixture(scope="module")
def server(mlops_model_dir, tmp_path_factory):
    with mlops_support.container_serve(mlops_model_dir, run_dir=str(tmp_path_factory.mktemp("lt"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(mlops_pyfunc, tmp_path_factory):
    out = mlops_pyfunc.predict(pd.DataFrame({"prompt": loadtest.DEFAULT_PROMPTS}), params={"max_new_tokens": 6})
    ref = {p: [int(t) for t in ids] for p, ids in zip(loadtest.DEFAULT_PROMPTS, out["token_ids"])}
    path = tmp_path_factory.mktemp("ref") / "ref.json"
    path.write_text(json.dumps(ref))
    return str(path), ref


def run_tool(*args, timeout=300):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=timeout)


def test_load_all_answers_correct(server, reference, tmp_path):
    out = tmp_path / "summary.json"
    r = run_tool("--url", server.url, "--clients", "4", "--duration", "8", "--batch", "2",
                 "--max-new-tokens", "6", "--reference", reference[0], "--expect-backend", "mla-cpu",
                 "--min-requests", "8", "--json-out", str(out))
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"latency ms: p50 [\d.]+  p90 [\d.]+  p99 [\d.]+", r.stdout)
    s = json.loads(out.read_text())
    assert s["errors"] == 0 and s["requests_ok"] >= 8 and s["clients"] == 4
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p90"] <= s["latency_ms"]["p99"]
    assert 7 <= s["duration_s"] < 8 + 60


def test_wrong_answers_fail(server, reference, tmp_path):
    bad = {p: [t + 1 for t in ids] for p, ids in reference[1].items()}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    r = run_tool("--url", server.url, "--clients", "2", "--duration", "2", "--max-new-tokens", "6",
                 "--reference", str(path))
    assert r.returncode == 1 and "differ" in r.stdout and "FAIL" in r.stdout


def test_http_errors_fail(server):
    r = run_tool("--url", server.url, "--clients", "2", "--duration", "2", "--max-new-tokens", "0")
    assert r.returncode == 1 and "HTTP 400" in r.stdout


def test_dead_server_fails():
    r = run_tool("--url", "http://127.0.0.1:%d" % mlops_support.free_port(), "--clients", "2", "--duration", "1")
    assert r.returncode == 1 and "ConnectionRefusedError" in r.stdout


def test_percentile():
    v = sorted(range(1, 101))
    assert loadtest.percentile(v, 50) == 50 and loadtest.percentile(v, 90) == 90 and loadtest.percentile(v, 99) == 99
    assert loadtest.percentile([7], 99) == 7


def test_serve_check_tool_on_cpu(mlops_lib, tmp_path):
    """tools/serve_check.py (the GPU machine's end-to-end check) on the CPU path: packages the tiny
    model, serves it through the launcher, served tokens == the engine's CPU path, load test passes."""
    out = tmp_path / "serve_check.json"
    r = subprocess.run([sys.executable, os.path.join(mlops_support.REPO, "tools", "serve_check.py"), "--lib", mlops_lib,
                        "--expect-backend", "mla-cpu", "--loadtest-seconds", "3", "--max-new-tokens", "8",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["ok"] and rep["backends"] == ["mla-cpu"] and rep["nginx"] is True
    assert rep["prompts_equal_to_cpu"] == len(rep["prompts"]) and rep["tokens_equal_to_cpu"] == rep["tokens_total"]
    assert rep["prompts_identical"] == len(rep["prompts"]) and rep["prompts_near_tie"] == rep["prompts_mismatch"] == 0
    assert [c["status"] for c in rep["comparison"]] == ["identical"] * len(rep["prompts"])
    assert rep["loadtest"]["errors"] == 0 and rep["loadtest"]["requests_ok"] > 0


def test_serve_check_comparison_logic():
    """serve_check.compare_prompt on synthetic teacher-forced logits: identical, near-tie within the
    tolerance (reported with its margin), real mismatch (a clear fp32 winner served wrong), and a
    served completion that stopped early (EOS) against a clear non-EOS winner."""
    sys.path.insert(0, os.path.join(mlops_support.REPO, "tools"))
    import serve_check
    V = 10
    calls = []

    def logits_with(vals):
        def teacher(k):
            calls.append(k)
            lg = [0.0] * V
            for t, x in vals.items():
                lg[t] = x
            return lg
        return teacher

    r = serve_check.compare_prompt([5, 6, 7], [5, 6, 7], logits_with({}))
    assert r == {"status": "identical"} and calls == []          # no recompute needed
    # near-tie at step 1: fp32 logits of served 8 and cpu 6 differ by 0.02 <= 0.05
    r = serve_check.compare_prompt([5, 8, 1, 2], [5, 6, 7, 7], logits_with({6: 3.00, 8: 2.98, 4: 1.0}))
    assert r["status"] == "near_tie" and r["step"] == 1 and calls == [1]
    assert r["served_token"] == 8 and r["cpu_token"] == 6 and r["gap"] == pytest.approx(0.02)
    assert r["fp32_argmax"] == 6 and r["fp32_top2_margin"] == pytest.approx(0.02)
    assert serve_check.TIE_TOL == 0.05 and r["tol"] == 0.05
    # real mismatch: cpu 6 wins by 1.5 under fp32, the server chose 8
    r = serve_check.compare_prompt([5, 8], [5, 6], logits_with({6: 3.0, 8: 1.5}))
    assert r["status"] == "mismatch" and r["step"] == 1 and r["gap"] == pytest.approx(1.5)
    # the tolerance is the boundary: 0.06 fails at 0.05, passes at 0.1
    assert serve_check.compare_prompt([9], [6], logits_with({6: 1.06, 9: 1.0}))["status"] == "mismatch"
    assert serve_check.compare_prompt([9], [6], logits_with({6: 1.06, 9: 1.0}), tol=0.1)["status"] == "near_tie"
    # served stopped (EOS id 1) at step 2 where the cpu path went on with 7 (clear winner): mismatch;
    # a near-tie between EOS and 7 is accepted
    r = serve_check.compare_prompt([5, 6], [5, 6, 7], logits_with({7: 2.0, 1: 0.5}), eos_id=1)
    assert r["status"] == "mismatch" and r["step"] == 2 and r["served_token"] == 1 and r["cpu_token"] == 7
    assert serve_check.compare_prompt([5, 6], [5, 6, 7], logits_with({7: 2.0, 1: 1.99}), eos_id=1)["status"] \
        == "near_tie"
    # different lengths without an EOS id to compare: a mismatch, never silently accepted
    assert serve_check.compare_prompt([5], [5, 6], logits_with({}))["status"] == "mismatch"


def test_serve_check_fp32_teacher_on_the_tiny_model(dsk_tiny_ckpt, dsk_flash_mla):
    """The teacher-forced fp32 recompute serve_check uses on a divergence, on the real tiny model:
    its argmax is the CPU path's token at every step (the checkpoint is well-conditioned), and a
    served completion that takes the fp32 runner-up instead is a real mismatch (gap = the top-1/top-2
    margin, far above the tolerance), while the CPU path's own tokens compare identical."""
    import torch
    sys.path.insert(0, os.path.join(mlops_support.REPO, "tools"))
    import serve_check
    from deepseek_mla import Engine
    eng = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu")
    cpu = eng.generate(["abc"], max_new_tokens=6)[0]["token_ids"]
    assert len(cpu) == 6
    teacher = serve_check.fp32_teacher(eng, "abc", cpu)
    for k, t in enumerate(cpu):
        lg = torch.tensor(teacher(k))
        assert lg.shape == (eng.config.vocab_size,) and int(lg.argmax()) == t
    lg = torch.tensor(teacher(3))
    top = lg.topk(2)
    served = cpu[:3] + [int(top.indices[1])] + cpu[4:]
    r = serve_check.compare_prompt(served, cpu, teacher, eos_id=eng.eos_token_ids[0])
    assert r["status"] == "mismatch" and r["step"] == 3 and r["cpu_token"] == cpu[3]
    assert r["gap"] == pytest.approx(float(top.values[0] - top.values[1]), abs=1e-5) and r["gap"] > 0.05
    assert r["fp32_argmax"] == cpu[3]
    assert serve_check.compare_prompt(cpu, cpu, teacher)["status"] == "identical"
