#!/usr/bin/env python3
"""Load test of a running scoring server (mlflow models serve, or the SageMaker-contract container).

N concurrent clients (threads, one keep-alive HTTP connection each) post /invocations for a bounded
time. Every answer is checked: HTTP 200, one prediction per prompt, the expected output columns,
``n_tokens`` within ``max_new_tokens``, the expected backend, and -- greedy decoding being
deterministic -- the same ``token_ids`` as the first answer seen for that prompt (or as a reference
file). Any error or mismatch makes the exit status 1. Latency percentiles are printed.

    python tools/loadtest.py --url http://127.0.0.1:8080 --clients 8 --duration 30
    python tools/loadtest.py --url ... --json-out results/loadtest.json --expect-backend mla-gpu
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import threading
import time
import urllib.parse

DEFAULT_PROMPTS = ["hello", "The capital of France is", "def fib(n):", "abc", "Once upon a time",
                   "SELECT * FROM", "1, 2, 3, 5, 8,", "MLA latent"]
COLUMNS = ("text", "token_ids", "n_tokens", "finish_reason", "backend")


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_vals:
        return float("nan")
    k = max(1, math.ceil(q / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


class Checker:
    """Validates answers; remembers the first token_ids per prompt (greedy => must repeat)."""

    def __init__(self, max_new_tokens, expect_backend=None, reference=None):
        self.max_new_tokens = max_new_tokens
        self.expect_backend = expect_backend
        self.ref = dict(reference or {})
        self.lock = threading.Lock()

    def check(self, prompts, status, body) -> str | None:
        if status != 200:
            return "HTTP %d: %s" % (status, body[:300])
        try:
            preds = json.loads(body)["predictions"]
        except (ValueError, KeyError, TypeError) as e:
            return "bad JSON answer (%s): %s" % (e, body[:300])
        if not isinstance(preds, list) or len(preds) != len(prompts):
            return "expected %d predictions, got %r" % (len(prompts), preds if not isinstance(preds, list) else len(preds))
        for p, pred in zip(prompts, preds):
            missing = [c for c in COLUMNS if c not in pred]
            if missing:
                return "prediction lacks %s" % missing
            if not (0 <= pred["n_tokens"] <= self.max_new_tokens) or pred["n_tokens"] != len(pred["token_ids"]):
                return "n_tokens %r inconsistent (max %d)" % (pred["n_tokens"], self.max_new_tokens)
            if pred["finish_reason"] not in ("stop", "length"):
                return "finish_reason %r" % pred["finish_reason"]
            if self.expect_backend and pred["backend"] != self.expect_backend:
                return "backend %r, expected %r" % (pred["backend"], self.expect_backend)
            with self.lock:
                want = self.ref.setdefault(p, pred["token_ids"])
            if pred["token_ids"] != want:
                return "prompt %r: token_ids %s differ from %s" % (p, pred["token_ids"][:8], want[:8])
        return None


def client_loop(idx, args, host, port, path, prompts, checker, stop_at, results, errors):
    conn = None
    i = idx
    while time.time() < stop_at:
        batch = [prompts[(i + j) % len(prompts)] for j in range(args.batch)]
        i += 1
        body = json.dumps({"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in batch]},
                           "params": {"max_new_tokens": args.max_new_tokens}})
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            status, text = resp.status, resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            status, text = -1, "%s: %s" % (type(e).__name__, e)
            if conn is not None:
                conn.close()
            conn = None
        dt = time.perf_counter() - t0
        err = checker.check(batch, status, text) if status != -1 else text
        with checker.lock:
            if err:
                errors.append(err)
            else:
                results.append(dt)
    if conn is not None:
        conn.close()


def run(args) -> dict:
    u = urllib.parse.urlparse(args.url)
    host, port = u.hostname, u.port or 80
    path = (u.path.rstrip("/") or "") + "/invocations"
    prompts = DEFAULT_PROMPTS[:]
    if args.prompts_file:
        with open(args.prompts_file) as f:
            prompts = [line.rstrip("\n") for line in f if line.strip()]
    reference = None
    if args.reference:
        with open(args.reference) as f:
            reference = json.load(f)
    checker = Checker(args.max_new_tokens, args.expect_backend, reference)
    results, errors = [], []
    t_start = time.time()
    stop_at = t_start + args.duration
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(k, args, host, port, path, prompts, checker, stop_at, results, errors))
               for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + args.timeout + 30)
    wall = time.time() - t_start
    lat = sorted(results)
    summary = {
        "url": args.url, "clients": args.clients, "duration_s": round(wall, 2), "batch": args.batch,
        "max_new_tokens": args.max_new_tokens, "requests_ok": len(lat), "errors": len(errors),
        "throughput_rps": round(len(lat) / wall, 2) if wall > 0 else 0.0,
        "latency_ms": {q: round(1000 * percentile(lat, float(q[1:])), 1) for q in ("p50", "p90", "p99")},
        "latency_ms_max": round(1000 * lat[-1], 1) if lat else None,
        "first_errors": errors[:5],
    }
    return summary


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--batch", type=int, default=1, help="prompts per request (default 1)")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    p.add_argument("--prompts-file", help="one prompt per line (default: a built-in set)")
    p.add_argument("--reference", help="JSON {prompt: token_ids} every answer must match")
    p.add_argument("--expect-backend", help="require this backend (mla-cpu / mla-gpu)")
    p.add_argument("--min-requests", type=int, default=1, help="fail if fewer requests completed")
    p.add_argument("--json-out", help="also write the summary here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.batch < 1:
        print("clients, duration and batch must be positive", file=sys.stderr)
        return 2
    s = run(args)
    print("loadtest %s: %d clients x %.1f s, batch %d, max_new_tokens %d" % (
        s["url"], s["clients"], s["duration_s"], s["batch"], s["max_new_tokens"]))
    print("requests ok %d, errors %d, throughput %.2f req/s" % (s["requests_ok"], s["errors"], s["throughput_rps"]))
    print("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %s" % (
        s["latency_ms"]["p50"], s["latency_ms"]["p90"], s["latency_ms"]["p99"], s["latency_ms_max"]))
    for e in s["first_errors"]:
        print("error: %s" % e)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(s, f, indent=2)
    ok = s["errors"] == 0 and s["requests_ok"] >= args.min_requests
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
