"""Paged KV cache for MLA, in the layout ``flash_mla_with_kvcache`` takes.

One cache tensor per layer, ``[num_pages, page_size, 1, kv_lora_rank + qk_rope_head_dim]`` (576 for
DeepSeek), each row ``[c_kv | k_pe]``. All layers share one page allocator and one block table per
request: token t of a request lives at ``k_cache[block_table[t // page_size], t % page_size]``.

Not thread-safe by itself; the engine serialises access.
"""
from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field

import torch


class OutOfPages(RuntimeError):
    """The cache has no free page left for a request."""


class PageAllocator:
    """Free-list allocator of page ids ``0..num_pages-1``.

    ``shuffle_seed`` hands pages out in a shuffled order (tests use it so that block tables are not
    the identity)."""

    def __init__(self, num_pages: int, shuffle_seed: int | None = None):
        if num_pages <= 0:
            raise ValueError(f"num_pages must be positive, got {num_pages}")
        self.num_pages = num_pages
        ids = list(range(num_pages))
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(ids)
        self._free = collections.deque(ids)
        self._used: set[int] = set()

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return len(self._used)

    def alloc(self, n: int = 1) -> list[int]:
        if n < 0:
            raise ValueError("n must be >= 0")
        if n > len(self._free):
            raise OutOfPages(f"need {n} KV pages, only {len(self._free)} of {self.num_pages} free")
        out = [self._free.popleft() for _ in range(n)]
        self._used.update(out)
        return out

    def free(self, pages) -> None:
        for p in pages:
            p = int(p)
            if p not in self._used:
                raise ValueError(f"page {p} is not allocated (double free?)")
            self._used.remove(p)
            self._free.append(p)


@dataclass
class _Seq:
    pages: list[int] = field(default_factory=list)
    seqlen: int = 0


class PagedKVCache:
    """Per-layer paged MLA caches + page allocator + per-request block tables and lengths."""

    def __init__(self, num_layers: int, num_pages: int, page_size: int = 64, head_dim: int = 576,
                 dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
                 shuffle_seed: int | None = None, fill_value: float | None = None):
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        self.num_layers = num_layers
        self.num_pages = num_pages
        self.page_size = page_size
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = torch.device(device)
        self.allocator = PageAllocator(num_pages, shuffle_seed)
        mk = torch.empty if fill_value is None else (lambda *s, **k: torch.full(s, fill_value, **k))
        self.k_caches = [mk(num_pages, page_size, 1, head_dim, dtype=dtype, device=self.device)
                         for _ in range(num_layers)]
        if fill_value is None:
            for t in self.k_caches:
                t.zero_()
        self._seqs: dict[object, _Seq] = {}

    # ------------------------------------------------------------------ requests
    def add_request(self, rid) -> None:
        if rid in self._seqs:
            raise ValueError(f"request {rid!r} already in the cache")
        self._seqs[rid] = _Seq()

    def has_request(self, rid) -> bool:
        return rid in self._seqs

    @property
    def requests(self) -> list:
        return list(self._seqs)

    def seqlen(self, rid) -> int:
        return self._seqs[rid].seqlen

    def pages(self, rid) -> list[int]:
        return list(self._seqs[rid].pages)

    def pages_needed(self, n_tokens: int) -> int:
        return (n_tokens + self.page_size - 1) // self.page_size

    def reserve(self, rid, n_tokens: int) -> None:
        """Make sure request ``rid`` has pages for ``n_tokens`` tokens in total."""
        s = self._seqs[rid]
        need = self.pages_needed(n_tokens) - len(s.pages)
        if need > 0:
            s.pages.extend(self.allocator.alloc(need))

    def append(self, rid, n: int = 1) -> torch.Tensor:
        """Reserve ``n`` more token rows for ``rid``; returns their flat slot ids (int64, on the
        cache device): slot = page * page_size + row. The request's seqlen grows by ``n``."""
        s = self._seqs[rid]
        start = s.seqlen
        self.reserve(rid, start + n)
        pos = torch.arange(start, start + n)
        pages = torch.tensor(s.pages, dtype=torch.int64)[pos // self.page_size]
        s.seqlen = start + n
        return (pages * self.page_size + pos % self.page_size).to(self.device)

    def append_batch(self, rids, n: int = 1) -> torch.Tensor:
        """``append`` for several requests: slot ids ``[len(rids) * n]`` in request-major order.
        Either all requests get their rows or none does (pages are checked first)."""
        need = sum(max(self.pages_needed(self._seqs[r].seqlen + n) - len(self._seqs[r].pages), 0) for r in rids)
        if need > self.allocator.num_free:
            raise OutOfPages(f"need {need} KV pages, only {self.allocator.num_free} free")
        return torch.cat([self.append(r, n) for r in rids]) if rids else torch.empty(0, dtype=torch.int64)

    def free(self, rid) -> None:
        """Release a finished request and all its pages."""
        s = self._seqs.pop(rid)
        self.allocator.free(s.pages)

    # ------------------------------------------------------------------ kernel inputs
    def block_table(self, rids, max_pages: int | None = None, pad_value: int = 0) -> torch.Tensor:
        """int32 ``[len(rids), max_pages]`` on the cache device; unused entries hold ``pad_value``."""
        rows = [self._seqs[r].pages for r in rids]
        width = max([len(p) for p in rows] + [1]) if max_pages is None else max_pages
        bt = torch.full((len(rids), width), pad_value, dtype=torch.int32)
        for i, p in enumerate(rows):
            if len(p) > width:
                raise ValueError(f"request {rids[i]!r} has {len(p)} pages > max_pages {width}")
            if p:
                bt[i, :len(p)] = torch.tensor(p, dtype=torch.int32)
        return bt.to(self.device)

    def cache_seqlens(self, rids) -> torch.Tensor:
        """int32 ``[len(rids)]`` on the cache device (tokens written, including the newest)."""
        return torch.tensor([self._seqs[r].seqlen for r in rids], dtype=torch.int32).to(self.device)

    # ------------------------------------------------------------------ data
    def write(self, layer: int, slots: torch.Tensor, c_kv: torch.Tensor, k_pe: torch.Tensor) -> None:
        """Store rows ``[c_kv | k_pe]`` (``[n, kv_lora_rank]``, ``[n, rope]``) at flat ``slots``."""
        flat = self.k_caches[layer].view(-1, self.head_dim)
        row = torch.cat([c_kv, k_pe], dim=-1).to(self.dtype)
        flat[slots.to(flat.device)] = row

    def gather(self, layer: int, rid) -> torch.Tensor:
        """The request's cache rows ``[seqlen, head_dim]`` in token order (for tests/debugging)."""
        s = self._seqs[rid]
        pos = torch.arange(s.seqlen)
        pages = torch.tensor(s.pages, dtype=torch.int64)[pos // self.page_size]
        return self.k_caches[layer].view(-1, self.head_dim)[(pages * self.page_size + pos % self.page_size).to(self.device)]

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k_caches)
