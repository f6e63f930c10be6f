"""DeepSeek-V2/V3 with Multi-head Latent Attention over ``flash_mla`` (this project's libmla).

    from deepseek_mla import Engine, write_tiny_checkpoint
    write_tiny_checkpoint("/tmp/tiny", seed=0)
    eng = Engine.from_checkpoint("/tmp/tiny", device="auto")
    eng.generate(["hello"], max_new_tokens=8)

Modules: config (DeepseekConfig), model (DeepseekForCausalLM, MLAAttention), cache (PagedKVCache),
checkpoint (load_model, write_tiny_checkpoint), tokenizer (ByteTokenizer), engine (Engine),
testing (a pure-torch reference of flash_mla_with_kvcache, for tests only).
"""
from .cache import OutOfPages, PageAllocator, PagedKVCache
from .checkpoint import load_model, read_state_dict, tiny_config, write_checkpoint, write_tiny_checkpoint
from .config import DeepseekConfig
from .engine import Engine
from .model import DeepseekForCausalLM, MLAAttention
from .tokenizer import ByteTokenizer, load_tokenizer

__all__ = ["DeepseekConfig", "DeepseekForCausalLM", "MLAAttention", "PagedKVCache", "PageAllocator", "OutOfPages",
           "load_model", "read_state_dict", "tiny_config", "write_checkpoint", "write_tiny_checkpoint",
           "ByteTokenizer", "load_tokenizer", "Engine"]
__version__ = "0.1.0"
