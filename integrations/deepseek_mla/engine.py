"""Generation engine over the MLA model: paged KV cache, batched greedy / temperature / top-p
sampling, stop on EOS or ``max_new_tokens``, thread-safe.

    eng = Engine.from_checkpoint("ckpt_dir", device="auto")
    eng.generate(["hello", "abc"], max_new_tokens=16)
    # -> [{"text": ..., "token_ids": [...], "finish_reason": "stop"|"length", "backend": "mla-cpu"|"mla-gpu",
    #      "prompt_tokens": n, "completion_tokens": m}, ...]

Scheduling: requests are admitted (prefilled through the naive path, one request at a time)
while the batch has room (``max_batch_size``) and the cache has pages for the request's whole
budget (prompt + max_new_tokens); then all active requests take one absorbed decode step
together (one ``flash_mla_with_kvcache`` call per layer); finished requests free their pages and
waiting ones are admitted. Thread safety, by ``scheduler``: "lock" (default) serialises concurrent
``generate`` calls, each gets exactly the result it would get alone; "batch" runs the scheduler in
a worker thread that merges the requests of concurrent calls into shared decode steps.
"""
from __future__ import annotations

import collections
import itertools
import numbers
import os
import queue
import threading

import torch

from .cache import PagedKVCache
from .checkpoint import load_model
from .config import DeepseekConfig
from .model import DeepseekForCausalLM, default_mla_ops
from .tokenizer import load_tokenizer

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _as_dtype(d):
    if d is None or isinstance(d, torch.dtype):
        return d
    try:
        return _DTYPES[str(d).replace("torch.", "")]
    except KeyError:
        raise ValueError(f"unknown dtype {d!r} (float32, bfloat16, float16)") from None


def probe_mla_ops(ops, device: torch.device) -> str | None:
    """Run one tiny ``flash_mla_with_kvcache`` call on ``device``; None if it works, else why not."""
    try:
        dt = torch.bfloat16
        q = torch.zeros(1, 1, 1, 576, dtype=dt, device=device)
        kc = torch.zeros(1, 64, 1, 576, dtype=dt, device=device)
        bt = torch.zeros(1, 1, dtype=torch.int32, device=device)
        sl = torch.ones(1, dtype=torch.int32, device=device)
        meta, splits = ops.get_mla_metadata()
        out, _ = ops.flash_mla_with_kvcache(q, kc, bt, sl, 512, meta, splits, softmax_scale=1.0, causal=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if tuple(out.shape) != (1, 1, 1, 512):
            return f"unexpected output shape {tuple(out.shape)}"
        return None
    except Exception as e:  # noqa: BLE001 - report any failure as the reason
        return f"{type(e).__name__}: {e}"


class Engine:
    """Batched generation over ``DeepseekForCausalLM`` with a paged MLA cache."""

    def __init__(self, model: DeepseekForCausalLM, tokenizer=None, *, kv_dtype=torch.bfloat16, page_size: int = 64,
                 num_pages: int | None = None, max_batch_size: int = 32, backend: str | None = None,
                 backend_reason: str = "", scheduler: str | None = None):
        self.model = model
        self.config: DeepseekConfig = model.config
        self.tokenizer = tokenizer
        self.device = model.device
        self.dtype = model.dtype
        self.kv_dtype = _as_dtype(kv_dtype) or torch.bfloat16
        self.page_size = page_size
        self.max_batch_size = max_batch_size
        if num_pages is None:
            num_pages = int(os.environ.get("MLA_ENGINE_NUM_PAGES", "0")) or max(64, 4 * max_batch_size)
        self.num_pages = num_pages
        self.cache = PagedKVCache(self.config.num_hidden_layers, num_pages, page_size, self.config.kv_cache_dim,
                                  self.kv_dtype, self.device)
        eos = set(self.config.eos_token_ids)
        if tokenizer is not None and getattr(tokenizer, "eos_id", None) is not None:
            eos.add(int(tokenizer.eos_id))
        self.eos_token_ids = sorted(eos)
        self.backend = backend or self._backend_name()
        self.backend_reason = backend_reason
        if scheduler is None:
            scheduler = os.environ.get("MLA_ENGINE_SCHEDULER", "lock")
        if scheduler not in ("lock", "batch"):
            raise ValueError(f"scheduler must be 'lock' or 'batch', got {scheduler!r}")
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._rid = itertools.count()
        self._sched = _Scheduler(self)
        self._jobs: "queue.Queue" = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.stats = {"requests": 0, "generated_tokens": 0, "decode_steps": 0, "max_batch": 0}

    def _backend_name(self) -> str:
        ops = self.model._mla_ops
        prefix = "mla" if ops is None else getattr(ops, "BACKEND_PREFIX", "mla")
        return f"{prefix}-{'gpu' if self.device.type == 'cuda' else 'cpu'}"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str, device: str = "auto", dtype=None, *, kv_dtype=torch.bfloat16,
                        page_size: int = 64, num_pages: int | None = None, max_batch_size: int = 32,
                        mla_ops=None, scheduler: str | None = None) -> "Engine":
        """Load an HF DeepSeek-V2/V3 checkpoint directory.

        device: "auto" (CUDA when a GPU is visible and a flash_mla call works on it, else CPU),
        "cpu", "cuda" or "cuda:N". dtype: weights/activations dtype (default bfloat16 on CUDA,
        float32 on CPU). kv_dtype: cache dtype (bf16/fp16: what the kernels take).
        mla_ops: module with ``get_mla_metadata``/``flash_mla_with_kvcache`` (default ``flash_mla``).
        scheduler: "lock" (default; concurrent generate calls run one after another, each exactly
        as alone) or "batch" (a worker thread batches the requests of concurrent calls into shared
        decode steps: higher throughput under concurrency); env MLA_ENGINE_SCHEDULER sets the default."""
        ops = mla_ops if mla_ops is not None else default_mla_ops()
        reason = ""
        if device == "auto":
            dev = torch.device("cpu")
            if torch.cuda.is_available():
                cuda = torch.device("cuda", torch.cuda.current_device())
                gpu_why = probe_mla_ops(ops, cuda)
                if gpu_why is None:
                    dev = cuda
                else:
                    reason = f"CUDA visible but the GPU path failed, using CPU: {gpu_why}"
            else:
                reason = "no CUDA device visible"
        else:
            dev = torch.device(device)
            if dev.type == "cuda" and dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
        why = probe_mla_ops(ops, dev)          # fail at load time, not at the first request
        if why is not None:
            raise RuntimeError(f"flash_mla_with_kvcache does not run on {dev}: {why}")
        dtype = _as_dtype(dtype)
        if dtype is None:
            dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        model = load_model(path, device=dev, dtype=dtype, mla_ops=mla_ops)
        tok = load_tokenizer(path, model.config)
        return cls(model, tok, kv_dtype=kv_dtype, page_size=page_size, num_pages=num_pages,
                   max_batch_size=max_batch_size, backend_reason=reason, scheduler=scheduler)

    def info(self) -> dict:
        c = self.config
        return {"backend": self.backend, "backend_reason": self.backend_reason, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "kv_dtype": str(self.kv_dtype).replace("torch.", ""),
                "model_type": c.model_type, "num_hidden_layers": c.num_hidden_layers,
                "num_attention_heads": c.num_attention_heads, "hidden_size": c.hidden_size,
                "kv_lora_rank": c.kv_lora_rank, "qk_rope_head_dim": c.qk_rope_head_dim,
                "vocab_size": c.vocab_size, "softmax_scale": c.softmax_scale, "page_size": self.page_size,
                "num_pages": self.num_pages, "max_batch_size": self.max_batch_size, "scheduler": self.scheduler,
                "tokenizer": getattr(self.tokenizer, "kind", None)}

    # ------------------------------------------------------------------ helpers
    def encode(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError("this checkpoint has no tokenizer: pass prompts as lists of token ids")
            ids = self.tokenizer.encode(prompt)
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            raise ValueError("empty prompt (no tokens)")
        V = self.config.vocab_size
        bad = [t for t in ids if t < 0 or t >= V]
        if bad:
            raise ValueError(f"token id {bad[0]} out of range [0, {V})")
        return ids

    def decode_text(self, ids) -> str:
        return self.tokenizer.decode(ids) if self.tokenizer is not None else ""

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> int:
        if temperature <= 0.0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.double() / temperature, dim=-1)
        if top_p < 1.0:
            sp, si = torch.sort(probs, descending=True)
            cum = torch.cumsum(sp, dim=-1)
            keep = (cum - sp) < top_p            # smallest prefix whose mass reaches top_p (>= 1 token)
            keep[0] = True
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[si[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
            probs = probs / probs.sum()
        return int(torch.multinomial(probs, 1, generator=gen).item())

    # ------------------------------------------------------------------ generation
    def _prepare(self, prompts, max_new_tokens, temperature, top_p, seed, stop_on_eos, stop_token_ids):
        """Validate a call and turn it into requests (raises ValueError for bad requests)."""
        if isinstance(prompts, str) or (isinstance(prompts, (list, tuple)) and prompts
                                        and isinstance(prompts[0], numbers.Integral)):
            prompts = [prompts]
        prompts = list(prompts)
        max_new_tokens = int(max_new_tokens)
        temperature, top_p = float(temperature), float(top_p)
        if max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if not temperature >= 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 < top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        encoded = [self.encode(p) for p in prompts]
        stops = frozenset(set(self.eos_token_ids) | {int(t) for t in (stop_token_ids or [])}) if stop_on_eos \
            else frozenset()
        for ids in encoded:
            need = self.cache.pages_needed(len(ids) + max_new_tokens)
            if need > self.num_pages:
                raise ValueError(f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) needs {need} "
                                 f"KV pages; the cache has {self.num_pages}")
        return [_Request(ids, max_new_tokens, temperature, top_p, stops,
                         torch.Generator().manual_seed(int(seed) + i) if temperature > 0 and seed is not None
                         else None)
                for i, ids in enumerate(encoded)]

    def generate(self, prompts, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, stop_on_eos: bool = True, stop_token_ids=None) -> list[dict]:
        """Generate for each prompt (``str`` or list of token ids; a single str/list-of-int is one
        prompt). Returns one dict per prompt, in order: ``text`` (decoded completion, "" without a
        tokenizer), ``token_ids`` (completion ids, EOS excluded), ``finish_reason`` ("stop": EOS /
        stop token, "length": max_new_tokens), ``backend``, ``prompt_tokens``, ``completion_tokens``.

        temperature 0: greedy. Otherwise softmax(logits / temperature) with nucleus ``top_p``;
        ``seed`` makes sampling reproducible (request i draws from a generator seeded seed + i).
        ``stop_token_ids`` adds stop tokens to the model's EOS ids (used when stop_on_eos).
        Raises ValueError for bad requests (empty prompt, token id out of range, too long for the
        cache, bad parameters). Thread-safe (see ``scheduler``)."""
        reqs = self._prepare(prompts, max_new_tokens, temperature, top_p, seed, stop_on_eos, stop_token_ids)
        if not reqs:
            return []
        if self.scheduler == "batch":
            job = _Job(reqs)
            self._submit(job)
            job.done.wait()
            if job.error is not None:
                raise job.error
        else:
            with self._lock:
                self._sched.run_to_completion(reqs)
        return [self._result(r) for r in reqs]

    def generate_stream(self, prompt, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                        seed: int | None = None, stop_on_eos: bool = True, stop_token_ids=None):
        """Stream one prompt: yields ``{"token_id", "text"}`` per new token (``text``: the decoded
        text added by this token), then a final dict like ``generate``'s with ``"done": True``.
        Scheduler "lock": holds the engine lock until the generator is exhausted or closed;
        "batch": the request joins the shared batch (closing the generator cancels it)."""
        (req,) = self._prepare([prompt], max_new_tokens, temperature, top_p, seed, stop_on_eos, stop_token_ids)
        events: "queue.Queue" = queue.Queue()
        req.on_event = events.put
        out: list[int] = []

        def emit(tok):
            before = self.decode_text(out)
            out.append(tok)
            return {"token_id": tok, "text": self.decode_text(out)[len(before):]}

        if self.scheduler == "batch":
            job = _Job([req])
            self._submit(job)
            try:
                while True:
                    tok, reason = events.get()
                    if tok is not None:
                        yield emit(tok)
                    if reason is not None:
                        break
                job.done.wait()
                if job.error is not None:
                    raise job.error
            finally:
                req.cancelled = True
        else:
            with self._lock:
                self._sched.add([req])
                try:
                    while not req.finished:
                        self._sched.step()
                        while not events.empty():
                            tok, _reason = events.get()
                            if tok is not None:
                                yield emit(tok)
                finally:                       # error, or the consumer closed the generator early
                    if not req.finished:
                        self._sched.abort()
        final = self._result(req)
        final["done"] = True
        yield final

    def _result(self, req) -> dict:
        return {"text": self.decode_text(req.out), "token_ids": list(req.out), "finish_reason": req.reason,
                "backend": self.backend, "prompt_tokens": len(req.ids), "completion_tokens": len(req.out)}

    # ------------------------------------------------------------------ batch scheduler worker
    def _submit(self, job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("engine is closed")
            self._jobs.put(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._worker_loop, name="deepseek-mla-engine", daemon=True)
                self._worker.start()

    def _worker_loop(self) -> None:
        sched = self._sched
        jobs: list[_Job] = []
        closing = False
        while True:
            try:
                block = not sched.busy and not closing
                while True:
                    job = self._jobs.get(block=block)
                    block = False
                    if job is None:
                        closing = True          # finish what was submitted, then stop
                        continue
                    jobs.append(job)
                    sched.add(job.requests)
            except queue.Empty:
                pass
            if closing and not sched.busy:
                for j in jobs:
                    j.done.set()
                return
            try:
                sched.step()
            except BaseException as e:  # noqa: BLE001 - hand the failure to every waiting caller
                sched.abort()
                for j in jobs:
                    j.error = e
                    for r in j.requests:
                        if r.on_event is not None and not r.finished:
                            r.on_event((None, "error"))
                    j.done.set()
                jobs = []
                continue
            still = []
            for j in jobs:
                if all(r.finished for r in j.requests):
                    j.done.set()
                else:
                    still.append(j)
            jobs = still

    def close(self) -> None:
        """Stop the batch worker (if any) and free the cache."""
        with self._lock:
            self._closed = True
            w = self._worker
            if w is not None and w.is_alive():
                self._jobs.put(None)
        if w is not None:
            w.join(timeout=60)
        with self._lock:
            self._sched.abort()


class _Request:
    """One prompt of a generate call and its progress."""

    def __init__(self, ids, max_new_tokens, temperature, top_p, stops, gen):
        self.ids, self.max_new_tokens, self.temperature, self.top_p = ids, max_new_tokens, temperature, top_p
        self.stops, self.gen = stops, gen
        self.out: list[int] = []
        self.reason: str | None = None
        self.rid = None
        self.cancelled = False
        self.on_event = None          # callable((token or None, finish reason or None)) for streaming

    @property
    def finished(self) -> bool:
        return self.reason is not None


class _Job:
    def __init__(self, requests):
        self.requests = requests
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Scheduler:
    """Continuous batching over the engine's model and cache. Not thread-safe: used under the
    engine lock (scheduler "lock") or only by the worker thread (scheduler "batch")."""

    def __init__(self, engine: "Engine"):
        self.e = engine
        self.pending: collections.deque = collections.deque()
        self.active: list[_Request] = []

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.active)

    def add(self, reqs) -> None:
        for r in reqs:
            if r.max_new_tokens == 0:
                self._finish(r, "length")
            else:
                self.pending.append(r)
        self.e.stats["requests"] += len(reqs)

    def run_to_completion(self, reqs) -> None:
        self.add(reqs)
        try:
            while self.busy:
                self.step()
        except BaseException:
            self.abort()
            raise

    def _finish(self, r: _Request, reason: str) -> None:
        r.reason = reason
        if r.rid is not None and self.e.cache.has_request(r.rid):
            self.e.cache.free(r.rid)
        if r.on_event is not None:
            r.on_event((None, reason))

    def _accept(self, r: _Request, tok: int) -> None:
        if tok in r.stops:
            self._finish(r, "stop")
            return
        r.out.append(tok)
        self.e.stats["generated_tokens"] += 1
        if r.on_event is not None:
            r.on_event((tok, None))
        if len(r.out) >= r.max_new_tokens:
            self._finish(r, "length")

    def drop_cancelled(self) -> None:
        for r in [r for r in self.pending if r.cancelled]:
            self.pending.remove(r)
            self._finish(r, "cancelled")
        for r in [r for r in self.active if r.cancelled]:
            self.active.remove(r)
            self._finish(r, "cancelled")

    def abort(self) -> None:
        """Drop every request (after an error), freeing its pages."""
        for r in list(self.pending) + self.active:
            if not r.finished:
                self._finish(r, "error")
        self.pending.clear()
        self.active = []

    def step(self) -> None:
        """Admit (and prefill) waiting requests while there is room, then one decode step for all
        active requests."""
        e, cache = self.e, self.e.cache
        self.drop_cancelled()
        while self.pending and len(self.active) < e.max_batch_size:
            r = self.pending[0]
            if cache.pages_needed(len(r.ids) + r.max_new_tokens) > cache.allocator.num_free:
                if not self.active:
                    raise RuntimeError("KV cache exhausted with no active request")
                break
            self.pending.popleft()
            r.rid = ("gen", next(e._rid))
            cache.add_request(r.rid)
            cache.reserve(r.rid, len(r.ids) + r.max_new_tokens)
            self.active.append(r)
            logits = e.model.prefill(torch.tensor(r.ids, dtype=torch.long), cache, r.rid)
            self._accept(r, e._sample(logits.cpu(), r.temperature, r.top_p, r.gen))
            if r.finished:
                self.active.remove(r)
        if not self.active:
            return
        batch = list(self.active)
        toks = torch.tensor([r.out[-1] for r in batch], dtype=torch.long)
        logits = e.model.decode(toks, cache, [r.rid for r in batch]).cpu()
        e.stats["decode_steps"] += 1
        e.stats["max_batch"] = max(e.stats["max_batch"], len(batch))
        for row, r in enumerate(batch):
            self._accept(r, e._sample(logits[row], r.temperature, r.top_p, r.gen))
        self.active = [r for r in self.active if not r.finished]
