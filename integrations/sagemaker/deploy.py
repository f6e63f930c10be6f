"""Deploy the MLflow model to a SageMaker real-time endpoint through MLflow's deployment plugin.

This builds and runs exactly::

    mlflow deployments create -t sagemaker:/<region> --name <endpoint> -m <model uri> \
        -C image_url=<ECR image built from integrations/sagemaker/dockerfile.py> \
        -C execution_role_arn=<role> -C instance_type=ml.p5.48xlarge -C instance_count=1 \
        -C env='{"MLFLOW_MODELS_WORKERS": "8", ...}' -C synchronous=True -C timeout_seconds=3600

MLflow then tars the model directory to ``s3://<bucket>/<model name>/model.tar.gz`` (SageMaker unpacks
it at /opt/ml/model), calls CreateModel (image, ModelDataUrl, Environment incl.
MLFLOW_DEPLOYMENT_FLAVOR_NAME=python_function and SERVING_ENVIRONMENT=SageMaker),
CreateEndpointConfig (one production variant on the instance type) and CreateEndpoint, and waits
for InService. The container's launcher (integrations/serving/launcher.py) starts one scoring-server
worker per GPU; MLFLOW_MODELS_WORKERS makes that explicit (8 on ml.p5.48xlarge).

    python -m integrations.sagemaker.deploy create --model-uri ./mla_model --name mla-p5 \
        --image-url 123456789012.dkr.ecr.us-east-1.amazonaws.com/mla-serving:0.1.0 \
        --role arn:aws:iam::123456789012:role/SageMakerExecution [--dry-run]
    python -m integrations.sagemaker.deploy predict --name mla-p5 --prompt "Hello"
    python -m integrations.sagemaker.deploy delete --name mla-p5
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

DEFAULT_INSTANCE_TYPE = "ml.p5.48xlarge"
DEFAULT_REGION = "us-east-1"

# GPUs per instance for the instance types this package is meant for (one worker per GPU).
GPUS_PER_INSTANCE = {
    "ml.p5.48xlarge": 8, "ml.p5e.48xlarge": 8, "ml.p5en.48xlarge": 8,   # H100 / H200: GPU kernel
    "ml.p4d.24xlarge": 8, "ml.p4de.24xlarge": 8,                       # A100: CPU path fallback
    "ml.g5.xlarge": 1, "ml.g6.xlarge": 1, "ml.g6e.xlarge": 1,
}


def deployment_env(instance_type: str, extra: dict | None = None) -> dict:
    """Environment variables for the SageMaker model (CreateModel ``Environment``)."""
    env = {
        "MLFLOW_MODELS_WORKERS": str(GPUS_PER_INSTANCE.get(instance_type, 1)),
        "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "600",
        "MLA_DEVICE": "auto",
    }
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def deployment_config(image_url: str, execution_role_arn: str, *, instance_type: str = DEFAULT_INSTANCE_TYPE,
                      instance_count: int = 1, region: str = DEFAULT_REGION, bucket: str | None = None,
                      env: dict | None = None, synchronous: bool = True, timeout_seconds: int = 3600,
                      variant_name: str | None = None) -> dict:
    """The ``config`` dict of ``SageMakerDeploymentClient.create_deployment`` (the CLI's -C pairs)."""
    cfg = {
        "image_url": image_url,
        "execution_role_arn": execution_role_arn,
        "instance_type": instance_type,
        "instance_count": int(instance_count),
        "region_name": region,
        "env": deployment_env(instance_type, env),
        "synchronous": bool(synchronous),
        "timeout_seconds": int(timeout_seconds),
    }
    if bucket:
        cfg["bucket"] = bucket
    if variant_name:
        cfg["variant_name"] = variant_name
    return cfg


def cli_command(name: str, model_uri: str, config: dict, region: str = DEFAULT_REGION) -> list[str]:
    """argv of ``mlflow deployments create -t sagemaker:/<region> ...`` for ``config``."""
    argv = [sys.executable, "-m", "mlflow", "deployments", "create", "-t", "sagemaker:/%s" % region,
            "--name", name, "-m", model_uri]
    for key, value in config.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            value = "True" if value else "False"   # MLflow's -C parser: only the string "True" is true
        argv += ["-C", "%s=%s" % (key, value)]
    return argv


def create(name: str, model_uri: str, config: dict, region: str = DEFAULT_REGION, dry_run: bool = False,
           env: dict | None = None) -> int:
    argv = cli_command(name, model_uri, config, region)
    print("+ " + " ".join(shlex.quote(a) for a in argv), flush=True)
    if dry_run:
        return 0
    return subprocess.run(argv, env=env).returncode


def build_parser():
    p = argparse.ArgumentParser(prog="python -m integrations.sagemaker.deploy",
                                description="SageMaker endpoint for the MLA MLflow model, via `mlflow deployments`.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create the endpoint (mlflow deployments create -t sagemaker)")
    c.add_argument("--model-uri", required=True, help="local model dir, runs:/..., models:/...")
    c.add_argument("--name", required=True, help="endpoint name")
    c.add_argument("--image-url", required=True, help="ECR image built from the generated Dockerfile")
    c.add_argument("--role", required=True, help="SageMaker execution role ARN")
    c.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE)
    c.add_argument("--instance-count", type=int, default=1)
    c.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))
    c.add_argument("--bucket", help="S3 bucket for the model tarball (default: MLflow's per-account bucket)")
    c.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra container env")
    c.add_argument("--timeout-seconds", type=int, default=3600)
    c.add_argument("--async", dest="asynchronous", action="store_true", help="do not wait for InService")
    c.add_argument("--dry-run", action="store_true", help="print the mlflow command only")
    for action in ("delete", "predict", "describe"):
        s = sub.add_parser(action)
        s.add_argument("--name", required=True)
        s.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))
        if action == "predict":
            s.add_argument("--prompt", action="append", required=True)
            s.add_argument("--max-new-tokens", type=int, default=32)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "create":
        extra = dict(kv.split("=", 1) for kv in args.env)
        cfg = deployment_config(args.image_url, args.role, instance_type=args.instance_type,
                                instance_count=args.instance_count, region=args.region, bucket=args.bucket,
                                env=extra, synchronous=not args.asynchronous,
                                timeout_seconds=args.timeout_seconds)
        return create(args.name, args.model_uri, cfg, args.region, dry_run=args.dry_run)
    if args.action == "predict":
        print(json.dumps(invoke(args.name, args.prompt, {"max_new_tokens": args.max_new_tokens}, args.region),
                         indent=2))
        return 0
    from mlflow.deployments import get_deploy_client
    client = get_deploy_client("sagemaker:/%s" % args.region)
    if args.action == "delete":
        client.delete_deployment(args.name, config={"region_name": args.region, "synchronous": True})
        return 0
    print(json.dumps(client.get_deployment(args.name), indent=2, default=str))
    return 0


def invoke(endpoint: str, prompts: list[str], params: dict | None = None, region: str = DEFAULT_REGION) -> dict:
    """POST one dataframe_split request to the endpoint (sagemaker-runtime InvokeEndpoint) and return
    the decoded JSON answer ({"predictions": [...]}). Plain boto3: what any client of the endpoint does."""
    import boto3
    body = {"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in prompts]}}
    if params:
        body["params"] = params
    rt = boto3.client("sagemaker-runtime", region_name=region)
    resp = rt.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Accept="application/json",
                              Body=json.dumps(body).encode())
    return json.loads(resp["Body"].read().decode())


if __name__ == "__main__":
    sys.exit(main())
