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
    assert rep["loadtest"]["errors"] == 0 and rep["loadtest"]["requests_ok"] > 0
