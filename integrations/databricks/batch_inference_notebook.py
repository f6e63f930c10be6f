# Databricks notebook source
# MAGIC %md
# MAGIC # DeepSeek MLA batch generation on a GPU cluster
# MAGIC
# MAGIC Scores a table of prompts with the MLA model registered in Unity Catalog, one GPU per Spark task
# MAGIC (`spark.task.resource.gpu.amount = 1`: 8 concurrent tasks per p5.48xlarge worker). Each task runs
# MAGIC its batches on the GPU Spark assigned to it (`TaskContext.resources()["gpu"]`), through the
# MAGIC FlashMLA-compatible kernel in libmla (`backend = mla-gpu`); without a GPU it falls back to the
# MAGIC CPU path (`mla-cpu`).
# MAGIC
# MAGIC Cluster: `integrations/databricks/cluster_p5.json`; the mla wheel comes from
# MAGIC `init_install_wheel.sh`; run this notebook from a Git folder of the repository.

# COMMAND ----------

import os
import sys
import time

try:  # a Git folder puts the repo root on sys.path; a plain workspace file may not
    import integrations.spark.batch  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "..")))

from integrations.spark import batch

# COMMAND ----------

DEFAULTS = {
    "model_uri": "models:/main.mla.deepseek_v2_lite@champion",
    "input": "main.mla.prompts",           # table name, or a path (/Volumes/..., dbfs:/..., *.parquet)
    "output": "main.mla.generations",      # table name, or a path
    "prompt_col": "prompt",
    "method": "spark_udf",                 # or predict_batch_udf
    "max_new_tokens": "64",
    "temperature": "0.0",
    "batch_size": "32",
    "partitions": "",                      # default: total GPUs (or cores) of the cluster
}


def widget(name):
    """Notebook widget value (created with its default on first run); plain defaults off Databricks."""
    try:
        dbutils.widgets.text(name, DEFAULTS[name])  # noqa: F821 - defined in Databricks notebooks
        return dbutils.widgets.get(name)  # noqa: F821
    except NameError:
        return os.environ.get("MLA_NB_" + name.upper(), DEFAULTS[name])


cfg = {k: widget(k) for k in DEFAULTS}
print(cfg)

# COMMAND ----------

spark_ = spark  # noqa: F821 - the notebook's SparkSession
sc = spark_.sparkContext
gpus_per_task = sc.getConf().get("spark.task.resource.gpu.amount", "")
print("spark.task.resource.gpu.amount =", gpus_per_task or "(unset: CPU tasks)")
partitions = int(cfg["partitions"]) if cfg["partitions"] else max(sc.defaultParallelism, 1)


def is_path(s):
    return s.startswith("/") or "://" in s or s.endswith(".parquet")


src = spark_.read.parquet(cfg["input"]) if is_path(cfg["input"]) else spark_.table(cfg["input"])
# Sort by length inside partitions: similar cache_seqlens per decode batch.
from pyspark.sql import functions as F  # noqa: E402

src = src.repartition(partitions).sortWithinPartitions(F.length(cfg["prompt_col"]))

# COMMAND ----------

t0 = time.time()
params = {"max_new_tokens": int(cfg["max_new_tokens"]), "temperature": float(cfg["temperature"])}
out = batch.score(src, cfg["model_uri"], prompt_col=cfg["prompt_col"], method=cfg["method"], params=params,
                  batch_size=int(cfg["batch_size"]))
out = out.select("*", "generation.*").drop("generation")
if is_path(cfg["output"]):
    out.write.mode("overwrite").parquet(cfg["output"])
    result = spark_.read.parquet(cfg["output"])
else:
    out.write.mode("overwrite").saveAsTable(cfg["output"])
    result = spark_.table(cfg["output"])
summary = result.groupBy("backend").agg(F.count("*").alias("rows"), F.sum("n_tokens").alias("tokens")).collect()
elapsed = time.time() - t0
print("done in %.1f s:" % elapsed, [r.asDict() for r in summary])

# COMMAND ----------

# MAGIC %md
# MAGIC `backend` says which path ran: `mla-gpu` (libmla's CUDA kernel) or `mla-cpu`. On a p5 cluster every
# MAGIC row should say `mla-gpu`; otherwise check `nvidia-smi` and `python -m mla` in the web terminal.
