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
