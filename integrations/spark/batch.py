"""Spark batch inference with the MLA MLflow model, two ways:

* ``mlflow_udf``: ``mlflow.pyfunc.spark_udf`` (MLflow loads the model once per Python worker);
* ``batch_udf``: ``pyspark.ml.functions.predict_batch_udf`` (Spark's own batching and model cache).

Both return a struct column ``text, token_ids, n_tokens, prompt_tokens, finish_reason, backend`` per
prompt. On a GPU cluster set ``spark.task.resource.gpu.amount=1`` (one GPU per task, e.g. 8 tasks on a
p5.48xlarge worker); the model then runs every batch on the GPU Spark assigned to the running task
(``TaskContext.get().resources()["gpu"].addresses[0]``, read per batch because Python workers are
reused across tasks; see integrations/mlflow_mla/device.py). Without a GPU resource (local mode, CPU
clusters) the engine picks its device itself (``auto``: CPU path here).

    python -m integrations.spark.batch --model-uri ./mla_model --input prompts.txt --output out.parquet
"""
from __future__ import annotations

import argparse
import json
import os
import sys

RESULT_DDL = ("text string, token_ids array<bigint>, n_tokens bigint, prompt_tokens bigint, "
              "finish_reason string, backend string")
RESULT_FIELDS = ("text", "token_ids", "n_tokens", "prompt_tokens", "finish_reason", "backend")


def result_type():
    from pyspark.sql.types import (ArrayType, LongType, StringType, StructField, StructType)
    return StructType([
        StructField("text", StringType()), StructField("token_ids", ArrayType(LongType())),
        StructField("n_tokens", LongType()), StructField("prompt_tokens", LongType()),
        StructField("finish_reason", StringType()), StructField("backend", StringType())])


def mlflow_udf(spark, model_uri: str, params: dict | None = None, model_config: dict | None = None):
    """``mlflow.pyfunc.spark_udf`` over the model; call it on the prompt column:
    ``df.withColumn("out", udf("prompt"))``."""
    import mlflow.pyfunc
    return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=RESULT_DDL, env_manager="local",
                                   params=params or None, model_config=model_config)


def _rows(frame) -> list[dict]:
    import numpy as np
    rows = []
    for rec in frame.to_dict("records"):
        rows.append({
            "text": rec["text"], "token_ids": np.asarray(rec["token_ids"], dtype=np.int64),
            "n_tokens": int(rec["n_tokens"]), "prompt_tokens": int(rec["prompt_tokens"]),
            "finish_reason": rec["finish_reason"], "backend": rec["backend"]})
    return rows


def make_predict_fn(model_uri: str, params: dict | None = None, model_config: dict | None = None):
    """The ``make_predict_fn`` for ``predict_batch_udf``: loads the MLflow model once per Python
    worker; the returned ``predict`` scores one numpy batch of prompt strings."""
    def make():
        import mlflow.pyfunc
        import pandas as pd
        model = mlflow.pyfunc.load_model(model_uri, model_config=model_config)

        def predict(prompts):
            frame = model.predict(pd.DataFrame({"prompt": [str(p) for p in prompts]}), params=params or None)
            return _rows(frame)
        return predict
    return make


def batch_udf(model_uri: str, params: dict | None = None, batch_size: int = 16,
              model_config: dict | None = None):
    """``predict_batch_udf`` over the model; call it on the prompt column."""
    from pyspark import cloudpickle
    from pyspark.ml.functions import predict_batch_udf
    # Ship this module's functions by value: executors need not have this repo on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return predict_batch_udf(make_predict_fn(model_uri, params, model_config), return_type=result_type(),
                             batch_size=int(batch_size))


def score(df, model_uri: str, *, prompt_col: str = "prompt", method: str = "spark_udf",
          params: dict | None = None, batch_size: int = 16, out_col: str = "generation",
          partitions: int | None = None):
    """``df`` with a struct column ``out_col``. ``partitions``: repartition first (total GPUs of
    the cluster is a good value: one partition per task slot)."""
    if partitions:
        df = df.repartition(int(partitions))
    spark = df.sparkSession
    if method == "spark_udf":
        udf = mlflow_udf(spark, model_uri, params)
    elif method == "predict_batch_udf":
        udf = batch_udf(model_uri, params, batch_size)
    else:
        raise ValueError("method must be spark_udf or predict_batch_udf")
    return df.withColumn(out_col, udf(prompt_col))


def read_prompts(spark, path: str, prompt_col: str = "prompt"):
    """Prompts from .parquet, .csv (header), .json/.jsonl (records) or a text file (one per line)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        return spark.read.parquet(path)
    if ext == ".csv":
        return spark.read.option("header", True).csv(path)
    if ext in (".json", ".jsonl"):
        return spark.read.json(path)
    return spark.read.text(path).withColumnRenamed("value", prompt_col)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m integrations.spark.batch",
                                description="Batch generation over a table of prompts with Spark.")
    p.add_argument("--model-uri", required=True)
    p.add_argument("--input", required=True, help=".parquet / .csv / .json(l) / text file of prompts")
    p.add_argument("--output", required=True, help="output parquet directory")
    p.add_argument("--prompt-col", default="prompt")
    p.add_argument("--method", choices=["spark_udf", "predict_batch_udf"], default="spark_udf")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--partitions", type=int, help="repartition to this many (e.g. total GPUs)")
    p.add_argument("--master", help="Spark master for a standalone run, e.g. local[2] "
                   "(default: the active session / spark-submit's)")
    p.add_argument("--gpus-per-task", type=float, default=None,
                   help="set spark.task.resource.gpu.amount (GPU clusters: 1)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from pyspark.sql import SparkSession
    b = SparkSession.builder.appName("mla-batch")
    if args.master:
        b = b.master(args.master)
    if args.gpus_per_task:
        b = b.config("spark.task.resource.gpu.amount", str(args.gpus_per_task))
    b = b.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    spark = b.getOrCreate()
    df = read_prompts(spark, args.input, args.prompt_col)
    out = score(df, args.model_uri, prompt_col=args.prompt_col, method=args.method,
                params={"max_new_tokens": args.max_new_tokens, "temperature": args.temperature},
                batch_size=args.batch_size, partitions=args.partitions)
    out.write.mode("overwrite").parquet(args.output)
    n = spark.read.parquet(args.output).count()
    print(json.dumps({"rows": n, "output": args.output}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
