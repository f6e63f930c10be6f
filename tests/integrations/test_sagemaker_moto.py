"""SageMaker deployment through MLflow (`mlflow deployments create -t sagemaker`, ml.p5.48xlarge)
against a local moto server: the model tarball in S3 (byte-identical to the model directory),
CreateModel (image, ModelDataUrl, environment), the endpoint config (instance type/count) and the
endpoint. moto's CreateEndpointConfig rejects ml.p5 instance types (hard-coded old list), so its
validator is patched to accept them (docs/mlops.md section 2.6); everything else is moto's own."""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import boto3
import pytest

import mlops_support
from integrations.sagemaker import deploy

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = "arn:aws:iam::%s:role/SageMakerExecution" % ACCOUNT
IMAGE = "%s.dkr.ecr.%s.amazonaws.com/mla-serving:0.1.0" % (ACCOUNT, REGION)


@pytest.fixture(scope="module")
def aws_env():
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    old = {k: os.environ.get(k) for k in list(keys) + ["AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    os.environ.update(keys)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    yield keys
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def p5_allowed():
    import moto.sagemaker.models as M
    orig = M.FakeEndpointConfig.validate_instance_type
    M.FakeEndpointConfig.validate_instance_type = lambda self, instance_type: None
    yield
    M.FakeEndpointConfig.validate_instance_type = orig


@pytest.fixture(scope="module")
def moto_server(aws_env, p5_allowed):
    from moto.server import ThreadedMotoServer
    port = mlops_support.free_port()
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    srv.start()
    url = "http://127.0.0.1:%d" % port
    yield url
    srv.stop()


def client(url, service):
    return boto3.client(service, region_name=REGION, endpoint_url=url)


def file_digests(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_cli_command_shape():
    cfg = deploy.deployment_config(IMAGE, ROLE)
    argv = deploy.cli_command("ep", "/m", cfg, REGION)
    assert argv[1:7] == ["-m", "mlflow", "deployments", "create", "-t", "sagemaker:/us-east-1"]
    pairs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-C")
    assert pairs["instance_type"] == "ml.p5.48xlarge" and pairs["instance_count"] == "1"
    assert json.loads(pairs["env"])["MLFLOW_MODELS_WORKERS"] == "8"       # one worker per H100
    assert pairs["image_url"] == IMAGE and pairs["execution_role_arn"] == ROLE
    assert pairs["synchronous"] == "True"        # MLflow parses only "True" as true
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "create", "--model-uri", "/m",
                        "--name", "ep", "--image-url", IMAGE, "--role", ROLE, "--dry-run"],
                       cwd=mlops_support.REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "mlflow deployments create -t sagemaker:/us-east-1" in r.stdout
    assert "instance_type=ml.p5.48xlarge" in r.stdout


def test_mlflow_deployments_create_cli_against_moto(moto_server, mlops_model_dir, tmp_path):
    """The real CLI in a subprocess, talking to moto over HTTP (AWS_ENDPOINT_URL)."""
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "create",
                        "--model-uri", mlops_model_dir, "--name", "mla-p5", "--image-url", IMAGE,
                        "--role", ROLE, "--region", REGION, "--timeout-seconds", "120",
                        "--env", "MLA_LOG_LEVEL=info"],
                       cwd=mlops_support.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    sm = client(moto_server, "sagemaker")
    ep = sm.describe_endpoint(EndpointName="mla-p5")
    assert ep["EndpointStatus"] == "InService"
    cfg = sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"])
    (variant,) = cfg["ProductionVariants"]
    assert variant["InstanceType"] == "ml.p5.48xlarge"
    assert variant["InitialInstanceCount"] == 1
    model = sm.describe_model(ModelName=variant["ModelName"])
    cont = model["PrimaryContainer"]
    assert cont["Image"] == IMAGE
    assert model["ExecutionRoleArn"] == ROLE
    envv = cont["Environment"]
    assert envv["MLFLOW_DEPLOYMENT_FLAVOR_NAME"] == "python_function"
    assert envv["SERVING_ENVIRONMENT"] == "SageMaker"
    assert envv["MLFLOW_MODELS_WORKERS"] == "8"
    assert envv["MLA_DEVICE"] == "auto" and envv["MLA_LOG_LEVEL"] == "info"
    # the tarball SageMaker would unpack into /opt/ml/model is exactly the model directory
    url = cont["ModelDataUrl"]
    assert url.startswith("s3://") and url.endswith("/model.tar.gz")
    bucket, key = url[5:].split("/", 1)
    body = client(moto_server, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = tar.getnames()
        assert "MLmodel" in names and "artifacts/libmla.so" in names
        tar.extractall(tmp_path / "opt_ml_model", filter="data")
    assert file_digests(tmp_path / "opt_ml_model") == file_digests(mlops_model_dir)
    tags = {t["Key"]: t["Value"] for t in
            client(moto_server, "s3").get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert tags.get("SageMaker") == "true"


def test_deployment_client_lifecycle(moto_server, mlops_model_dir, monkeypatch):
    """The same through MLflow's Python client: create, get, list, delete."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    from mlflow.deployments import get_deploy_client
    c = get_deploy_client("sagemaker:/%s" % REGION)
    cfg = deploy.deployment_config(IMAGE, ROLE, instance_count=2, timeout_seconds=120)
    c.create_deployment("mla-p5-py", model_uri=mlops_model_dir, config=cfg)
    got = c.get_deployment("mla-p5-py")
    assert got["EndpointStatus"] == "InService"
    assert "mla-p5-py" in [d["EndpointName"] for d in c.list_deployments()]
    sm = client(moto_server, "sagemaker")
    variant = sm.describe_endpoint_config(
        EndpointConfigName=got["EndpointConfigName"])["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.p5.48xlarge", 2)
    c.delete_deployment("mla-p5-py", config={"region_name": REGION, "synchronous": True, "timeout_seconds": 60})
    assert "mla-p5-py" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]


def test_predict_describe_delete_cli(moto_server, mlops_model_dir, mlops_pyfunc):
    """The client side of the endpoint: `deploy predict` sends a dataframe_split body through
    sagemaker-runtime InvokeEndpoint and prints the JSON answer (moto answers from a queue we fill
    with what the container answers for that body); `describe` and `delete` go through MLflow."""
    import pandas as pd
    import requests
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server)
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "create", "--model-uri", mlops_model_dir,
                        "--name", "mla-p5-cli", "--image-url", IMAGE, "--role", ROLE, "--timeout-seconds", "60"],
                       cwd=mlops_support.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    want = mlops_pyfunc.predict(pd.DataFrame({"prompt": ["hello"]}), params={"max_new_tokens": 3})
    answer = {"predictions": [{**row, "token_ids": [int(t) for t in row["token_ids"]]}
                              for row in want.to_dict("records")]}
    requests.post(moto_server + "/moto-api/static/sagemaker/endpoint-results", timeout=30,
                  json={"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]})
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "predict", "--name", "mla-p5-cli",
                        "--prompt", "hello", "--max-new-tokens", "3"], cwd=mlops_support.REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == json.loads(json.dumps(answer))
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "describe", "--name", "mla-p5-cli"],
                       cwd=mlops_support.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["EndpointStatus"] == "InService"
    r = subprocess.run([sys.executable, "-m", "integrations.sagemaker.deploy", "delete", "--name", "mla-p5-cli"],
                       cwd=mlops_support.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    names = [e["EndpointName"] for e in client(moto_server, "sagemaker").list_endpoints()["Endpoints"]]
    assert "mla-p5-cli" not in names
