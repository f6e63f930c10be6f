"""Log the DeepSeek MLA model to MLflow on Databricks and register it in Unity Catalog.

Run on a Databricks cluster (notebook `%run`, a job's Python task, or `python log_to_uc.py` in the
web terminal) from a Git folder of this repository, with the mla wheel installed
(init_install_wheel.sh):

    python integrations/databricks/log_to_uc.py \
        --checkpoint /Volumes/main/mla/weights/DeepSeek-V2-Lite \
        --model-name main.mla.deepseek_v2_lite --alias champion \
        --experiment /Users/me@example.com/mla

Unity Catalog needs a model signature (the model has one: prompt -> text/token_ids/..., with params)
and a three-level name ``catalog.schema.model``. Off Databricks the same script logs to any
tracking/registry URI (``--tracking-uri``/``--registry-uri``), which is how it is tested.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def build_parser():
    p = argparse.ArgumentParser(prog="log_to_uc.py", description="Log + register the MLA model in Unity Catalog.")
    p.add_argument("--checkpoint", required=True,
                   help="HF DeepSeek checkpoint dir (e.g. in a UC volume: /Volumes/<cat>/<schema>/<vol>/...)")
    p.add_argument("--model-name", required=True, help="UC name catalog.schema.model")
    p.add_argument("--alias", help="set this alias on the new version (e.g. champion)")
    p.add_argument("--experiment", help="MLflow experiment path (default: the notebook's / job's)")
    p.add_argument("--lib", help="libmla.so to ship (default: the installed mla wheel's)")
    p.add_argument("--device", default="auto", help="default device of the model: auto | cpu | cuda:N")
    p.add_argument("--tracking-uri", default="databricks")
    p.add_argument("--registry-uri", default="databricks-uc")
    return p


def check_uc_name(name: str, registry_uri: str) -> None:
    if registry_uri.startswith("databricks-uc") and len(name.split(".")) != 3:
        raise SystemExit("error: Unity Catalog model names are catalog.schema.model, got %r" % name)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_uc_name(args.model_name, args.registry_uri)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import mlflow
    from mlflow import MlflowClient

    from integrations.mlflow_mla import log_model

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_registry_uri(args.registry_uri)
    if args.experiment:
        mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="mla-log-model") as run:
        mlflow.log_params({"checkpoint": args.checkpoint, "device": args.device})
        info = log_model(args.checkpoint, lib_path=args.lib, device=args.device,
                         registered_model_name=args.model_name)
    version = info.registered_model_version
    if args.alias:
        MlflowClient().set_registered_model_alias(args.model_name, args.alias, version)
    uri = "models:/%s@%s" % (args.model_name, args.alias) if args.alias else "models:/%s/%s" % (args.model_name, version)
    print(json.dumps({"run_id": run.info.run_id, "model_uri": info.model_uri, "registered_version": version,
                      "serving_uri": uri}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
