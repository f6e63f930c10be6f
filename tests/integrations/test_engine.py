"""deepseek_mla Engine: greedy generation equals a step-by-step full-recompute reference,
determinism, continuous batching within a call, thread safety, seeded sampling, EOS / stop tokens,
input validation, backend reporting (and the GPU path when CUDA is visible)."""
import json
import os
import shutil
import threading
import time

import pytest
import torch

from deepseek_mla import Engine, testing

pytestmark = pytest.mark.usefixtures("dsk_one_thread")

PROMPTS = ["", "a", "hello MLA", "x" * 62, "The quick brown fox jumps over the lazy dog. " * 3]
N_NEW = 8


@pytest.fixture(scope="module")
def eng_ref(dsk_tiny_ckpt):
    """fp32 weights, fp32 cache, the fp32 torch reference of flash_mla_with_kvcache."""
    return Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", dtype=torch.float32, kv_dtype=torch.float32,
                                  mla_ops=testing)


@pytest.fixture(scope="module")
def eng(dsk_tiny_ckpt, dsk_flash_mla):
    """The shipped configuration on the CPU: flash_mla (libmla's CPU path), bf16 cache."""
    return Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu")


def _reference(engine, prompt, n=N_NEW):
    return testing.greedy_reference(engine.model, engine.encode(prompt), n, engine.eos_token_ids)


def test_result_format_and_backend(eng):
    assert eng.backend == "mla-cpu" and eng.kv_dtype == torch.bfloat16 and eng.dtype == torch.float32
    info = eng.info()
    assert info["backend"] == "mla-cpu" and info["kv_lora_rank"] == 512 and info["tokenizer"] == "byte"
    out = eng.generate(["hi", "there"], max_new_tokens=3)
    assert isinstance(out, list) and len(out) == 2
    for r, p in zip(out, ["hi", "there"]):
        assert set(r) >= {"text", "token_ids", "finish_reason", "backend"}
        assert r["backend"] == "mla-cpu" and r["finish_reason"] in ("stop", "length")
        assert r["prompt_tokens"] == 1 + len(p) and r["completion_tokens"] == len(r["token_ids"]) <= 3
        assert all(isinstance(t, int) for t in r["token_ids"])
        assert r["text"] == eng.tokenizer.decode(r["token_ids"])
    assert eng.cache.allocator.num_free == eng.num_pages            # everything freed


def test_auto_device_reports_backend(dsk_tiny_ckpt, dsk_flash_mla):
    e = Engine.from_checkpoint(dsk_tiny_ckpt, device="auto")
    if torch.cuda.is_available():
        assert e.backend == "mla-gpu", e.backend_reason
    else:
        assert e.backend == "mla-cpu" and e.device.type == "cpu" and "no CUDA" in e.backend_reason


def test_greedy_equals_full_recompute_reference_exact(eng_ref):
    """fp32 cache + fp32 attention: the cached engine and the no-cache reference pick the same
    tokens (prompts from 1 to 136 tokens, generation crossing the 64-token page boundary)."""
    out = eng_ref.generate(PROMPTS, max_new_tokens=N_NEW, stop_on_eos=True)
    for p, r in zip(PROMPTS, out):
        assert r["token_ids"] == _reference(eng_ref, p), p
        assert r["backend"] == "torchref-cpu"


def test_greedy_flash_mla_matches_full_recompute(eng):
    """The shipped path (bf16 cache through flash_mla): deterministic, and every token is the
    full-recompute argmax up to bf16 rounding (teacher-forced check on the engine's own sequence)."""
    out = eng.generate(PROMPTS, max_new_tokens=N_NEW)
    again = eng.generate(PROMPTS, max_new_tokens=N_NEW)
    assert [r["token_ids"] for r in out] == [r["token_ids"] for r in again]
    exact = 0
    for p, r in zip(PROMPTS, out):
        ids = eng.encode(p)
        ref = testing.full_logits(eng.model, ids, r["token_ids"])[:-1]
        assert not testing.argmax_violations(ref, r["token_ids"], tol=0.1), p
        exact += r["token_ids"] == _reference(eng, p)
    assert exact >= len(PROMPTS) - 2


def test_continuous_batching_equals_one_by_one(dsk_tiny_ckpt):
    """A cache with pages for only a few requests at a time and max_batch_size 2: requests are
    admitted as others finish; each result equals generating that prompt alone."""
    e = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", kv_dtype=torch.float32, mla_ops=testing,
                               num_pages=5, max_batch_size=2)
    prompts = PROMPTS + ["z" * 10]
    out = e.generate(prompts, max_new_tokens=6)
    alone = [e.generate([p], max_new_tokens=6)[0] for p in prompts]
    assert [r["token_ids"] for r in out] == [r["token_ids"] for r in alone]
    assert e.stats["decode_steps"] > 0 and e.cache.allocator.num_free == 5
    with pytest.raises(ValueError, match="KV pages"):
        e.generate(["y" * 400], max_new_tokens=10)


def test_thread_safety_concurrent_generate(eng):
    groups = [["alpha", "beta gamma"], ["delta"], ["x" * 62, "epsilon"], ["zeta", "eta", "theta"]]
    serial = [eng.generate(g, max_new_tokens=5) for g in groups]
    results = [[None] * len(groups) for _ in range(2)]
    errors = []
    start = threading.Barrier(len(groups) * 2)

    def work(rep, i):
        try:
            start.wait()
            results[rep][i] = eng.generate(groups[i], max_new_tokens=5)
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(rep, i)) for rep in range(2) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for rep in range(2):
        assert results[rep] == serial
    assert eng.cache.allocator.num_free == eng.num_pages


def test_temperature_sampling_reproducible_with_seed(eng):
    kw = dict(max_new_tokens=8, temperature=0.9, top_p=0.95, stop_on_eos=False)
    a = eng.generate(["sample me", "again"], seed=123, **kw)
    b = eng.generate(["sample me", "again"], seed=123, **kw)
    c = eng.generate(["sample me", "again"], seed=124, **kw)
    assert [r["token_ids"] for r in a] == [r["token_ids"] for r in b]
    assert [r["token_ids"] for r in a] != [r["token_ids"] for r in c]
    greedy = eng.generate(["sample me"], max_new_tokens=8, stop_on_eos=False)[0]["token_ids"]
    assert a[0]["token_ids"] != greedy
    # top_p so small that only the most likely token survives == greedy
    nucleus = eng.generate(["sample me"], max_new_tokens=8, temperature=1.0, top_p=1e-9, seed=0,
                           stop_on_eos=False)[0]["token_ids"]
    assert nucleus == greedy


def test_sampler_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = torch.log(probs.clamp_min(1e-30))
    g = torch.Generator().manual_seed(0)
    n = 4000
    draws = [Engine._sample(logits, 1.0, 1.0, g) for _ in range(n)]
    freq = torch.bincount(torch.tensor(draws), minlength=4).float() / n
    assert torch.allclose(freq, probs, atol=0.03) and freq[3] == 0
    draws = [Engine._sample(logits, 1.0, 0.6, g) for _ in range(n)]      # nucleus {0, 1}
    freq = torch.bincount(torch.tensor(draws), minlength=4).float() / n
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.03)
    assert Engine._sample(logits, 0.0, 1.0, None) == 0


def _stop_case(engine, prompt):
    full = engine.generate([prompt], max_new_tokens=N_NEW, stop_on_eos=False)[0]["token_ids"]
    k = next(k for k in range(1, len(full)) if full[k] not in full[:k])
    return full, k


def test_stop_token_and_eos(eng, dsk_tiny_ckpt, tmp_path):
    prompt = "stop here"
    full, k = _stop_case(eng, prompt)
    r = eng.generate([prompt], max_new_tokens=N_NEW, stop_token_ids=[full[k]])[0]
    assert r["token_ids"] == full[:k] and r["finish_reason"] == "stop"
    assert r["text"] == eng.tokenizer.decode(full[:k])
    r = eng.generate([prompt], max_new_tokens=N_NEW, stop_token_ids=[full[k]], stop_on_eos=False)[0]
    assert r["token_ids"] == full and r["finish_reason"] == "length"
    r = eng.generate([prompt], max_new_tokens=k)[0]
    assert r["token_ids"] == full[:k] and r["finish_reason"] == "length"
    # the checkpoint's own eos_token_id (config.json) stops generation
    d = str(tmp_path / "eos")
    shutil.copytree(dsk_tiny_ckpt, d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["eos_token_id"] = full[k]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    e2 = Engine.from_checkpoint(d, device="cpu")
    assert full[k] in e2.eos_token_ids
    r = e2.generate([prompt, prompt], max_new_tokens=N_NEW)
    assert all(x["token_ids"] == full[:k] and x["finish_reason"] == "stop" for x in r)


def test_inputs_and_validation(eng):
    text = eng.generate(["abc"], max_new_tokens=4)[0]
    ids = eng.generate([[0, 3 + 97, 3 + 98, 3 + 99]], max_new_tokens=4)[0]
    assert text["token_ids"] == ids["token_ids"]
    single = eng.generate("abc", max_new_tokens=4)
    assert len(single) == 1 and single[0]["token_ids"] == text["token_ids"]
    assert eng.generate([[0, 100]], max_new_tokens=0)[0] == {
        "text": "", "token_ids": [], "finish_reason": "length", "backend": "mla-cpu",
        "prompt_tokens": 2, "completion_tokens": 0}
    assert eng.generate([], max_new_tokens=3) == []
    with pytest.raises(ValueError, match="empty prompt"):
        eng.generate([[]])
    with pytest.raises(ValueError, match="out of range"):
        eng.generate([[0, 259]])
    with pytest.raises(ValueError, match="temperature"):
        eng.generate(["a"], temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        eng.generate(["a"], top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        eng.generate(["a"], max_new_tokens=-1)
    assert eng.cache.allocator.num_free == eng.num_pages


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path is tested on the GPU machine")
def test_gpu_engine_matches_cpu(dsk_tiny_ckpt, dsk_flash_mla, eng):
    """The GPU kernel path (flash_mla on CUDA tensors): backend mla-gpu, deterministic, and the same
    tokens as the CPU path up to bf16 rounding (teacher-forced against the fp32 recompute)."""
    g = Engine.from_checkpoint(dsk_tiny_ckpt, device="cuda", dtype=torch.float32)
    assert g.backend == "mla-gpu" and g.device.type == "cuda" and g.cache.k_caches[0].is_cuda
    out = g.generate(PROMPTS, max_new_tokens=N_NEW)
    assert [r["token_ids"] for r in out] == [r["token_ids"] for r in g.generate(PROMPTS, max_new_tokens=N_NEW)]
    cpu = eng.generate(PROMPTS, max_new_tokens=N_NEW)
    same = sum(a["token_ids"] == b["token_ids"] for a, b in zip(out, cpu))
    for p, r in zip(PROMPTS, out):
        assert r["backend"] == "mla-gpu"
        ref = testing.full_logits(eng.model, eng.encode(p), r["token_ids"])[:-1]
        assert not testing.argmax_violations(ref, r["token_ids"], tol=0.1), p
    assert same >= len(PROMPTS) - 1, (same, [r["token_ids"] for r in out], [r["token_ids"] for r in cpu])
    bf = Engine.from_checkpoint(dsk_tiny_ckpt, device="cuda")          # default on CUDA: bf16 weights
    assert bf.dtype == torch.bfloat16
    r = bf.generate(["hello MLA"], max_new_tokens=4)[0]
    assert r["backend"] == "mla-gpu" and len(r["token_ids"]) + (r["finish_reason"] == "stop") >= 1


def test_generate_stream_matches_generate(eng):
    want = eng.generate(["stream it"], max_new_tokens=6)[0]
    events = list(eng.generate_stream("stream it", max_new_tokens=6))
    final = events[-1]
    assert final.pop("done") is True and final == want
    toks = events[:-1]
    assert [e["token_id"] for e in toks] == want["token_ids"]
    assert "".join(e["text"] for e in toks) == want["text"]
    # an abandoned stream releases the lock and the cache pages
    it = eng.generate_stream("abandon", max_new_tokens=6)
    next(it)
    it.close()
    assert eng.cache.allocator.num_free == eng.num_pages
    assert eng.generate(["stream it"], max_new_tokens=6)[0] == want


def test_numpy_token_prompts(eng):
    np = pytest.importorskip("numpy")
    a = eng.generate([np.array([0, 100, 101], dtype=np.int64).tolist()], max_new_tokens=3)[0]
    b = eng.generate([[np.int64(0), np.int64(100), np.int64(101)]], max_new_tokens=3)[0]
    c = eng.generate([np.int64(0), np.int64(100), np.int64(101)], max_new_tokens=3)      # one prompt
    assert a == b == c[0]


def test_cli_write_tiny_and_generate(tmp_path, capsys, dsk_flash_mla):
    from deepseek_mla.__main__ import main
    d = str(tmp_path / "cli")
    assert main(["write-tiny", d, "--seed", "0"]) == 0
    assert capsys.readouterr().out.strip() == d
    assert main(["generate", d, "abc", "hello MLA", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    eng = Engine.from_checkpoint(d, device="cpu")
    assert lines == eng.generate(["abc", "hello MLA"], max_new_tokens=4)


def test_broken_attention_fails_at_load(dsk_tiny_ckpt):
    class Broken:
        @staticmethod
        def get_mla_metadata(*a, **k):
            return None, None

        @staticmethod
        def flash_mla_with_kvcache(*a, **k):
            raise OSError("libmla could not be loaded")

    with pytest.raises(RuntimeError, match="does not run on cpu: OSError: libmla could not be loaded"):
        Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", mla_ops=Broken)


def test_checkpoint_without_tokenizer_takes_token_ids(dsk_tiny_ckpt, tmp_path, eng_ref):
    d = str(tmp_path / "notok")
    shutil.copytree(dsk_tiny_ckpt, d)
    os.remove(os.path.join(d, "tokenizer_mla.json"))
    e = Engine.from_checkpoint(d, device="cpu", kv_dtype=torch.float32, mla_ops=testing)
    assert e.tokenizer is None and e.eos_token_ids == [1]            # from config.json
    with pytest.raises(ValueError, match="no tokenizer"):
        e.generate(["text"])
    r = e.generate([[0, 10, 11]], max_new_tokens=3)[0]
    assert r["text"] == "" and r["token_ids"] == eng_ref.generate([[0, 10, 11]], max_new_tokens=3)[0]["token_ids"]


# ---------------------------------------------------------------- scheduler="batch" (worker thread)
@pytest.fixture()
def eng_batch(dsk_tiny_ckpt):
    e = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", dtype=torch.float32, kv_dtype=torch.float32,
                               mla_ops=testing, scheduler="batch", max_batch_size=8)
    yield e
    e.close()


def test_batch_scheduler_threads_equal_serial(eng_batch, eng_ref):
    groups = [["alpha", "beta gamma"], ["delta"], ["x" * 62, "epsilon"], ["zeta", "eta", "theta"]]
    kw = [dict(max_new_tokens=7), dict(max_new_tokens=4, temperature=0.8, seed=5),
          dict(max_new_tokens=9, stop_on_eos=False), dict(max_new_tokens=5, temperature=1.2, top_p=0.9, seed=9)]
    serial = [eng_ref.generate(g, **k) for g, k in zip(groups, kw)]
    for r in (x for g in serial for x in g):
        r["backend"] = eng_batch.backend
    results = [None] * len(groups)
    errors = []
    start = threading.Barrier(len(groups))

    def work(i):
        try:
            start.wait()
            results[i] = eng_batch.generate(groups[i], **kw[i])
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results == serial
    assert eng_batch.cache.allocator.num_free == eng_batch.num_pages


def test_batch_scheduler_shares_decode_steps(eng_batch):
    """Requests of separate calls queued together are decoded in the same steps."""
    from deepseek_mla.engine import _Job
    prompts = ["one", "two two", "three", "four four four"]
    jobs = [_Job(eng_batch._prepare([p], 6, 0.0, 1.0, None, False, None)) for p in prompts]
    for j in jobs[:-1]:
        eng_batch._jobs.put(j)                     # queued before the worker starts
    eng_batch._submit(jobs[-1])
    for j in jobs:
        assert j.done.wait(timeout=120) and j.error is None
    assert eng_batch.stats["decode_steps"] == 5 and eng_batch.stats["max_batch"] == 4
    alone = [eng_batch.generate([p], max_new_tokens=6, stop_on_eos=False)[0]["token_ids"] for p in prompts]
    assert [j.requests[0].out for j in jobs] == alone


def test_batch_scheduler_stream_error_and_close(dsk_tiny_ckpt):
    class FailOnce:
        BACKEND_PREFIX = "torchref"
        fail = False
        get_mla_metadata = staticmethod(testing.get_mla_metadata)

        @classmethod
        def flash_mla_with_kvcache(cls, *a, **k):
            if cls.fail:
                cls.fail = False
                raise RuntimeError("injected kernel failure")
            return testing.flash_mla_with_kvcache(*a, **k)

    e = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", kv_dtype=torch.float32, mla_ops=FailOnce,
                               scheduler="batch")
    want = e.generate(["stream it"], max_new_tokens=6)[0]
    events = list(e.generate_stream("stream it", max_new_tokens=6))
    assert events[-1].pop("done") and events[-1] == want
    assert [x["token_id"] for x in events[:-1]] == want["token_ids"]
    it = e.generate_stream("cancel me", max_new_tokens=50)
    next(it)
    it.close()                                            # cancels the request
    for _ in range(600):
        if not e._sched.busy:
            break
        time.sleep(0.05)
    assert not e._sched.busy
    FailOnce.fail = True
    with pytest.raises(RuntimeError, match="injected kernel failure"):
        e.generate(["boom", "bang"], max_new_tokens=4)
    assert e.generate(["stream it"], max_new_tokens=6)[0] == want          # recovered
    assert e.cache.allocator.num_free == e.num_pages
    e.close()
    assert not e._worker.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        e.generate(["late"], max_new_tokens=2)
