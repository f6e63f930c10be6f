"""mla-bench on the CPU path: the per-request query length mode (--mixed, the `mixed` case word;
issue 7 part 2's benchmark) and its error handling. The binary is the build's: next to the
libmla.so the suite runs against ($MLA_LIBRARY, which tests/run_all.sh sets), else build/."""
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D_QK, D_V = 576, 512


def _bench_path():
    lib = os.environ.get("MLA_LIBRARY")
    for d in ([os.path.dirname(lib)] if lib else []) + [os.path.join(REPO, "build")]:
        p = os.path.join(d, "mla-bench")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


BENCH = _bench_path()
pytestmark = pytest.mark.skipif(BENCH is None, reason="no mla-bench binary built (run make)")


def _run(*args, tmp_path=None, env_extra=None):
    return subprocess.run([BENCH, "--device", "cpu", "--no-ceilings", "--threads", "2", *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env_extra) if env_extra else None)


def _flops(c, total_q_times_keys):
    return c["h_q"] * total_q_times_keys * 2.0 * (D_QK + D_V)


def test_mixed_pairs_json_and_footer(tmp_path):
    js = tmp_path / "m.json"
    csv = tmp_path / "m.csv"
    r = _run("--mixed", "--quick", "--iters", "1", "--warmup", "0", "--json", str(js), "--csv", str(csv))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Per-request query lengths (cu_seqlens_q) vs every request padded" in r.stdout
    cases = json.load(open(js))["cases"]
    assert len(cases) == 4  # two pairs: h_q 16 and 128, b=2 s_q=4 s_k=256
    for m, p in zip(cases[0::2], cases[1::2]):
        assert m["query_lengths"] == "mixed" and p["query_lengths"] == "fixed"
        for k in ("b", "s_q", "h_q", "h_kv", "s_k", "page", "causal", "varlen", "mean_sk", "max_sk", "num_pages"):
            assert m[k] == p[k], k  # the twin: same requests, keys and pages
        assert m["ok"] and p["ok"] and m["bad_values"] == 0 and p["bad_values"] == 0
        b, s_q = m["b"], m["s_q"]
        assert p["query_tokens"] == b * s_q
        assert b <= m["query_tokens"] <= b * s_q
        # padded: FlashMLA's formula; mixed: at most that, at least one query token per request
        assert p["flops"] == pytest.approx(_flops(p, s_q * b * p["mean_sk"]), rel=1e-9)
        assert _flops(m, b * m["mean_sk"]) * (1 - 1e-9) <= m["flops"] <= p["flops"] * (1 + 1e-9)
        assert m["bytes"] < p["bytes"] or m["query_tokens"] == b * s_q
        assert m["label"].endswith(" mixed") and not p["label"].endswith(" mixed")
        assert m["flashmla"] is None
        # the footer line of this pair
        line = [ln for ln in r.stdout.splitlines() if ln.startswith(m["label"] + " ") and "x " in ln]
        assert len(line) == 1, r.stdout
        assert "%d/%d" % (m["query_tokens"], b * s_q) in line[0]
    header = open(csv).readline().strip().split(",")
    rows = open(csv).read().splitlines()[1:]
    qi = header.index("query_lengths")
    assert len(rows) == 4
    assert [row.split(",")[qi] for row in rows] == ["mixed", "fixed", "mixed", "fixed"]


def test_mixed_case_word_and_same_layout_as_padded(tmp_path):
    js = tmp_path / "c.json"
    r = _run("--case", "5,4,16,1,200,16,causal,mixed", "--case", "5,4,16,1,200,16,causal",
             "--iters", "1", "--warmup", "0", "--json", str(js))
    assert r.returncode == 0, r.stdout + r.stderr
    m, p = json.load(open(js))["cases"]
    assert (m["query_lengths"], p["query_lengths"]) == ("mixed", "fixed")
    assert (m["mean_sk"], m["num_pages"], m["page"]) == (p["mean_sk"], p["num_pages"], 16)
    assert 5 <= m["query_tokens"] <= 20 and p["query_tokens"] == 20
    assert "Per-request query lengths" in r.stdout  # an explicit twin pairs up too


def test_mixed_needs_a_case_with_several_query_tokens():
    r = _run("--mixed", "--case", "2,1,16,1,64")
    assert r.returncode == 2
    assert "no case with s_q >= 2" in r.stderr


def test_bad_case_word_is_rejected():
    r = _run("--case", "2,4,16,1,64,mixd")
    assert r.returncode == 2
    assert "unexpected 'mixd'" in r.stderr


def test_sparse_bench_names_an_option_it_does_not_take():
    # the dense options (here --no-ceilings) are not the sparse benchmark's: a usage error that
    # says which argument, before any case runs
    r = subprocess.run([BENCH, "--sparse-decode", "--device", "cpu", "--no-ceilings"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "'--no-ceilings'" in r.stderr and "not an option of the sparse benchmark" in r.stderr
    assert "usage: mla-bench --sparse-decode" in r.stderr
    assert r.stdout == ""


def test_sparse_prefill_case_rows_run_on_the_cpu(tmp_path):
    # --prefill-case replaces the prefill list with the rows given; both index draws run, and a
    # topk larger than s_kv leaves the rest of each uniform row invalid (no endless draw)
    js = tmp_path / "pf.json"
    r = subprocess.run([BENCH, "--device", "cpu", "--threads", "2", "--iters", "1", "--json", str(js),
                        "--prefill-case", "3,100,64,128,512,uniform",
                        "--prefill-case", "2,30000,16,64,576,flashmla"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in js.read_text().splitlines()]
    assert [x["case"] for x in rows] == [
        "sparse prefill d_qk=512 s_q=3 s_kv=100 h_q=64 topk=128",
        "sparse prefill d_qk=576 s_q=2 s_kv=30000 h_q=16 topk=64"]
    assert all(x["us"] > 0 and x["tflops"] > 0 for x in rows)
    assert "distinct uniform indices (--prefill-case)" in r.stdout
    assert "FlashMLA's indices (--prefill-case)" in r.stdout


@pytest.mark.parametrize("bad", ["1,2,3", "4,100,64,128,500,uniform", "4,100,64,128,512,near",
                                 "0,100,64,128,512,uniform", "4,300000000,64,128,512,uniform"])
def test_sparse_prefill_case_rejects_a_bad_row(bad):
    r = subprocess.run([BENCH, "--device", "cpu", "--prefill-case", bad],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--prefill-case wants S_Q,S_KV,H_Q,TOPK,D_QK,flashmla|uniform" in r.stderr
    assert f"got '{bad}'" in r.stderr
    assert r.stdout == ""


def test_watchdog_stops_a_case_past_its_limit():
    # MLA_BENCH_WATCHDOG_S set: also on the CPU path; this case needs far more than 1 s on any CPU
    r = _run("--case", "8,1,128,1,16384,64,fixed,fixed", "--iters", "3", env_extra={"MLA_BENCH_WATCHDOG_S": "1"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "watchdog: case 1/1 (b=8 s_q=1 h_q=128 s_k=16384) has run for more than 1 s" in r.stdout


def test_watchdog_names_the_sparse_case_it_stops():
    # fractions of a second are allowed (the thread checks every limit / 4 below 1 s)
    env = dict(os.environ, MLA_BENCH_WATCHDOG_S="0.001")
    r = subprocess.run([BENCH, "--sparse-decode", "--device", "cpu", "--threads", "2", "--quick", "--iters", "1"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "mla-bench: watchdog: sparse decode V32 b=" in r.stdout
    assert "has run for more than 0.001 s (MLA_BENCH_WATCHDOG_S)" in r.stdout


def test_watchdog_quiet_when_cases_finish_and_rejects_bad_values():
    r = _run("--case", "1,1,16,1,256,64,fixed,fixed", "--iters", "1", "--warmup", "0",
             env_extra={"MLA_BENCH_WATCHDOG_S": "120"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "watchdog" not in r.stdout
    for bad in ("abc", "-1", "5s", "nan"):
        r = _run("--case", "1,1,16,1,256,64,fixed,fixed", env_extra={"MLA_BENCH_WATCHDOG_S": bad})
        assert r.returncode == 2, (bad, r.stdout + r.stderr)
        assert "MLA_BENCH_WATCHDOG_S=%s is not a number of seconds >= 0" % bad in r.stderr
