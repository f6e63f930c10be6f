"""Databricks scripts, checked as far as possible without a workspace: the notebook runs end to end
on the local Spark session (with a stand-in for dbutils.widgets), log_to_uc.py logs + registers +
aliases against a local registry, the cluster/job specs parse with databricks-sdk's own dataclasses
(unknown fields fail), the init script picks and installs the newest wheel (pip stubbed), and every
CLI answers --help."""
import ast
import json
import os
import runpy
import subprocess
import sys

import pandas as pd
import pytest

import mlops_support

DBX = os.path.join(mlops_support.REPO, "integrations", "databricks")
NOTEBOOK = os.path.join(DBX, "batch_inference_notebook.py")
PROMPTS = ["hello", "abc", "The capital of France is", "def fib(n):", "x"]


class FakeWidgets:
    def __init__(self, values):
        self.values, self.created = dict(values), {}

    def text(self, name, default, label=None):
        self.created[name] = default

    def get(self, name):
        return self.values.get(name, self.created[name])


class FakeDbutils:
    def __init__(self, values):
        self.widgets = FakeWidgets(values)


@pytest.mark.parametrize("script", ["log_to_uc.py", "submit_job.py"])
def test_cli_help(script):
    r = subprocess.run([sys.executable, os.path.join(DBX, script), "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "usage:" in r.stdout


def test_notebook_is_a_databricks_notebook():
    src = open(NOTEBOOK).read()
    assert src.startswith("# Databricks notebook source\n")
    assert src.count("# COMMAND ----------") >= 4
    ast.parse(src)


def test_notebook_runs_on_local_spark(mlops_spark, mlops_model_dir, mlops_pyfunc, tmp_path):
    src = tmp_path / "prompts.parquet"
    pd.DataFrame({"prompt": PROMPTS}).to_parquet(src)
    out = tmp_path / "generations.parquet"
    dbutils = FakeDbutils({"model_uri": mlops_model_dir, "input": str(src), "output": str(out),
                           "method": "predict_batch_udf", "max_new_tokens": "5", "partitions": "2",
                           "batch_size": "2"})
    g = runpy.run_path(NOTEBOOK, init_globals={"spark": mlops_spark, "dbutils": dbutils})
    assert set(dbutils.widgets.created) >= {"model_uri", "input", "output", "max_new_tokens"}
    assert g["cfg"]["max_new_tokens"] == "5"
    res = pd.read_parquet(out)
    want = mlops_pyfunc.predict(pd.DataFrame({"prompt": PROMPTS}), params={"max_new_tokens": 5})
    want = {p: list(map(int, t)) for p, t in zip(PROMPTS, want["token_ids"])}
    got = {p: list(map(int, t)) for p, t in zip(res["prompt"], res["token_ids"])}
    assert got == want
    assert set(res["backend"]) == {"mla-cpu"}
    assert [r.asDict()["rows"] for r in g["summary"]] == [len(PROMPTS)]


def test_log_to_uc_against_local_registry(tmp_path, mlops_model_dir, mlops_lib, mlops_pyfunc, monkeypatch):
    import mlflow
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = "file://" + str(tmp_path / "mlruns")
    ckpt = os.path.join(mlops_model_dir, "artifacts", "tiny-ckpt-0")
    r = subprocess.run([sys.executable, os.path.join(DBX, "log_to_uc.py"), "--checkpoint", ckpt,
                        "--model-name", "main.mla.tiny", "--alias", "champion", "--lib", mlops_lib,
                        "--tracking-uri", uri, "--registry-uri", uri, "--experiment", "mla-dbx"],
                       env=mlops_support.clean_env(MLFLOW_ALLOW_FILE_STORE="true"), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["registered_version"] == 1 and info["serving_uri"] == "models:/main.mla.tiny@champion"
    old = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        m = mlflow.pyfunc.load_model(info["serving_uri"])
        df = pd.DataFrame({"prompt": ["hello"]})
        assert (list(m.predict(df, params={"max_new_tokens": 4})["token_ids"][0])
                == list(mlops_pyfunc.predict(df, params={"max_new_tokens": 4})["token_ids"][0]))
        sig = m.metadata.signature
        assert sig.inputs.input_names() == ["prompt"] and sig.params is not None   # UC requires a signature
    finally:
        mlflow.set_tracking_uri(old[0])
        mlflow.set_registry_uri(old[1])


def test_uc_name_must_have_three_parts():
    r = subprocess.run([sys.executable, os.path.join(DBX, "log_to_uc.py"), "--checkpoint", "/nope",
                        "--model-name", "mla_tiny"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "catalog.schema.model" in r.stderr


def test_cluster_spec_is_valid_and_p5():
    from databricks.sdk.service.compute import ClusterSpec
    spec = json.load(open(os.path.join(DBX, "cluster_p5.json")))
    assert ClusterSpec.from_dict(spec).as_dict() == spec          # no field unknown to the Clusters API
    assert spec["node_type_id"] == "p5.48xlarge"
    assert "gpu-ml" in spec["spark_version"]
    assert spec["spark_conf"]["spark.task.resource.gpu.amount"] == "1"   # one GPU per task
    (init,) = spec["init_scripts"]
    assert os.path.basename(init["volumes"]["destination"]) == "init_install_wheel.sh"
    assert init["volumes"]["destination"].startswith("/Volumes/")


def test_job_spec_dry_run_and_validation():
    sys.path.insert(0, DBX)
    import submit_job
    r = subprocess.run([sys.executable, os.path.join(DBX, "submit_job.py"), "--dry-run", "--workers", "2",
                        "--git-url", "https://github.com/example/mla.c"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["job_clusters"][0]["new_cluster"]["node_type_id"] == "p5.48xlarge"
    assert job["job_clusters"][0]["new_cluster"]["num_workers"] == 2
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert os.path.isfile(os.path.join(mlops_support.REPO, tasks["log_model"]["spark_python_task"]["python_file"]))
    assert os.path.isfile(os.path.join(mlops_support.REPO, tasks["batch_generate"]["notebook_task"]["notebook_path"] + ".py"))
    assert tasks["batch_generate"]["depends_on"] == [{"task_key": "log_model"}]
    bad = submit_job.load_specs()
    bad["tasks"][0]["spark_python_tsk"] = bad["tasks"][0].pop("spark_python_task")
    with pytest.raises(ValueError, match="does not know"):
        submit_job.validate(bad)


def test_init_script_installs_newest_wheel(tmp_path):
    for v in ("0.1.0", "0.10.0", "0.9.1"):
        (tmp_path / ("mla_c-%s-py3-none-manylinux_2_35_x86_64.whl" % v)).write_bytes(b"")
    env = dict(os.environ, MLA_WHEEL_DIR=str(tmp_path), MLA_PIP="echo PIP", MLA_PYTHON="echo PY")
    r = subprocess.run(["bash", os.path.join(DBX, "init_install_wheel.sh")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "PIP install --no-deps %s/mla_c-0.10.0-py3-none-manylinux_2_35_x86_64.whl" % tmp_path
    assert lines[1] == "PIP install mlflow-skinny>=3,<4"
    assert lines[2] == "PY -m mla"
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run(["bash", os.path.join(DBX, "init_install_wheel.sh")],
                       env=dict(env, MLA_WHEEL_DIR=str(empty)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no mla_c-*.whl" in r.stderr
