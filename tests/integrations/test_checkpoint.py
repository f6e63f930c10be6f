"""deepseek_mla checkpoint IO: tiny HF-format checkpoints written and loaded, safetensors codec,
config parsing (softmax scale with yarn mscale), tokenizer."""
import json
import math
import os

import pytest
import torch

from deepseek_mla import (ByteTokenizer, DeepseekConfig, load_model, load_tokenizer, read_state_dict,
                          write_tiny_checkpoint)
from deepseek_mla.checkpoint import (load_safetensors_builtin, random_state_dict, save_safetensors, tiny_config,
                                     write_checkpoint)

pytestmark = pytest.mark.usefixtures("dsk_one_thread")

HF_NAMES_V3 = [
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight",
    "model.layers.0.self_attn.q_b_proj.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
    "model.layers.0.self_attn.kv_a_layernorm.weight", "model.layers.0.self_attn.kv_b_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
    "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
    "model.layers.1.mlp.experts.0.gate_proj.weight", "model.layers.1.mlp.experts.7.down_proj.weight",
    "model.layers.1.mlp.shared_experts.up_proj.weight",
]


def test_tiny_checkpoint_files_names_and_dims(dsk_tiny_ckpt):
    files = sorted(os.listdir(dsk_tiny_ckpt))
    assert files == ["config.json", "model.safetensors", "tokenizer_mla.json"]
    with open(os.path.join(dsk_tiny_ckpt, "config.json")) as f:
        raw = json.load(f)
    # the real kernel dims, everything else tiny; DeepSeek's own config.json keys
    assert raw["kv_lora_rank"] == 512 and raw["qk_rope_head_dim"] == 64
    assert raw["model_type"] == "deepseek_v3" and raw["architectures"] == ["DeepseekV3ForCausalLM"]
    assert raw["num_hidden_layers"] == 2 and raw["first_k_dense_replace"] == 1 and raw["n_routed_experts"] == 8
    assert raw["rope_scaling"]["type"] == "yarn" and "rope_theta" in raw
    sd = read_state_dict(dsk_tiny_ckpt)
    for name in HF_NAMES_V3:
        assert name in sd, name
    assert sd["model.layers.0.self_attn.kv_b_proj.weight"].shape == (8 * (32 + 32), 512)
    assert sd["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"].shape == (512 + 64, 128)
    assert not any(".layers.0.mlp.experts" in k for k in sd)          # layer 0 dense
    assert sum(".layers.1.mlp.experts." in k for k in sd) == 8 * 3
    # exactly the seeded weights
    ref = random_state_dict(tiny_config("v3"), seed=0)
    assert set(ref) == set(sd)
    for k in ref:
        assert torch.equal(ref[k], sd[k]), k


def test_load_model_matches_checkpoint(dsk_tiny_ckpt):
    m = load_model(dsk_tiny_ckpt)
    sd = read_state_dict(dsk_tiny_ckpt)
    msd = m.state_dict()
    assert set(msd) == set(sd)
    for k in sd:
        assert torch.equal(msd[k], sd[k]), k
    assert m.config.q_lora_rank == 64 and m.dtype == torch.float32


def test_v2_sharded_checkpoint(dsk_tiny_ckpt_v2):
    files = sorted(os.listdir(dsk_tiny_ckpt_v2))
    assert "model.safetensors.index.json" in files
    assert "model-00001-of-00002.safetensors" in files and "model-00002-of-00002.safetensors" in files
    with open(os.path.join(dsk_tiny_ckpt_v2, "model.safetensors.index.json")) as f:
        wm = json.load(f)["weight_map"]
    assert set(wm.values()) == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    sd = read_state_dict(dsk_tiny_ckpt_v2)
    assert set(sd) == set(wm)
    assert "model.layers.0.self_attn.q_proj.weight" in sd and "model.layers.0.self_attn.q_a_proj.weight" not in sd
    assert "model.layers.1.mlp.gate.e_score_correction_bias" not in sd
    m = load_model(dsk_tiny_ckpt_v2)
    assert m.config.model_type == "deepseek_v2" and m.config.scoring_func == "softmax"
    assert m.config.topk_method == "greedy" and m.config.q_lora_rank is None


def test_bf16_checkpoint_loads_and_casts(tmp_path):
    d = write_tiny_checkpoint(str(tmp_path / "bf16"), seed=3, dtype=torch.bfloat16)
    sd = read_state_dict(d)
    assert sd["model.embed_tokens.weight"].dtype == torch.bfloat16
    assert sd["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32
    ref = random_state_dict(tiny_config("v3"), seed=3)
    assert torch.equal(sd["lm_head.weight"], ref["lm_head.weight"].bfloat16())
    m = load_model(d)                                     # checkpoint dtype: bf16
    assert m.dtype == torch.bfloat16
    assert m.model.layers[1].mlp.gate.weight.dtype == torch.float32      # router stays fp32
    m32 = load_model(d, dtype=torch.float32)
    assert torch.equal(m32.lm_head.weight, ref["lm_head.weight"].bfloat16().float())


def test_safetensors_builtin_codec_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    ts = {"a.f32": torch.randn(3, 5, generator=g), "b.bf16": torch.randn(7, generator=g).bfloat16(),
          "c.f16": torch.randn(2, 2, 2, generator=g).half(), "d.i32": torch.arange(6, dtype=torch.int32).view(2, 3),
          "e.empty": torch.zeros(0, 4), "f.scalar": torch.tensor(2.5)}
    p = str(tmp_path / "x.safetensors")
    save_safetensors(ts, p, {"format": "pt"})
    back = load_safetensors_builtin(p)
    assert set(back) == set(ts)
    for k, v in ts.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    with open(p, "rb") as f:
        head = f.read(8)
    assert int.from_bytes(head, "little") % 8 == 0                  # header padded to 8 bytes


def test_safetensors_builtin_rejects_corrupt_file(tmp_path):
    p = str(tmp_path / "bad.safetensors")
    save_safetensors({"w": torch.ones(4)}, p)
    with open(p, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(data[:-4])                                             # truncated data
    with pytest.raises(ValueError, match="data_offsets"):
        load_safetensors_builtin(p)
    with open(p, "wb") as f:
        f.write((10 ** 9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        load_safetensors_builtin(p)


def test_safetensors_interop_with_package(tmp_path):
    st = pytest.importorskip("safetensors.torch", reason="safetensors package not installed (optional)")
    ts = {"x": torch.randn(4, 3), "y": torch.randn(5).bfloat16()}
    p1, p2 = str(tmp_path / "ours.safetensors"), str(tmp_path / "theirs.safetensors")
    save_safetensors(ts, p1)
    back = st.load_file(p1)
    st.save_file(ts, p2)
    back2 = load_safetensors_builtin(p2)
    for k in ts:
        assert torch.equal(back[k], ts[k]) and torch.equal(back2[k], ts[k])


def test_load_errors_name_the_problem(tmp_path):
    cfg = tiny_config("v3")
    sd = random_state_dict(cfg, seed=0)
    sd.pop("model.layers.1.self_attn.kv_b_proj.weight")
    d = write_checkpoint(str(tmp_path / "missing"), cfg, sd)
    with pytest.raises(ValueError, match="kv_b_proj"):
        load_model(d)
    sd = random_state_dict(cfg, seed=0)
    sd["model.layers.0.self_attn.o_proj.weight_scale_inv"] = torch.ones(1)
    d = write_checkpoint(str(tmp_path / "fp8"), cfg, sd)
    with pytest.raises(ValueError, match="FP8"):
        load_model(d)
    # MTP layer (model.layers.<num_hidden_layers>.*) is ignored, as in transformers
    sd = random_state_dict(cfg, seed=0)
    sd["model.layers.2.eh_proj.weight"] = torch.ones(2, 2)
    d = write_checkpoint(str(tmp_path / "mtp"), cfg, sd)
    load_model(d)
    with pytest.raises(FileNotFoundError):
        read_state_dict(str(tmp_path))


# the real configs' relevant fields (deepseek-ai/DeepSeek-V3 and DeepSeek-V2-Lite config.json)
V3_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
    "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
    "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "qk_nope_head_dim": 128, "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4,
    "num_experts_per_tok": 8, "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": True,
    "scoring_func": "sigmoid", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06, "rope_theta": 10000,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "bos_token_id": 0, "eos_token_id": 1, "vocab_size": 129280, "num_nextn_predict_layers": 1,
    "torch_dtype": "bfloat16", "quantization_config": {"quant_method": "fp8"},
}
V2_LITE_CONFIG = {
    "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
    "num_attention_heads": 16, "q_lora_rank": None, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 64, "num_experts_per_tok": 6,
    "n_shared_experts": 2, "first_k_dense_replace": 1, "topk_method": "greedy", "scoring_func": "softmax",
    "norm_topk_prob": False, "routed_scaling_factor": 1.0, "num_hidden_layers": 27, "vocab_size": 102400,
    "rope_theta": 10000, "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707,
                                          "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096,
                                          "type": "yarn"},
    "bos_token_id": 100000, "eos_token_id": 100001,
}


def test_config_softmax_scale_real_models():
    v3 = DeepseekConfig.from_dict(V3_CONFIG)
    m = 0.1 * 1.0 * math.log(40) + 1.0
    assert v3.qk_head_dim == 192 and v3.kv_cache_dim == 576 and v3.kernel_compatible
    assert v3.softmax_scale == pytest.approx(192 ** -0.5 * m * m, rel=1e-12)
    assert round(v3.softmax_scale, 4) == 0.1352
    assert v3.is_moe_layer(3) and not v3.is_moe_layer(2)
    assert v3.extra["quantization_config"] == {"quant_method": "fp8"}          # unknown keys kept
    v2 = DeepseekConfig.from_dict(V2_LITE_CONFIG)
    m2 = 0.1 * 0.707 * math.log(40) + 1.0
    assert v2.softmax_scale == pytest.approx(192 ** -0.5 * m2 * m2, rel=1e-12)
    assert round(v2.softmax_scale, 4) == 0.1147
    assert v2.q_lora_rank is None and v2.eos_token_ids == [100001]
    plain = DeepseekConfig.from_dict({**V3_CONFIG, "rope_scaling": None})
    assert plain.softmax_scale == pytest.approx(192 ** -0.5)


def test_config_transformers_v5_spelling_and_roundtrip(tmp_path):
    d = {k: v for k, v in V3_CONFIG.items() if k not in ("rope_theta", "rope_scaling")}
    d["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 50000.0, "factor": 40, "mscale": 1.0,
                            "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                            "beta_fast": 32, "beta_slow": 1}
    c = DeepseekConfig.from_dict(d)
    assert c.rope_theta == 50000.0 and c.rope_type == "yarn"
    assert c.softmax_scale == pytest.approx(DeepseekConfig.from_dict(V3_CONFIG).softmax_scale)
    c.to_json(str(tmp_path / "config.json"))
    c2 = DeepseekConfig.from_json(str(tmp_path))
    assert c2.to_dict() == c.to_dict()
    with pytest.raises(ValueError, match="scoring_func"):
        DeepseekConfig.from_dict({**V3_CONFIG, "scoring_func": "relu"})
    with pytest.raises(ValueError, match="n_group"):
        DeepseekConfig.from_dict({**V3_CONFIG, "n_group": 7})


def test_byte_tokenizer_roundtrip(dsk_tiny_ckpt):
    tok = load_tokenizer(dsk_tiny_ckpt)
    assert isinstance(tok, ByteTokenizer) and tok.vocab_size == 259
    text = "héllo, MLA ✓ 深度"
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id and all(3 <= i < 259 for i in ids[1:])
    assert len(ids) == 1 + len(text.encode("utf-8"))
    assert tok.decode(ids) == text                           # specials dropped
    assert tok.decode([tok.eos_id, 3 + ord("a")]) == "a"
    cfg = DeepseekConfig.from_json(dsk_tiny_ckpt)
    assert cfg.vocab_size == tok.vocab_size and cfg.eos_token_ids == [tok.eos_id]


def test_hf_tokenizer_json_when_tokenizers_installed(dsk_tiny_ckpt, tmp_path):
    tk = pytest.importorskip("tokenizers", reason="tokenizers package not installed (optional)")
    import shutil
    d = str(tmp_path / "hf_tok")
    shutil.copytree(dsk_tiny_ckpt, d)
    os.remove(os.path.join(d, "tokenizer_mla.json"))
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{w: 3 + i for i, w in enumerate(["hello", "world", "mla"])}}
    t = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    t.add_special_tokens(["<s>", "</s>"])
    t.save(os.path.join(d, "tokenizer.json"))
    tok = load_tokenizer(d, DeepseekConfig.from_json(d))
    assert tok.kind == "hf" and tok.bos_id == 0 and tok.eos_id == 1
    assert tok.encode("hello mla world") == [0, 3, 5, 4]
    assert tok.decode([0, 3, 5, 1]) == "hello mla"
    os.remove(os.path.join(d, "tokenizer.json"))
    assert load_tokenizer(d) is None                               # token-id prompts only


SERVE_CHECK_PROMPTS = ["hello", "The capital of France is", "def fib(n):", "abc", "Once upon a time",
                       "SELECT * FROM", "1, 2, 3, 5, 8,", "MLA latent"]         # tools/serve_check.py
ENGINE_PROMPTS = ["", "a", "hello MLA", "x" * 62, "The quick brown fox jumps over the lazy dog. " * 3]


def test_tiny_init_is_well_conditioned():
    """The tiny random init is like trained weights where it matters: norms 1, residual-writing
    projections scaled down, a peaked next-token distribution."""
    cfg = tiny_config("v3")
    sd = random_state_dict(cfg, seed=0)
    assert torch.equal(sd["model.layers.0.self_attn.kv_a_layernorm.weight"], torch.ones(512))
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in sd.items() if k.endswith("norm.weight"))
    o = sd["model.layers.0.self_attn.o_proj.weight"]
    qa = sd["model.layers.0.self_attn.q_a_proj.weight"]
    assert 0.4 < o.std().item() * o.shape[1] ** 0.5 < 0.6 and 0.9 < qa.std().item() * qa.shape[1] ** 0.5 < 1.1
    assert torch.equal(random_state_dict(cfg, seed=0)["lm_head.weight"], sd["lm_head.weight"])     # seeded


@torch.no_grad()
def test_tiny_checkpoint_bf16_cache_does_not_flip_greedy_tokens(dsk_tiny_ckpt, dsk_flash_mla):
    """The served tiny checkpoint (seed 0) is well-conditioned: greedy tokens with a bf16 KV cache
    through libmla (CPU) equal greedy tokens with a float32 cache through the fp32 torch stand-in
    of the kernel, for the serve_check and engine prompts (16 new tokens), and along those
    trajectories the smallest fp32 top-1/top-2 logit margin exceeds the largest |logit change|
    between the two caches by a wide factor (two correct bf16 kernels agree on the tokens)."""
    from deepseek_mla import Engine, testing
    eb = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu")
    ef = Engine.from_checkpoint(dsk_tiny_ckpt, device="cpu", kv_dtype=torch.float32, mla_ops=testing)
    prompts = SERVE_CHECK_PROMPTS + ENGINE_PROMPTS
    gb = eb.generate(prompts, max_new_tokens=16, stop_on_eos=False)
    gf = ef.generate(prompts, max_new_tokens=16, stop_on_eos=False)
    min_margin, max_change = float("inf"), 0.0
    for p, rb, rf in zip(prompts, gb, gf):
        assert rb["token_ids"] == rf["token_ids"], p
        ids = eb.encode(p)
        lb = testing.cached_logits(eb.model, ids, rb["token_ids"][:-1], torch.bfloat16)
        lf = testing.cached_logits(ef.model, ids, rb["token_ids"][:-1], torch.float32)
        top = lf.topk(2, dim=-1).values
        min_margin = min(min_margin, (top[:, 0] - top[:, 1]).min().item())
        max_change = max(max_change, (lb - lf).abs().max().item())
    print(f"min top-1/top-2 margin {min_margin:.4f}, max |logit change| bf16 vs fp32 cache {max_change:.5f}")
    assert max_change > 0                                     # the bf16 cache really rounds
    assert min_margin > 20 * max_change, (min_margin, max_change)
