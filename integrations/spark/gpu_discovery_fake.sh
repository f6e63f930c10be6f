#!/bin/bash
# Spark GPU discovery script for tests on machines without GPUs: reports MLA_FAKE_GPUS
# (default "0,1") as GPU addresses. Real clusters use their own (Databricks preconfigures it;
# standalone: $SPARK_HOME/examples/src/main/scripts/getGpusResources.sh).
addrs="${MLA_FAKE_GPUS:-0,1}"
printf '{"name": "gpu", "addresses": [%s]}\n' "$(echo "$addrs" | sed 's/[^,][^,]*/"&"/g')"
