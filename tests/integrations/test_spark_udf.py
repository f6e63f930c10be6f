"""Spark batch inference on a real local Spark session (local[2], Java 17): mlflow.pyfunc.spark_udf
and predict_batch_udf over a DataFrame of prompts give exactly the in-process predict results; the
batch CLI writes them to parquet. (No GPU resource in local mode: the device comes from `auto`, the
CPU path; the task-GPU choice itself is tested with a TaskContext stand-in in test_mlflow_pyfunc.)"""
import os
import sys

import pandas as pd
import pytest

from integrations.spark import batch

PROMPTS = ["hello", "The capital of France is", "def fib(n):", "abc", "Once upon a time", "x", "MLA", "zz top"]


def expected(pyfunc, prompts, **params):
    out = pyfunc.predict(pd.DataFrame({"prompt": prompts}), params=params or None)
    return {p: r for p, r in zip(prompts, out.to_dict("records"))}


def rows_of(df, col="generation"):
    got = {}
    for row in df.select("prompt", col).collect():
        g = row[col].asDict()
        got[row["prompt"]] = g
    return got


def assert_same(got, want):
    assert set(got) == set(want)
    for p, w in want.items():
        g = got[p]
        assert list(g["token_ids"]) == [int(t) for t in w["token_ids"]], p
        assert g["text"] == w["text"] and g["finish_reason"] == w["finish_reason"]
        assert g["n_tokens"] == w["n_tokens"] and g["prompt_tokens"] == w["prompt_tokens"]
        assert g["backend"] == w["backend"] == "mla-cpu"


@pytest.fixture(scope="module")
def prompts_df(mlops_spark):
    return mlops_spark.createDataFrame([(p,) for p in PROMPTS], ["prompt"]).repartition(2)


def test_spark_udf_equals_in_process(prompts_df, mlops_model_dir, mlops_pyfunc):
    out = batch.score(prompts_df, mlops_model_dir, method="spark_udf", params={"max_new_tokens": 6})
    assert out.rdd.getNumPartitions() == 2
    assert_same(rows_of(out), expected(mlops_pyfunc, PROMPTS, max_new_tokens=6))


def test_predict_batch_udf_equals_in_process(prompts_df, mlops_model_dir, mlops_pyfunc):
    out = batch.score(prompts_df, mlops_model_dir, method="predict_batch_udf", batch_size=3,
                      params={"max_new_tokens": 5})
    assert_same(rows_of(out), expected(mlops_pyfunc, PROMPTS, max_new_tokens=5))


def test_spark_udf_default_params(mlops_spark, mlops_model_dir, mlops_pyfunc):
    df = mlops_spark.createDataFrame([("abc",), ("hello",)], ["prompt"])
    udf = batch.mlflow_udf(mlops_spark, mlops_model_dir)
    got = rows_of(df.withColumn("generation", udf("prompt")))
    assert_same(got, expected(mlops_pyfunc, ["abc", "hello"]))


def test_batch_cli_writes_parquet(mlops_spark, mlops_model_dir, mlops_pyfunc, tmp_path):
    src = tmp_path / "prompts.txt"
    src.write_text("\n".join(PROMPTS[:4]) + "\n")
    dst = tmp_path / "out.parquet"
    rc = batch.main(["--model-uri", mlops_model_dir, "--input", str(src), "--output", str(dst),
                     "--method", "predict_batch_udf", "--max-new-tokens", "4", "--partitions", "2"])
    assert rc == 0
    df = mlops_spark.read.parquet(str(dst))
    assert df.count() == 4
    assert_same(rows_of(df), expected(mlops_pyfunc, PROMPTS[:4], max_new_tokens=4))


def test_cli_help():
    import subprocess
    r = subprocess.run([sys.executable, "-m", "integrations.spark.batch", "--help"],
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--gpus-per-task" in r.stdout


GPU_SCHED_SCRIPT = r'''
import json, os, sys, time
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf
import pandas as pd
repo, disc = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local-cluster[1,2,1024]").appName("mla-gpu-sched")
         .config("spark.ui.enabled", "false")
         .config("spark.worker.resource.gpu.amount", "2")
         .config("spark.worker.resource.gpu.discoveryScript", disc)
         .config("spark.executor.resource.gpu.amount", "2")
         .config("spark.executor.resource.gpu.discoveryScript", disc)
         .config("spark.task.resource.gpu.amount", "1")
         .getOrCreate())

device_py = os.path.join(repo, "integrations", "mlflow_mla", "device.py")


@pandas_udf("string")
def where(s: pd.Series) -> pd.Series:
    import importlib.util, os, time
    spec = importlib.util.spec_from_file_location("mla_device", device_py)
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    t0 = time.time()
    d = dev.select_device()          # what the pyfunc model does for every batch
    time.sleep(1.5)
    return pd.Series([json.dumps([d, os.getpid(), t0, time.time()])] * len(s))

rows = spark.range(0, 12, numPartitions=6).select(where("id").alias("w")).distinct().collect()
for r in rows:
    print("ROW " + r.w, flush=True)
spark.stop()
'''


def test_one_gpu_per_task_under_spark_gpu_scheduling(tmp_path):
    """Real Spark GPU scheduling (standalone local-cluster, 2 GPUs from a discovery script, one GPU per
    task): the device the model would pick inside each task is the task's own GPU, and tasks running at
    the same time never share one. (The GPUs are addresses only: nothing runs on them here.)"""
    import json
    import subprocess
    script = tmp_path / "sched.py"
    script.write_text(GPU_SCHED_SCRIPT)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    disc = os.path.join(repo, "integrations", "spark", "gpu_discovery_fake.sh")
    env = {k: v for k, v in os.environ.items() if k not in ("MLA_DEVICE", "MLA_GPU_PER_WORKER")}
    env["PYSPARK_PYTHON"] = sys.executable
    r = subprocess.run([sys.executable, str(script), repo, disc], env=env, capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    recs = [json.loads(line[4:]) for line in r.stdout.splitlines() if line.startswith("ROW ")]
    assert len(recs) == 6
    devices = {d for d, _, _, _ in recs}
    assert devices == {"cuda:0", "cuda:1"}
    overlapping = 0
    for i, (d1, _, a1, b1) in enumerate(recs):
        for d2, _, a2, b2 in recs[i + 1:]:
            if a1 < b2 and a2 < b1:          # ran at the same time
                overlapping += 1
                assert d1 != d2
    assert overlapping >= 1, recs            # two tasks did run side by side
