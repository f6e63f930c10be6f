#!/bin/bash
# Databricks cluster-scoped init script: install the mla wheel (libmla.so with the CUDA runtime
# linked statically) on the driver and every worker before Spark starts.
# Store this file and the wheel in a Unity Catalog volume and point the cluster at it:
#   "init_scripts": [{"volumes": {"destination": "/Volumes/<catalog>/<schema>/<volume>/init_install_wheel.sh"}}]
# The wheel is taken from $MLA_WHEEL_DIR (cluster env var; default: this script's directory).
set -euo pipefail
WHEEL_DIR="${MLA_WHEEL_DIR:-$(dirname "$0")}"
shopt -s nullglob
wheels=("$WHEEL_DIR"/mla_c-*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "init_install_wheel: no mla_c-*.whl in $WHEEL_DIR" >&2
    exit 1
fi
# Newest version last in version order; install it into the cluster's Python (DBR ML: /databricks/python3).
if [ -n "${MLA_PIP:-}" ]; then
    PIP="$MLA_PIP"
elif [ -x /databricks/python3/bin/pip ]; then
    PIP=/databricks/python3/bin/pip
else
    PIP="python3 -m pip"
fi
WHEEL=$(printf '%s\n' "${wheels[@]}" | sort -V | tail -n1)
$PIP install --no-deps "$WHEEL"
# MLflow 3 for models logged with MLflow 3 (DBR 17.3+ ships it; older ML runtimes need it).
if [ "${MLA_INSTALL_MLFLOW:-1}" = "1" ]; then
    $PIP install "mlflow-skinny>=3,<4"
fi
# Show what got installed and whether the GPU path can load (driver present, CUDA runtime static).
PY="${MLA_PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x /databricks/python3/bin/python ]; then PY=/databricks/python3/bin/python; else PY=python3; fi
fi
$PY -m mla || true
