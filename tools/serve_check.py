#!/usr/bin/env python3
"""End-to-end serving check: the tiny model, packaged by MLflow, served over HTTP exactly as the
SageMaker container serves it, compared with the engine's CPU path.

1. writes the tiny random-weight checkpoint (seed 0) and packages it (integrations.mlflow_mla.save_model)
   with the given libmla.so;
2. reference: greedy generation in-process on the CPU path (Engine.from_checkpoint(device="cpu"));
3. serves the model with integrations/serving/launcher.py (nginx in front when installed, else the
   scoring server directly: --no-nginx), workers = one per GPU;
4. posts the prompts, checks /ping, the backend every answer reports (``--expect-backend``), and
   that the served token ids equal the CPU reference; then a short load test (tools/loadtest.py);
5. writes a JSON report (``--out``).

On the GPU machine (the served backend must be mla-gpu, same tokens as the CPU path):
    python tools/serve_check.py --lib build/libmla.so --expect-backend mla-gpu --dtype float32 \
        --out results/serve_check_gpu.json
The weights dtype: float32 keeps the served model numerically aligned with the CPU path (the KV
cache and the attention kernel are bf16 on both); ``--dtype bfloat16`` reports the bf16 run (token
agreement then is reported, not required).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["hello", "The capital of France is", "def fib(n):", "abc", "Once upon a time",
           "SELECT * FROM", "1, 2, 3, 5, 8,", "MLA latent"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, timeout=300):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", default=os.path.join(REPO, "build", "libmla.so"))
    p.add_argument("--expect-backend", default=None, help="mla-gpu on the GPU machine, mla-cpu elsewhere")
    p.add_argument("--dtype", default=None, help="model weights dtype for serving (float32 / bfloat16)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--no-nginx", action="store_true", help="serve without nginx (default: auto-detect)")
    p.add_argument("--loadtest-seconds", type=float, default=10.0)
    p.add_argument("--require-equal", action="store_true", default=None,
                   help="fail unless served tokens equal the CPU reference (default: on with --dtype float32)")
    p.add_argument("--out", help="JSON report path")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = p.parse_args(argv)
    require_equal = a.require_equal if a.require_equal is not None else (a.dtype in (None, "float32", "fp32"))
    sys.path[:0] = [REPO, os.path.join(REPO, "python")]
    os.environ.setdefault("MLA_LIBRARY", os.path.abspath(a.lib))
    import torch

    from integrations.deepseek_mla import Engine, write_tiny_checkpoint
    from integrations.mlflow_mla import save_model

    tmp = tempfile.mkdtemp(prefix="mla-serve-check-")
    report = {"lib": os.path.abspath(a.lib), "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
              "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
              "dtype": a.dtype, "max_new_tokens": a.max_new_tokens, "prompts": PROMPTS}
    ok = True
    srv = None
    try:
        ckpt = write_tiny_checkpoint(os.path.join(tmp, "ckpt"), seed=0)
        model_dir = os.path.join(tmp, "model")
        t = time.time()
        save_model(ckpt, model_dir, lib_path=a.lib, with_input_example=False)
        report["package_s"] = round(time.time() - t, 2)
        cpu = Engine.from_checkpoint(ckpt, device="cpu").generate(PROMPTS, max_new_tokens=a.max_new_tokens)
        report["cpu_reference"] = [r["token_ids"] for r in cpu]

        port, inner = free_port(), free_port()
        use_nginx = not a.no_nginx and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
        argv_ = [sys.executable, "-m", "integrations.serving.launcher", "serve", "--model-root", model_dir,
                 "--port", str(port), "--inner-port", str(inner), "--host", "127.0.0.1",
                 "--run-dir", os.path.join(tmp, "run")]
        if not use_nginx:
            argv_.append("--no-nginx")
        # no MLA_LIBRARY: the served model must load the libmla.so packaged in it; PYTHONPATH stays
        # (on the GPU machine MLflow itself comes from wheels unpacked on PYTHONPATH)
        env = {k: v for k, v in os.environ.items() if k != "MLA_LIBRARY"}
        if a.dtype:
            env["MLA_DTYPE"] = a.dtype
        report["nginx"] = bool(use_nginx)
        log = open(os.path.join(tmp, "server.log"), "w")
        t = time.time()
        srv = subprocess.Popen(argv_, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = "http://127.0.0.1:%d" % port
        while time.time() - t < 600:
            if srv.poll() is not None:
                raise RuntimeError("server exited: " + open(log.name).read()[-4000:])
            try:
                if http(url + "/ping", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("server not up in 600 s")
        report["server_ready_s"] = round(time.time() - t, 2)
        status, text = http(url + "/invocations", {"dataframe_split": {"columns": ["prompt"],
                                                                       "data": [[q] for q in PROMPTS]},
                                                   "params": {"max_new_tokens": a.max_new_tokens}})
        if status != 200:
            raise RuntimeError("invocations HTTP %d: %s" % (status, text[:2000]))
        preds = json.loads(text)["predictions"]
        report["served"] = [q["token_ids"] for q in preds]
        report["backends"] = sorted({q["backend"] for q in preds})
        same = [s == c for s, c in zip(report["served"], report["cpu_reference"])]
        report["prompts_equal_to_cpu"] = sum(same)
        report["tokens_equal_to_cpu"] = sum(sum(1 for x, y in zip(s, c) if x == y)
                                            for s, c in zip(report["served"], report["cpu_reference"]))
        report["tokens_total"] = sum(len(c) for c in report["cpu_reference"])
        if a.expect_backend and report["backends"] != [a.expect_backend]:
            ok = False
            report.setdefault("failures", []).append("backend %s != %s" % (report["backends"], a.expect_backend))
        if require_equal and not all(same):
            ok = False
            report.setdefault("failures", []).append("served tokens differ from the CPU path on %d prompts"
                                                     % (len(same) - sum(same)))
        lt = subprocess.run([sys.executable, os.path.join(REPO, "tools", "loadtest.py"), "--url", url,
                             "--clients", "8", "--duration", str(a.loadtest_seconds), "--max-new-tokens",
                             str(a.max_new_tokens), "--json-out", os.path.join(tmp, "lt.json")]
                            + (["--expect-backend", a.expect_backend] if a.expect_backend else []),
                            capture_output=True, text=True, timeout=a.loadtest_seconds + 600)
        print(lt.stdout)
        report["loadtest"] = json.load(open(os.path.join(tmp, "lt.json")))
        if lt.returncode != 0:
            ok = False
            report.setdefault("failures", []).append("loadtest failed")
    except Exception as e:  # noqa: BLE001 - reported, exit 1
        ok = False
        report.setdefault("failures", []).append("%s: %s" % (type(e).__name__, e))
    finally:
        if srv is not None and srv.poll() is None:
            os.killpg(srv.pid, signal.SIGTERM)
            try:
                srv.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, signal.SIGKILL)
        if srv is not None:
            report["server_log_tail"] = open(os.path.join(tmp, "server.log")).read()[-3000:]
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report["ok"] = ok
    text = json.dumps(report, indent=2)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text + "\n")
    summary = {k: report.get(k) for k in ("ok", "gpus", "backends", "prompts_equal_to_cpu", "tokens_equal_to_cpu",
                                          "tokens_total", "failures")}
    summary["latency_ms"] = report.get("loadtest", {}).get("latency_ms")
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
