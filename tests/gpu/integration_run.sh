#!/usr/bin/env bash
# integration_run.sh — the Python-level GPU checks, run on the lent Hopper machine after
# `make lib tests` (tests/gpu/device_run.sh build): the full spec §6 grid through flash_mla on CUDA
# tensors, the flash_mla GPU tests (CUDA-graph replay), the DeepSeek model / engine GPU tests (logits
# vs transformers on CUDA), and the served model through the GPU kernel (tools/serve_check.py).
# Output goes to $OUT (default ./device-out). Steps: grid flashmla sparse model serve serve_bf16
# (default: grid flashmla model serve).
# pytest and MLflow are not on the GPU image: carry .whl/ (see README "GPU runs"); this script
# installs whatever wheels it finds there into /tmp/site.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
steps=${*:-grid flashmla model serve}
has() { case " $steps " in *" $1 "*) return 0 ;; esac; return 1; }
rc_all=0

# One version of each package: the MLflow set first, then the pytest wheels it does not have
# (two versions of one package make pip refuse the whole install; seen on 33bfceb's run).
wheels=$(ls .whl/mlops-py312/*.whl 2>/dev/null)
for w in .whl/*.whl; do
  [ -e "$w" ] || continue
  n=$(basename "$w" | cut -d- -f1)
  ls .whl/mlops-py312/"$n"-*.whl >/dev/null 2>&1 || wheels="$wheels $w"
done
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $wheels 2>&1 | tail -3
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/python:$PWD/integrations:$PWD:${PYTHONPATH:-}
export MLA_LIBRARY=$PWD/build/libmla.so PYTHONUNBUFFERED=1 MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK=true
# the GPU image's own pytest plugins (pytest_timeout) need a newer pytest than the carried wheel
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1

run() {  # name, timeout, command...
  local name=$1 t=$2; shift 2
  local t0=$(date +%s)
  timeout "$t" "$@" 2>&1 | tee "$OUT/$name.log" | tail -12
  local r=${PIPESTATUS[0]}
  echo "== $name rc=$r ($(( $(date +%s) - t0 )) s)" | tee -a "$OUT/$name.log"
  [ "$r" = 0 ] || rc_all=1
}

has grid && MLA_GRID_SUMMARY=$OUT/grid.jsonl run pytest_grid 420 python3 -m pytest -q -s -rs tests/python/test_gpu_grid.py
has flashmla && run pytest_flash_mla_gpu 240 python3 -m pytest -q -rs tests/python/test_gpu_flash_mla.py
has sparse && run pytest_sparse_gpu 240 python3 -m pytest -q -rs tests/python/test_sparse_flash_mla.py
has model && run pytest_model_gpu 300 python3 -m pytest -q -rs tests/integrations/test_model.py \
  tests/integrations/test_engine.py tests/integrations/test_model_transformers.py
if has serve; then
  run serve_check_fp32 240 python3 tools/serve_check.py --lib build/libmla.so --expect-backend mla-gpu \
    --dtype float32 --out "$OUT/serve_check_gpu_fp32.json"
fi
has serve_bf16 && run serve_check_bf16 240 python3 tools/serve_check.py --lib build/libmla.so \
  --expect-backend mla-gpu --dtype bfloat16 --out "$OUT/serve_check_gpu_bf16.json"
exit $rc_all
