"""The SageMaker inference-container contract, run locally as the container runs it: the model at
<root>/opt/ml/model, Debian's nginx on the public port in front of MLflow's scoring server, one
worker per GPU (1 here, no GPU), `serve` as the command. Plus the generated image Dockerfile,
checked statically (no Docker engine here) and by running its entrypoint from the build context."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import requests

import mlops_support
from integrations.sagemaker import dockerfile as dockerfile_mod
from integrations.serving import launcher


@pytest.fixture(scope="module")
def model_root(mlops_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("container") / "opt" / "ml" / "model"
    shutil.copytree(mlops_model_dir, root)   # what SageMaker unpacks from model.tar.gz
    return str(root)


@pytest.fixture(scope="module")
def container(model_root, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    srv = mlops_support.container_serve(model_root, run_dir=run_dir)
    with srv:
        srv.run_dir = run_dir
        yield srv


def test_ping_through_nginx(container):
    r = requests.get(container.url + "/ping", timeout=10)
    assert r.status_code == 200
    assert r.headers.get("Server", "").startswith("nginx")


def test_invocations_through_nginx(container, mlops_pyfunc):
    prompts = ["hello", "abc"]
    body = {"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in prompts]},
            "params": {"max_new_tokens": 4}}
    r = requests.post(container.url + "/invocations", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers.get("Server", "").startswith("nginx")
    want = mlops_pyfunc.predict(pd.DataFrame({"prompt": prompts}), params={"max_new_tokens": 4})
    got = r.json()["predictions"]
    assert [g["token_ids"] for g in got] == [list(map(int, t)) for t in want["token_ids"]]
    csv = requests.post(container.url + "/invocations", data="prompt\nhello\n",
                        headers={"Content-Type": "text/csv"}, timeout=120)
    assert csv.status_code == 200 and csv.json()["predictions"][0]["backend"] == "mla-cpu"


def test_only_the_contract_paths_are_served(container):
    for path in ("/health", "/version", "/", "/opt/ml/model/MLmodel"):
        r = requests.get(container.url + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code)
    assert requests.get(container.url + "/invocations", timeout=10).status_code == 405
    bad = requests.post(container.url + "/invocations", data="{", headers={"Content-Type": "application/json"},
                        timeout=10)
    assert bad.status_code == 400 and "valid JSON" in bad.text


def test_one_worker_per_gpu_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_MODELS_WORKERS", raising=False)
    monkeypatch.setattr(launcher, "count_gpus", lambda: 0)
    assert launcher.resolve_workers("auto") == (1, False)
    monkeypatch.setattr(launcher, "count_gpus", lambda: 8)     # ml.p5.48xlarge
    assert launcher.resolve_workers("auto") == (8, True)
    monkeypatch.setenv("MLFLOW_MODELS_WORKERS", "2")
    assert launcher.resolve_workers("auto") == (2, True)
    monkeypatch.delenv("MLFLOW_MODELS_WORKERS")
    out = subprocess.run([sys.executable, "-m", "integrations.serving.launcher", "serve", "--print-config",
                          "--port", "8080", "--workers", "8", "--run-dir", str(tmp_path)],
                         cwd=mlops_support.REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "listen 0.0.0.0:8080" in out.stdout and "server 127.0.0.1:8000" in out.stdout
    assert re.search(r"uvicorn .*--port 8000 --workers 8 mlflow.pyfunc.scoring_server.app:app", out.stdout)
    cfg = (tmp_path / "nginx.conf").read_text()
    r = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr        # nginx itself accepts the rendered config
    assert "${" not in cfg


def test_train_is_refused():
    r = subprocess.run([sys.executable, "-m", "integrations.serving.launcher", "train"],
                       cwd=mlops_support.REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "only serves" in r.stderr


def test_sigterm_stops_nginx_and_server(model_root, tmp_path):
    """`docker stop` sends SIGTERM: the launcher stops both processes, frees both ports, exits 0."""
    port, inner = mlops_support.free_port(), mlops_support.free_port()
    srv = mlops_support.container_serve(model_root, port=port, inner_port=inner, run_dir=str(tmp_path))
    srv.start()
    try:
        pid = int(open(tmp_path / "nginx.pid").read())
        os.kill(srv.proc.pid, signal.SIGTERM)        # the launcher only, not its group
        assert srv.proc.wait(timeout=60) == 0
        time.sleep(0.5)
        for p in (port, inner):
            with pytest.raises(requests.ConnectionError):
                requests.get("http://127.0.0.1:%d/ping" % p, timeout=5)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        srv.stop()


# ---------------------------------------------------------------------- image (static)
def parse_dockerfile(text):
    """(instruction, argument) pairs with line continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur += s[:-1] + " " if s.endswith("\\") else s
        if not s.endswith("\\"):
            ins, _, arg = cur.partition(" ")
            out.append((ins.upper(), arg.strip()))
            cur = ""
    return out


def test_generated_dockerfile(tmp_path, mlops_model_dir):
    ctx = tmp_path / "image"
    path = dockerfile_mod.generate(str(ctx))
    text = open(path).read()
    ins = parse_dockerfile(text)
    names = [i for i, _ in ins]
    assert names[0] == "FROM"
    base = ins[0][1]
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(base|runtime)-ubuntu(\d+\.\d+)", base)
    assert m, base
    assert int(m.group(1)) == 12, "CUDA 12.x base keeps the driver floor low (R525+ with minor-version compat)"
    assert ("EXPOSE", "8080") in ins
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["python", "-m", "integrations.serving.launcher"]
    assert json.loads(dict(ins)["CMD"]) == ["serve"]
    envs = " ".join(a for i, a in ins if i == "ENV")
    for needed in ("MLFLOW_DISABLE_ENV_CREATION=true", "MLA_MODEL_ROOT=/opt/ml/model", "PYTHONPATH=/opt/mla"):
        assert needed in envs
    assert any(i == "RUN" and "nginx" in a and "apt-get install" in a for i, a in ins)
    assert any(i == "LABEL" and "accept-bind-to-port=true" in a for i, a in ins)
    # every COPY source exists in the build context
    for i, a in ins:
        if i == "COPY":
            src = a.split()[0]
            assert (ctx / src).exists(), src
    # the pins the image installs are the versions the model was logged with
    image_reqs = dict(r.split("==") for r in (ctx / "requirements-serving.txt").read_text().split())
    model_reqs = dict(r.strip().split("==") for r in open(os.path.join(mlops_model_dir, "requirements.txt"))
                      if r.strip())
    for name, ver in image_reqs.items():
        if name in model_reqs:
            assert model_reqs[name] == ver, name
    assert {"torch", "pandas", "numpy"} <= set(image_reqs) and set(image_reqs) & {"mlflow", "mlflow-skinny"}
    # the entrypoint runs from the build context alone (as /opt/mla in the image)
    env = mlops_support.clean_env(PYTHONPATH=str(ctx))
    r = subprocess.run([sys.executable, "-m", "integrations.serving.launcher", "serve", "--print-config",
                        "--run-dir", str(tmp_path / "run")], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "listen 0.0.0.0:8080" in r.stdout and "--workers 1 " in r.stdout


def test_dockerfile_with_wheel(tmp_path):
    whl = tmp_path / "mla-0.1.0-py3-none-manylinux_2_28_x86_64.whl"
    whl.write_bytes(b"PK\x05\x06" + b"\0" * 18)   # an empty zip: only copied, never installed here
    ctx = tmp_path / "image"
    text = open(dockerfile_mod.generate(str(ctx), wheels=[str(whl)],
                                        torch_index_url="https://download.pytorch.org/whl/cu128")).read()
    ins = parse_dockerfile(text)
    assert ("COPY", "wheels/ /opt/mla/wheels/") in ins
    assert any(i == "RUN" and "pip install --no-deps /opt/mla/wheels/*.whl" in a for i, a in ins)
    assert any(i == "RUN" and "--extra-index-url https://download.pytorch.org/whl/cu128" in a for i, a in ins)
    assert (ctx / "wheels" / whl.name).is_file()
