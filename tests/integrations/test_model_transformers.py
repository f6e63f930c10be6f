"""deepseek_mla against transformers' own DeepseekV3ForCausalLM / DeepseekV2ForCausalLM on the same
tiny HF checkpoint. Runs on CUDA when a GPU is visible (both models and the flash_mla decode
path on the GPU), else on the CPU. Skipped when transformers is not installed."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # local directories only, never the hub

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers not installed (pip install transformers)")

from deepseek_mla import Engine, load_model, testing  # noqa: E402

pytestmark = pytest.mark.usefixtures("dsk_one_thread")

DEVICE = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@pytest.fixture(autouse=True)
def _full_fp32_precision():
    old = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cuda.matmul.allow_tf32 = old[0]
    torch.set_float32_matmul_precision(old[1])


def _hf_model(path):
    from transformers import AutoModelForCausalLM
    kw = dict(output_loading_info=True, attn_implementation="eager")        # eager: the reference math
    try:
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw)
    except TypeError:                                      # older transformers spell it torch_dtype
        model, info = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kw)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(k), f"transformers could not map the checkpoint: {k}={info.get(k)}"
    return model.to(DEVICE).eval()


def _ckpt(request, variant):
    return request.getfixturevalue("dsk_tiny_ckpt" if variant == "v3" else "dsk_tiny_ckpt_v2")


def _ids(seed, b, t):
    return torch.randint(3, 259, (b, t), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_logits_match_transformers_fp32(request, variant):
    path = _ckpt(request, variant)
    hf = _hf_model(path)
    want_cls = "DeepseekV3ForCausalLM" if variant == "v3" else "DeepseekV2ForCausalLM"
    assert type(hf).__name__ == want_cls
    ours = load_model(path, device=DEVICE, dtype=torch.float32)
    assert hf.model.layers[0].self_attn.scaling == pytest.approx(ours.config.softmax_scale, rel=1e-12)
    ids = _ids(1, 3, 80).to(DEVICE)                        # 80 > one 64-token page
    want = hf(ids).logits.float()
    got = ours(ids)
    assert got.shape == want.shape == (3, 80, 259)
    err = (got - want).abs().max().item()
    assert err < 1e-4, f"max |logit diff| {err}"
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@torch.no_grad()
@pytest.mark.parametrize("path", ["torchref-fp32", "flash_mla-bf16"])
def test_cached_decode_logits_match_transformers(request, dsk_tiny_ckpt, path):
    """Prefill + absorbed decode over the paged cache against transformers' fp32 logits at every
    decoded position. torchref-fp32: fp32 cache and the fp32 torch reference of the kernel (exact
    math check). flash_mla-bf16: the serving path, flash_mla_with_kvcache over a bf16 cache (the GPU
    kernel when CUDA is visible, else libmla's CPU path)."""
    if path == "torchref-fp32":
        ops, kv_dtype, tol = testing, torch.float32, 1e-4
    else:
        ops, kv_dtype, tol = request.getfixturevalue("dsk_flash_mla"), torch.bfloat16, 0.1   # bf16 moves logits ~0.01
    hf = _hf_model(dsk_tiny_ckpt)
    ours = load_model(dsk_tiny_ckpt, device=DEVICE, dtype=torch.float32, mla_ops=ops)
    seq = _ids(2, 1, 80)[0].tolist()
    prompt, cont = seq[:60], seq[60:]                        # decode crosses the 64-token page
    got = testing.cached_logits(ours, prompt, cont, kv_dtype, shuffle_seed=5)
    want = hf(torch.tensor([seq], device=DEVICE)).logits[0, len(prompt) - 1:].float().cpu()
    assert got.shape == want.shape == (21, 259)
    assert (got - want).abs().max().item() < tol
    assert not testing.argmax_violations(want, got.argmax(-1), tol=tol)


@torch.no_grad()
def test_engine_greedy_matches_transformers_generate(dsk_tiny_ckpt, dsk_flash_mla):
    hf = _hf_model(dsk_tiny_ckpt)
    prompt = [0] + [3 + b for b in "The MLA engine".encode()]
    n = 12
    out = hf.generate(torch.tensor([prompt], device=DEVICE), max_new_tokens=n, do_sample=False,
                      eos_token_id=None, pad_token_id=2, min_new_tokens=n)
    hf_tokens = out[0, len(prompt):].tolist()
    # exact: fp32 cache + the torch reference of the kernel
    eng = Engine.from_checkpoint(dsk_tiny_ckpt, device=str(DEVICE), dtype=torch.float32, kv_dtype=torch.float32,
                                 mla_ops=testing)
    r = eng.generate([prompt], max_new_tokens=n, stop_on_eos=False)[0]
    assert r["token_ids"] == hf_tokens
    # serving path: flash_mla, bf16 cache; each token must be (near-)argmax of transformers' logits
    eng = Engine.from_checkpoint(dsk_tiny_ckpt, device=str(DEVICE), dtype=torch.float32)
    assert eng.backend == ("mla-gpu" if DEVICE.type == "cuda" else "mla-cpu")
    r = eng.generate([prompt], max_new_tokens=n, stop_on_eos=False)[0]
    seq = prompt + r["token_ids"]
    ref = hf(torch.tensor([seq], device=DEVICE)).logits[0, len(prompt) - 1:-1].float().cpu()
    assert not testing.argmax_violations(ref, r["token_ids"], tol=0.1)
