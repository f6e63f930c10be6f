#!/usr/bin/env python3
"""End-to-end serving check: the tiny model, packaged by MLflow, served over HTTP exactly as the
SageMaker container serves it, compared with the engine's CPU path.

1. writes the tiny random-weight checkpoint (seed 0) and packages it (integrations.mlflow_mla.save_model)
   with the given libmla.so;
2. reference: greedy generation in-process on the CPU path (Engine.from_checkpoint(device="cpu"));
3. serves the model with integrations/serving/launcher.py (nginx in front when installed, else the
   scoring server directly: --no-nginx), workers = one per GPU;
4. posts the prompts, checks /ping, the backend every answer reports (``--expect-backend``), and
   compares the served token ids with the CPU reference, prompt by prompt (``compare_prompt``):
   * identical: the same token ids;
   * near-tie divergence: at the first step where they differ, a float32 teacher-forced full
     recompute of the prompt + the CPU path's tokens before that step (no KV cache, so no bf16
     rounding at all) gives the served token and the CPU token logits within ``--tie-tol``
     (default 0.05): both are correct greedy choices of a bf16-cache model, the two kernels just
     accumulate in different orders (the gap is reported as the margin);
   * real mismatch: anything else (fails the check);
   then a short load test (tools/loadtest.py);
5. writes a JSON report (``--out``): per prompt its status, first differing step, tokens and
   margin; counts prompts_identical / prompts_near_tie / prompts_mismatch (and
   prompts_equal_to_cpu, tokens_equal_to_cpu, tokens_total as before).

On the GPU machine (the served backend must be mla-gpu, tokens as the CPU path up to near-ties):
    python tools/serve_check.py --lib build/libmla.so --expect-backend mla-gpu --dtype float32 \
        --out results/serve_check_gpu.json
The weights dtype: float32 keeps the served model numerically aligned with the CPU path (the KV
cache and the attention kernel are bf16 on both); ``--dtype bfloat16`` reports the bf16 run (the
comparison then is reported, not required).
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
TIE_TOL = 0.05      # |logit(served) - logit(cpu)| under the fp32 recompute that counts as a near-tie


def compare_prompt(served, cpu, teacher_logits, tol=TIE_TOL, eos_id=None):
    """Compare one prompt's served token ids with the CPU path's.

    ``teacher_logits(k)`` returns the float32 logits (a 1-D sequence over the vocabulary) that
    predict the token after prompt + ``cpu[:k]`` (teacher-forced on the CPU path's prefix). At the
    first differing step k a side that has already stopped counts as having chosen ``eos_id``
    (EOS ends a completion; it is not in the token ids). Returns a dict: ``status`` "identical",
    "near_tie" (|logit[served] - logit[cpu]| <= tol) or "mismatch"; for divergences also ``step``,
    ``served_token``, ``cpu_token``, ``gap`` (that |difference|, the near-tie margin),
    ``fp32_argmax`` and ``fp32_top2_margin`` of the teacher-forced logits."""
    served, cpu = [int(t) for t in served], [int(t) for t in cpu]
    if served == cpu:
        return {"status": "identical"}
    k = next((i for i, (a, b) in enumerate(zip(served, cpu)) if a != b), min(len(served), len(cpu)))
    s_tok = served[k] if k < len(served) else eos_id
    c_tok = cpu[k] if k < len(cpu) else eos_id
    res = {"status": "mismatch", "step": k, "served_token": s_tok, "cpu_token": c_tok}
    if s_tok is None or c_tok is None:
        res["why"] = "completions of different lengths and no EOS id to compare"
        return res
    lg = [float(x) for x in teacher_logits(k)]
    order = sorted(range(len(lg)), key=lambda i: -lg[i])
    gap = abs(lg[s_tok] - lg[c_tok])
    res.update(gap=round(gap, 6), fp32_argmax=order[0], fp32_top2_margin=round(lg[order[0]] - lg[order[1]], 6),
               tol=tol)
    if gap <= tol:
        res["status"] = "near_tie"
    return res


def fp32_teacher(engine, prompt, cpu_ids):
    """``teacher_logits`` for ``compare_prompt``: k -> the float32 logits after prompt + cpu_ids[:k]
    from one full forward of ``engine``'s model without a KV cache (the CPU engine: float32 weights)."""
    import torch
    if engine.dtype != torch.float32:
        raise ValueError(f"the teacher-forced recompute needs float32 weights, the engine has {engine.dtype}")
    ids = engine.encode(prompt)

    def teacher(k):
        with torch.no_grad():
            x = torch.tensor([ids + [int(t) for t in cpu_ids[:k]]], dtype=torch.long, device=engine.device)
            return engine.model(x)[0, -1].float().cpu().tolist()
    return teacher


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
                   help="fail on any real mismatch with the CPU reference, i.e. a divergence that is not a "
                        "near-tie (default: on with --dtype float32)")
    p.add_argument("--tie-tol", type=float, default=TIE_TOL,
                   help="near-tie tolerance in logits under the fp32 teacher-forced recompute (default %(default)s)")
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
              "dtype": a.dtype, "max_new_tokens": a.max_new_tokens, "prompts": PROMPTS, "tie_tol": a.tie_tol}
    ok = True
    srv = None
    try:
        ckpt = write_tiny_checkpoint(os.path.join(tmp, "ckpt"), seed=0)
        model_dir = os.path.join(tmp, "model")
        t = time.time()
        save_model(ckpt, model_dir, lib_path=a.lib, with_input_example=False)
        report["package_s"] = round(time.time() - t, 2)
        cpu_engine = Engine.from_checkpoint(ckpt, device="cpu")      # float32 weights, bf16 cache, libmla CPU
        cpu = cpu_engine.generate(PROMPTS, max_new_tokens=a.max_new_tokens)
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
        eos = cpu_engine.eos_token_ids[0] if cpu_engine.eos_token_ids else None
        comparisons = []
        for q, s_ids, c_ids in zip(PROMPTS, report["served"], report["cpu_reference"]):
            comparisons.append(dict(prompt=q, **compare_prompt(s_ids, c_ids, fp32_teacher(cpu_engine, q, c_ids),
                                                               a.tie_tol, eos)))
        report["comparison"] = comparisons
        for st in ("identical", "near_tie", "mismatch"):
            report["prompts_" + st] = sum(c["status"] == st for c in comparisons)
        for c in comparisons:
            extra = "" if c["status"] == "identical" else " at step %d: served %s, cpu %s, gap %s" % (
                c["step"], c["served_token"], c["cpu_token"], c.get("gap", "n/a"))
            print("%-28r %s%s" % (c["prompt"], c["status"], extra))
        if a.expect_backend and report["backends"] != [a.expect_backend]:
            ok = False
            report.setdefault("failures", []).append("backend %s != %s" % (report["backends"], a.expect_backend))
        if require_equal and report["prompts_mismatch"]:
            ok = False
            report.setdefault("failures", []).append(
                "served tokens really differ from the CPU path on %d prompts (not near-ties within %g)"
                % (report["prompts_mismatch"], a.tie_tol))
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
    summary = {k: report.get(k) for k in ("ok", "gpus", "backends", "prompts_identical", "prompts_near_tie",
                                          "prompts_mismatch", "prompts_equal_to_cpu", "tokens_equal_to_cpu",
                                          "tokens_total", "failures")}
    summary["latency_ms"] = report.get("loadtest", {}).get("latency_ms")
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
