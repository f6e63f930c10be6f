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
waiting ones are admitted (continuous batching within a call). Concurrent ``generate`` calls from
several threads are serialised by a lock, so each gets exactly the result it would get alone.
"""
from __future__ import annotations

import itertools
import numbers
import os
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
                 backend_reason: str = ""):
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
        self._lock = threading.Lock()
        self._rid = itertools.count()
        self.stats = {"requests": 0, "generated_tokens": 0, "decode_steps": 0}

    def _backend_name(self) -> str:
        ops = self.model._mla_ops
        prefix = "mla" if ops is None else getattr(ops, "BACKEND_PREFIX", "mla")
        return f"{prefix}-{'gpu' if self.device.type == 'cuda' else 'cpu'}"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str, device: str = "auto", dtype=None, *, kv_dtype=torch.bfloat16,
                        page_size: int = 64, num_pages: int | None = None, max_batch_size: int = 32,
                        mla_ops=None) -> "Engine":
        """Load an HF DeepSeek-V2/V3 checkpoint directory.

        device: "auto" (CUDA when a GPU is visible and a flash_mla call works on it, else CPU),
        "cpu", "cuda" or "cuda:N". dtype: weights/activations dtype (default bfloat16 on CUDA,
        float32 on CPU). kv_dtype: cache dtype (bf16/fp16: what the kernels take).
        mla_ops: module with ``get_mla_metadata``/``flash_mla_with_kvcache`` (default ``flash_mla``)."""
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
                   max_batch_size=max_batch_size, backend_reason=reason)

    def info(self) -> dict:
        c = self.config
        return {"backend": self.backend, "backend_reason": self.backend_reason, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "kv_dtype": str(self.kv_dtype).replace("torch.", ""),
                "model_type": c.model_type, "num_hidden_layers": c.num_hidden_layers,
                "num_attention_heads": c.num_attention_heads, "hidden_size": c.hidden_size,
                "kv_lora_rank": c.kv_lora_rank, "qk_rope_head_dim": c.qk_rope_head_dim,
                "vocab_size": c.vocab_size, "softmax_scale": c.softmax_scale, "page_size": self.page_size,
                "num_pages": self.num_pages, "max_batch_size": self.max_batch_size,
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
    def _prepare(self, prompts, max_new_tokens, temperature, top_p, stop_on_eos, stop_token_ids):
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
        stops = set(self.eos_token_ids) | {int(t) for t in (stop_token_ids or [])} if stop_on_eos else set()
        for ids in encoded:
            need = self.cache.pages_needed(len(ids) + max_new_tokens)
            if need > self.num_pages:
                raise ValueError(f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) needs {need} "
                                 f"KV pages; the cache has {self.num_pages}")
        return encoded, max_new_tokens, temperature, top_p, stops

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
        cache, bad parameters)."""
        encoded, max_new_tokens, temperature, top_p, stops = self._prepare(
            prompts, max_new_tokens, temperature, top_p, stop_on_eos, stop_token_ids)
        outs: list[list[int]] = [[] for _ in encoded]
        reasons: list[str | None] = [None] * len(encoded)
        with self._lock:
            for i, tok, reason in self._run(encoded, max_new_tokens, temperature, top_p, seed, stops):
                if tok is not None:
                    outs[i].append(tok)
                if reason is not None:
                    reasons[i] = reason
        return [self._result(encoded[i], outs[i], reasons[i]) for i in range(len(encoded))]

    def generate_stream(self, prompt, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                        seed: int | None = None, stop_on_eos: bool = True, stop_token_ids=None):
        """Stream one prompt: yields ``{"token_id", "text"}`` per new token (``text``: the decoded
        text added by this token), then a final dict like ``generate``'s with ``"done": True``.
        Holds the engine lock until the generator is exhausted or closed."""
        encoded, max_new_tokens, temperature, top_p, stops = self._prepare(
            [prompt], max_new_tokens, temperature, top_p, stop_on_eos, stop_token_ids)
        out: list[int] = []
        reason = None
        with self._lock:
            for _i, tok, r in self._run(encoded, max_new_tokens, temperature, top_p, seed, stops):
                if tok is not None:
                    before = self.decode_text(out)
                    out.append(tok)
                    yield {"token_id": tok, "text": self.decode_text(out)[len(before):]}
                if r is not None:
                    reason = r
        final = self._result(encoded[0], out, reason)
        final["done"] = True
        yield final

    def _result(self, prompt_ids, out, reason) -> dict:
        return {"text": self.decode_text(out), "token_ids": list(out), "finish_reason": reason,
                "backend": self.backend, "prompt_tokens": len(prompt_ids), "completion_tokens": len(out)}

    def _run(self, encoded, max_new_tokens, temperature, top_p, seed, stops):
        """The scheduler (caller holds the lock). Yields ``(i, token or None, finish_reason or None)``
        events: a token appended to request i, and/or request i finished."""
        n = len(encoded)
        gens = [torch.Generator().manual_seed(int(seed) + i) if temperature > 0 and seed is not None else None
                for i in range(n)]
        count = [0] * n
        if max_new_tokens == 0:
            for i in range(n):
                yield i, None, "length"
            return
        pending = list(range(n))
        active: dict[int, object] = {}            # request index -> cache rid
        last_tok: dict[int, int] = {}
        cache = self.cache

        def accept(i, tok):
            """-> (token appended or None, finish reason or None); frees finished requests."""
            if tok in stops:
                cache.free(active.pop(i))
                return None, "stop"
            count[i] += 1
            last_tok[i] = tok
            if count[i] >= max_new_tokens:
                cache.free(active.pop(i))
                return tok, "length"
            return tok, None

        try:
            while pending or active:
                while pending and len(active) < self.max_batch_size:          # admit + prefill
                    i = pending[0]
                    if cache.pages_needed(len(encoded[i]) + max_new_tokens) > cache.allocator.num_free:
                        if not active:
                            raise RuntimeError("KV cache exhausted with no active request")
                        break
                    pending.pop(0)
                    rid = ("gen", next(self._rid))
                    cache.add_request(rid)
                    active[i] = rid
                    cache.reserve(rid, len(encoded[i]) + max_new_tokens)
                    logits = self.model.prefill(torch.tensor(encoded[i], dtype=torch.long), cache, rid)
                    tok, reason = accept(i, self._sample(logits.cpu(), temperature, top_p, gens[i]))
                    self.stats["generated_tokens"] += tok is not None
                    yield i, tok, reason
                if not active:
                    continue
                order = sorted(active)                                         # one decode step
                toks = torch.tensor([last_tok[i] for i in order], dtype=torch.long)
                logits = self.model.decode(toks, cache, [active[i] for i in order]).cpu()
                self.stats["decode_steps"] += 1
                for row, i in enumerate(order):
                    tok, reason = accept(i, self._sample(logits[row], temperature, top_p, gens[i]))
                    self.stats["generated_tokens"] += tok is not None
                    yield i, tok, reason
        finally:
            for rid in active.values():
                if cache.has_request(rid):
                    cache.free(rid)
            self.stats["requests"] += n

    def close(self) -> None:
        with self._lock:
            for rid in self.cache.requests:
                self.cache.free(rid)
