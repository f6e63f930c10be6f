"""Tokenizers. ``ByteTokenizer``: UTF-8 bytes shifted past a few special ids (no downloads, any
text round-trips). A checkpoint directory names its tokenizer in ``tokenizer_mla.json``; a real
DeepSeek directory with ``tokenizer.json`` uses the ``tokenizers`` package when it is installed."""
from __future__ import annotations

import json
import os

TOKENIZER_FILE = "tokenizer_mla.json"


class ByteTokenizer:
    kind = "byte"

    def __init__(self, bos_id: int = 0, eos_id: int = 1, pad_id: int = 2, offset: int = 3, add_bos: bool = True):
        self.bos_id, self.eos_id, self.pad_id, self.offset, self.add_bos = bos_id, eos_id, pad_id, offset, add_bos

    @property
    def vocab_size(self) -> int:
        return self.offset + 256

    def encode(self, text: str) -> list[int]:
        ids = [b + self.offset for b in text.encode("utf-8")]
        return ([self.bos_id] if self.add_bos else []) + ids

    def decode(self, ids) -> str:
        data = bytes(int(i) - self.offset for i in ids if self.offset <= int(i) < self.offset + 256)
        return data.decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"type": "byte", "bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id,
                "offset": self.offset, "add_bos": self.add_bos, "vocab_size": self.vocab_size}

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, TOKENIZER_FILE), "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


class HFTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` package (optional dependency)."""
    kind = "hf"

    def __init__(self, path: str, bos_id: int | None, eos_id: int | None, add_bos: bool = True):
        from tokenizers import Tokenizer  # optional
        self._tok = Tokenizer.from_file(path)
        self.bos_id, self.eos_id, self.pad_id, self.add_bos = bos_id, eos_id, None, add_bos

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if self.add_bos and self.bos_id is not None else []) + list(ids)

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)


def load_tokenizer(directory: str, config=None):
    """The checkpoint's tokenizer, or None when it has none we can read (token-id prompts still work)."""
    p = os.path.join(directory, TOKENIZER_FILE)
    if os.path.exists(p):
        with open(p, "r", encoding="utf-8") as f:
            d = json.load(f)
        if d.get("type") != "byte":
            raise ValueError(f"{p}: unknown tokenizer type {d.get('type')!r}")
        return ByteTokenizer(d.get("bos_id", 0), d.get("eos_id", 1), d.get("pad_id", 2), d.get("offset", 3),
                             d.get("add_bos", True))
    p = os.path.join(directory, "tokenizer.json")
    if os.path.exists(p):
        try:
            bos = getattr(config, "bos_token_id", None)
            eos = config.eos_token_ids[0] if config is not None and config.eos_token_ids else None
            return HFTokenizer(p, bos, eos)
        except ImportError:
            return None
    return None
