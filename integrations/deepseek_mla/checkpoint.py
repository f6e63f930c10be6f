"""Hugging Face DeepSeek-V2/V3 checkpoint directories: load, and write tiny random ones.

A directory holds ``config.json``, ``*.safetensors`` (optionally sharded with
``model.safetensors.index.json``) with HF tensor names, and a tokenizer
(``tokenizer_mla.json`` for our byte tokenizer, or ``tokenizer.json``).

safetensors files are read/written by a small built-in codec (the format is an 8-byte header
length, a JSON header, raw little-endian bytes); the ``safetensors`` package is used for reading
when it is installed (memory-mapped, faster), but it is not required.
"""
from __future__ import annotations

import json
import os
import re
import struct

import torch

from .config import DeepseekConfig
from .model import DeepseekForCausalLM, MoEGate, RotaryEmbedding
from .tokenizer import ByteTokenizer

INDEX_FILE = "model.safetensors.index.json"

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
if hasattr(torch, "float8_e4m3fn"):
    _ST_DTYPES["F8_E4M3"] = torch.float8_e4m3fn
if hasattr(torch, "float8_e5m2"):
    _ST_DTYPES["F8_E5M2"] = torch.float8_e5m2
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


# ------------------------------------------------------------------------------ safetensors codec
def save_safetensors(tensors: dict[str, torch.Tensor], path: str, metadata: dict | None = None) -> None:
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _ST_NAMES:
            raise ValueError(f"{name}: dtype {t.dtype} not storable in safetensors")
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> dict[str, torch.Tensor]:
    """Read a .safetensors file (the ``safetensors`` package when installed, else built-in)."""
    try:
        from safetensors.torch import load_file  # optional, memory-mapped
    except ImportError:
        return load_safetensors_builtin(path)
    return load_file(path)


def load_safetensors_builtin(path: str) -> dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file size")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        s, e = info["data_offsets"]
        numel = 1
        for dim in info["shape"]:
            numel *= int(dim)
        if not 0 <= s <= e <= len(data) - base or e - s != numel * torch.empty(0, dtype=dt).element_size():
            raise ValueError(f"{path}: tensor {name} has bad data_offsets {info['data_offsets']}")
        buf = bytearray(data[base + s:base + e])
        t = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(dt).reshape(info["shape"])
    return out


def read_state_dict(directory: str) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory (sharded or not), HF names."""
    idx = os.path.join(directory, INDEX_FILE)
    if os.path.exists(idx):
        with open(idx, "r", encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {directory}")
    sd: dict[str, torch.Tensor] = {}
    for fn in files:
        sd.update(load_safetensors(os.path.join(directory, fn)))
    return sd


# ------------------------------------------------------------------------------ loading
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.")


def load_model(directory: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               mla_ops=None) -> DeepseekForCausalLM:
    """Build a ``DeepseekForCausalLM`` from an HF DeepSeek-V2/V3 checkpoint directory.

    ``dtype`` defaults to the checkpoint's ``torch_dtype`` (float32 when absent). The MoE router
    weight and correction bias stay float32, as in transformers. MTP layers
    (``model.layers.{num_hidden_layers}+``) are ignored."""
    cfg = DeepseekConfig.from_json(directory)
    sd = read_state_dict(directory)
    if any(k.endswith("weight_scale_inv") for k in sd):
        raise ValueError(f"{directory}: FP8 block-quantised weights (weight_scale_inv) are not supported; "
                         "convert the checkpoint to bf16 first")
    keep = {}
    for k, v in sd.items():
        m = _LAYER_RE.match(k)
        if m and int(m.group(1)) >= cfg.num_hidden_layers:
            continue                                   # MTP / next-n layers
        if k.endswith("rotary_emb.inv_freq"):
            continue
        keep[k] = v
    if dtype is None:
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(str(cfg.torch_dtype), torch.float32)
    device = torch.device(device)
    with torch.device("meta"):
        model = DeepseekForCausalLM(cfg, mla_ops=mla_ops)
    model = model.to_empty(device=device).to(dtype)
    for mod in model.modules():
        if isinstance(mod, MoEGate):
            mod.float()
    model.rotary = RotaryEmbedding(cfg).to(device)
    if cfg.tie_word_embeddings and "lm_head.weight" not in keep:
        keep["lm_head.weight"] = keep["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(keep, strict=False)
    if missing or unexpected:
        raise ValueError(f"{directory}: checkpoint does not match the config: missing {sorted(missing)[:8]}"
                         f"{'...' if len(missing) > 8 else ''}, unexpected {sorted(unexpected)[:8]}"
                         f"{'...' if len(unexpected) > 8 else ''}")
    model.requires_grad_(False)
    model.eval()
    return model


# ------------------------------------------------------------------------------ tiny checkpoints
def tiny_config(variant: str = "v3", **overrides) -> DeepseekConfig:
    """A tiny DeepSeek config with the real kernel dims (kv_lora_rank 512, qk_rope_head_dim 64).
    ``variant``: "v3" (q LoRA, sigmoid/noaux_tc router) or "v2" (plain q_proj, softmax greedy
    router, V2-Lite-like)."""
    tok = ByteTokenizer()
    d = dict(
        vocab_size=tok.vocab_size, hidden_size=128, intermediate_size=256, moe_intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=8, n_shared_experts=1,
        n_routed_experts=8, routed_scaling_factor=2.5, kv_lora_rank=512, q_lora_rank=64,
        qk_rope_head_dim=64, v_head_dim=32, qk_nope_head_dim=32, topk_method="noaux_tc", n_group=2,
        topk_group=1, num_experts_per_tok=2, moe_layer_freq=1, first_k_dense_replace=1,
        norm_topk_prob=True, scoring_func="sigmoid", hidden_act="silu", max_position_embeddings=2048,
        rms_norm_eps=1e-6, rope_theta=10000.0,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
                      "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1},
        attention_bias=False, tie_word_embeddings=False, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id, model_type="deepseek_v3", num_nextn_predict_layers=0, torch_dtype="float32",
    )
    d["extra"] = {"architectures": ["DeepseekV3ForCausalLM"], "initializer_range": 0.02, "use_cache": True,
                  "attention_dropout": 0.0}
    if variant == "v2":
        d.update(q_lora_rank=None, topk_method="greedy", n_group=1, topk_group=1, scoring_func="softmax",
                 norm_topk_prob=False, routed_scaling_factor=1.0, model_type="deepseek_v2",
                 rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512,
                               "mscale": 0.707, "mscale_all_dim": 0.707, "beta_fast": 32, "beta_slow": 1})
        d["extra"]["architectures"] = ["DeepseekV2ForCausalLM"]
    elif variant != "v3":
        raise ValueError(f"variant must be 'v3' or 'v2', got {variant!r}")
    extra = d.pop("extra")
    extra.update(overrides.pop("extra", {}))
    d.update(overrides)
    cfg = DeepseekConfig(**d)
    cfg.extra = extra
    cfg.validate()
    return cfg


# Output projections (write into the residual stream) and their init gains, relative to 1/sqrt(fan_in).
_OUT_GAIN = {"o_proj.weight": 0.5, "down_proj.weight": 0.2}
_SUCCESSOR_LOGIT = 8.0


def random_state_dict(cfg: DeepseekConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights, HF names, float32, initialised to be well-conditioned (as trained
    DeepSeek weights are) so that bf16 rounding of the KV cache moves the logits by far less than
    the top-1/top-2 gap, and two correct bf16 kernels pick the same greedy tokens:

    * RMSNorm weights (input/post-attention/final norms, ``q_a_layernorm``, ``kv_a_layernorm``) are
      exactly 1, biases 0 (as transformers initialises them); embeddings std 1 (rms-1 residual);
    * every Linear ``[out, in]`` is N(0, gain^2 / in): gain 1 for the projections that read the
      residual (q/kv LoRA, kv_b, gate/up, the router), 0.5 for ``o_proj`` and 0.2 for ``down_proj``
      (dense MLP, routed and shared experts): the blocks refine the residual instead of replacing
      it, so an MoE routing flip on a near-tie (a discontinuity) changes the logits only a little;
    * ``e_score_correction_bias`` N(0, 0.1^2) (nonzero, to exercise the noaux_tc router choice);
    * ``lm_head`` = N(0, 1/hidden) plus a seeded "successor" bigram component: each token's
      normalised embedding is added (total logit weight 8) to the row of one successor byte token
      (a permutation of the byte tokens; never bos/eos/pad). Like a trained LM, the next-token
      distribution has a clear winner (the top-1/top-2 margin is typically several logits) that
      attention and the MLPs still shift, instead of the near-ties of 259 i.i.d. Gaussian logits.

    Measured on the CPU (seed 0, tools/serve_check.py and tests/integrations/test_engine.py
    prompts, 16 greedy tokens): min top-1/top-2 margin 0.58 along the trajectories, max
    |logit change| between a bf16 and a float32 KV cache 0.007."""
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DeepseekForCausalLM(cfg).state_dict().items()}
    sd = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("norm.weight"):
            t = torch.ones(shape)
        elif name.endswith("e_score_correction_bias"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif name == "model.embed_tokens.weight":
            t = torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            t = torch.zeros(shape)
        else:                                               # Linear [out, in] (lm_head included)
            gain = next((v for k, v in _OUT_GAIN.items() if name.endswith(k)), 1.0)
            t = torch.randn(shape, generator=g) * (gain / shape[-1] ** 0.5)
        sd[name] = t.to(torch.float32)
    if "lm_head.weight" in sd:
        V, H = sd["lm_head.weight"].shape
        first = 3 if V > 3 else 0                            # byte tokens follow bos/eos/pad
        nxt = torch.cat([first + torch.randint(0, V - first, (first,), generator=g),
                         first + torch.randperm(V - first, generator=g)])
        e = sd["model.embed_tokens.weight"][:V]
        e_hat = e / e.pow(2).mean(-1, keepdim=True).sqrt()   # what the final RMSNorm sees (rms 1)
        sd["lm_head.weight"].index_add_(0, nxt[:e.shape[0]], e_hat * (_SUCCESSOR_LOGIT / H))
    return sd


def write_checkpoint(directory: str, cfg: DeepseekConfig, state_dict: dict[str, torch.Tensor],
                     dtype: torch.dtype = torch.float32, shards: int = 1, tokenizer=None) -> str:
    """Write ``config.json``, safetensors (``shards`` > 1: HF sharded names + index) and the tokenizer."""
    os.makedirs(directory, exist_ok=True)
    cfg = DeepseekConfig.from_dict(cfg.to_dict())
    cfg.torch_dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
    cfg.to_json(os.path.join(directory, "config.json"))
    sd = {k: (v.to(dtype) if v.is_floating_point() and not k.endswith("e_score_correction_bias") else v)
          for k, v in state_dict.items()}
    names = sorted(sd)
    if shards <= 1:
        save_safetensors(sd, os.path.join(directory, "model.safetensors"), {"format": "pt"})
    else:
        weight_map, total = {}, 0
        for i in range(shards):
            part = names[i::shards]
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_safetensors({k: sd[k] for k in part}, os.path.join(directory, fn), {"format": "pt"})
            for k in part:
                weight_map[k] = fn
                total += sd[k].numel() * sd[k].element_size()
        with open(os.path.join(directory, INDEX_FILE), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    (tokenizer or ByteTokenizer(cfg.bos_token_id, cfg.eos_token_ids[0], cfg.pad_token_id)).save(directory)
    return directory


def write_tiny_checkpoint(directory: str, seed: int = 0, variant: str = "v3", dtype: torch.dtype = torch.float32,
                          shards: int = 1, **config_overrides) -> str:
    """Write a tiny random DeepSeek checkpoint in HF format: real kernel dims (kv_lora_rank 512,
    qk_rope_head_dim 64), 2 layers (layer 0 dense MLP, layer 1 MoE with 8 routed experts + 1 shared),
    hidden 128, 8 heads, byte-level tokenizer (vocab 259: bos 0, eos 1, pad 2, bytes 3..258), yarn
    rope scaling. Returns ``directory``."""
    cfg = tiny_config(variant, **config_overrides)
    return write_checkpoint(directory, cfg, random_state_dict(cfg, seed), dtype=dtype, shards=shards)
