"""Command line: write a tiny checkpoint, or generate from a checkpoint directory.

    python -m deepseek_mla write-tiny DIR [--seed 0] [--variant v3|v2] [--dtype float32|bfloat16] [--shards 1]
    python -m deepseek_mla generate DIR "prompt" ... [--max-new-tokens 16] [--temperature 0] [--top-p 1]
                                       [--seed N] [--device auto|cpu|cuda:N] [--dtype ...]
(with PYTHONPATH=<repo>/python:<repo>/integrations). generate prints one JSON object per prompt."""
import argparse
import json
import sys

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepseek_mla")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write-tiny", help="write a tiny random DeepSeek checkpoint (HF format)")
    w.add_argument("dir")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--variant", choices=["v3", "v2"], default="v3")
    w.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    w.add_argument("--shards", type=int, default=1)
    g = sub.add_parser("generate", help="generate from a checkpoint directory")
    g.add_argument("dir")
    g.add_argument("prompts", nargs="+")
    g.add_argument("--max-new-tokens", type=int, default=16)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--device", default="auto")
    g.add_argument("--dtype", default=None)
    a = ap.parse_args(argv)
    if a.cmd == "write-tiny":
        from .checkpoint import write_tiny_checkpoint
        dt = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
        print(write_tiny_checkpoint(a.dir, seed=a.seed, variant=a.variant, dtype=dt, shards=a.shards))
        return 0
    from .engine import Engine
    eng = Engine.from_checkpoint(a.dir, device=a.device, dtype=a.dtype)
    if eng.backend_reason:
        print(f"backend {eng.backend}: {eng.backend_reason}", file=sys.stderr)
    for r in eng.generate(a.prompts, max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_p=a.top_p,
                          seed=a.seed):
        print(json.dumps(r, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
