"""Command line: package a checkpoint as an MLflow model.

    # a local model directory (what `mlflow models serve -m` and SageMaker's /opt/ml/model take)
    python -m integrations.mlflow_mla.log --checkpoint ckpt/ --out mla_model/
    # the tiny random-weight test checkpoint, written first
    python -m integrations.mlflow_mla.log --tiny-checkpoint /tmp/tiny --out mla_model/
    # log to a tracking server and register (Unity Catalog: --registry-uri databricks-uc)
    python -m integrations.mlflow_mla.log --checkpoint ckpt/ --tracking-uri http://mlflow:5000 \
        --experiment mla --registered-model-name mla-deepseek
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def write_tiny(path: str, seed: int = 0) -> str:
    """Write the tiny random-weight DeepSeek checkpoint (HF format) the tests use."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    try:
        from integrations.deepseek_mla import write_tiny_checkpoint
    except ImportError:
        from integrations.deepseek_mla.checkpoint import write_tiny_checkpoint
    write_tiny_checkpoint(path, seed=seed)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m integrations.mlflow_mla.log",
                                description="Package a DeepSeek MLA checkpoint as an MLflow pyfunc model.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Hugging Face checkpoint directory (config.json + *.safetensors)")
    src.add_argument("--tiny-checkpoint", metavar="DIR",
                     help="write the tiny random-weight test checkpoint to DIR and package it")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny checkpoint (default 0)")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--out", help="save the model to this local directory")
    dst.add_argument("--log", action="store_true", help="log to the tracking server (active run or a new one)")
    p.add_argument("--lib", help="libmla.so to ship (default: $MLA_LIBRARY, installed mla, build/libmla.so)")
    p.add_argument("--device", default="auto", help="default device: auto | cpu | cuda:N (default auto)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--tracking-uri", help="MLflow tracking URI (with --log)")
    p.add_argument("--registry-uri", help="model registry URI, e.g. databricks-uc (with --log)")
    p.add_argument("--experiment", help="experiment name (with --log)")
    p.add_argument("--registered-model-name", help="register under this name (UC: catalog.schema.model)")
    p.add_argument("--extra-requirement", action="append", default=[],
                   help="extra pip requirement for the model (repeatable), e.g. code/mla-0.1.0-*.whl")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import mlflow

    from integrations.mlflow_mla import packaging

    ckpt = args.checkpoint or write_tiny(args.tiny_checkpoint, args.seed)
    common = dict(lib_path=args.lib, device=args.device, max_batch_size=args.max_batch_size,
                  extra_pip_requirements=args.extra_requirement or None)
    if args.out:
        packaging.save_model(ckpt, args.out, **common)
        print(json.dumps({"model_dir": os.path.abspath(args.out)}))
        return 0
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    if args.registry_uri:
        mlflow.set_registry_uri(args.registry_uri)
    if args.experiment:
        mlflow.set_experiment(args.experiment)
    with mlflow.start_run(nested=mlflow.active_run() is not None) as run:
        info = packaging.log_model(ckpt, registered_model_name=args.registered_model_name, **common)
    print(json.dumps({"run_id": run.info.run_id, "model_uri": info.model_uri,
                      "registered_model_version": getattr(info, "registered_model_version", None)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
