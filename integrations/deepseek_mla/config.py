"""DeepSeek-V2 / V3 model configuration, read from a Hugging Face ``config.json``.

Field names are the ones DeepSeek's own ``config.json`` files use (``rope_theta`` + ``rope_scaling``);
the transformers-v5 spelling (``rope_parameters``) is accepted too.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

# The dims the MLA kernels are built for (FlashMLA: d_qk 576 = 512 latent + 64 rope, d_v 512).
KERNEL_KV_LORA_RANK = 512
KERNEL_ROPE_DIM = 64


def yarn_get_mscale(scale: float = 1.0, mscale: float = 1.0) -> float:
    """DeepSeek's yarn magnitude correction (``modeling_deepseek.yarn_get_mscale``)."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


@dataclasses.dataclass
class DeepseekConfig:
    vocab_size: int = 129280
    hidden_size: int = 7168
    intermediate_size: int = 18432
    moe_intermediate_size: int = 2048
    num_hidden_layers: int = 61
    num_attention_heads: int = 128
    num_key_value_heads: int | None = 128
    n_shared_experts: int | None = 1
    n_routed_experts: int | None = 256
    routed_scaling_factor: float = 2.5
    kv_lora_rank: int = 512
    q_lora_rank: int | None = 1536
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    qk_nope_head_dim: int = 128
    topk_method: str = "noaux_tc"           # V3: noaux_tc; V2: greedy | group_limited_greedy
    n_group: int | None = 8
    topk_group: int | None = 4
    num_experts_per_tok: int | None = 8
    moe_layer_freq: int = 1
    first_k_dense_replace: int = 3
    norm_topk_prob: bool = True
    scoring_func: str = "sigmoid"           # V3: sigmoid; V2: softmax
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None        # {"type"/"rope_type": "yarn", factor, mscale, mscale_all_dim, ...}
    rope_interleave: bool = True            # DeepSeek checkpoints: rope dims stored as interleaved pairs
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 0
    eos_token_id: int | list | None = 1
    pad_token_id: int | None = None
    model_type: str = "deepseek_v3"
    num_nextn_predict_layers: int = 0
    torch_dtype: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)   # every other config.json key, kept verbatim

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeepseekConfig":
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw: dict[str, Any] = {}
        # transformers v5 spelling: rope_parameters = {rope_type, rope_theta, factor, ...}
        rp = d.pop("rope_parameters", None)
        if rp:
            rp = dict(rp)
            if "rope_theta" in rp and "rope_theta" not in d:
                d["rope_theta"] = rp["rope_theta"]
            rtype = rp.get("rope_type", rp.get("type", "default"))
            if rtype not in (None, "default") and not d.get("rope_scaling"):
                d["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
        if d.get("dtype") and not d.get("torch_dtype"):
            d["torch_dtype"] = d["dtype"]
        for k in list(d):
            if k in names:
                kw[k] = d.pop(k)
        cfg = cls(**kw)
        cfg.extra = d
        if cfg.num_key_value_heads is None:
            cfg.num_key_value_heads = cfg.num_attention_heads
        if cfg.model_type == "deepseek_v2" and "scoring_func" not in kw:
            cfg.scoring_func = "softmax"
        if cfg.model_type == "deepseek_v2" and "topk_method" not in kw:
            cfg.topk_method = "greedy"
        if cfg.model_type == "deepseek_v2" and "norm_topk_prob" not in kw:
            cfg.norm_topk_prob = False
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, path: str) -> "DeepseekConfig":
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if d["torch_dtype"] is None:
            d.pop("torch_dtype")
        out = dict(self.extra)
        out.update(d)
        return out

    def to_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    def validate(self) -> None:
        if self.num_attention_heads <= 0 or self.hidden_size <= 0:
            raise ValueError("hidden_size and num_attention_heads must be positive")
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"qk_rope_head_dim ({self.qk_rope_head_dim}) must be even")
        if self.scoring_func not in ("softmax", "sigmoid"):
            raise ValueError(f"unsupported scoring_func {self.scoring_func!r} (softmax or sigmoid)")
        if self.topk_method not in ("greedy", "group_limited_greedy", "noaux_tc"):
            raise ValueError(f"unsupported topk_method {self.topk_method!r}")
        if self.n_routed_experts and self.topk_method in ("group_limited_greedy", "noaux_tc"):
            if not self.n_group or self.n_routed_experts % self.n_group:
                raise ValueError(f"n_routed_experts ({self.n_routed_experts}) is not divisible by n_group ({self.n_group})")
        rs = self.rope_scaling
        if rs:
            t = rs.get("rope_type", rs.get("type"))
            if t not in (None, "default", "yarn"):
                raise ValueError(f"unsupported rope_scaling type {t!r} (only yarn)")

    # ------------------------------------------------------------------ derived values
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def kv_cache_dim(self) -> int:
        """Width of one cache row: [c_kv (kv_lora_rank) | k_pe (qk_rope_head_dim)] = 576 for DeepSeek."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def rope_type(self) -> str:
        rs = self.rope_scaling or {}
        return rs.get("rope_type", rs.get("type")) or "default"

    @property
    def softmax_scale(self) -> float:
        """qk_head_dim**-0.5, times yarn mscale(factor, mscale_all_dim)**2 (DeepSeek / transformers)."""
        scale = self.qk_head_dim ** -0.5
        rs = self.rope_scaling or {}
        if self.rope_type != "default":
            mscale_all_dim = rs.get("mscale_all_dim", 0)
            if mscale_all_dim:
                m = yarn_get_mscale(rs["factor"], mscale_all_dim)
                scale = scale * m * m
        return scale

    @property
    def eos_token_ids(self) -> list[int]:
        e = self.eos_token_id
        if e is None:
            return []
        return list(e) if isinstance(e, (list, tuple)) else [int(e)]

    def is_moe_layer(self, layer_idx: int) -> bool:
        return bool(self.n_routed_experts) and layer_idx >= self.first_k_dense_replace and \
            layer_idx % max(self.moe_layer_freq, 1) == 0

    @property
    def kernel_compatible(self) -> bool:
        """True when the attention shape is the one the MLA decode kernels take (576 / 512)."""
        return self.kv_lora_rank == KERNEL_KV_LORA_RANK and self.qk_rope_head_dim == KERNEL_ROPE_DIM
