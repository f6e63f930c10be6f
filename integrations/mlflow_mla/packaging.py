"""Package a DeepSeek MLA checkpoint as an MLflow pyfunc model.

What goes into the model directory:

* ``artifacts/checkpoint/``: the Hugging Face checkpoint directory (config.json + safetensors);
* ``artifacts/libmla.so``: the native library (CPU path and, when built with CUDA, the GPU kernels);
* ``code/``: the pure-Python packages ``mla``, ``flash_mla`` and ``integrations.{deepseek_mla,mlflow_mla}``
  (prepended to ``sys.path`` when the model loads, so no install of this repo is needed to serve);
* ``requirements.txt`` / ``python_env.yaml``: exact pins of the versions used at logging time;
* ``MLmodel``: the signature (``prompt`` string column in; text/token_ids/... out; params
  max_new_tokens, temperature, top_p, seed, stop_on_eos) and ``model_config`` (device, max_batch_size).

The model is a "model from code" (``model_entry.py``), so nothing is cloudpickled.
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
import tempfile

import mlflow
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from .pyfunc import PARAMS, PROMPT_COLUMN

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ENTRY = os.path.join(HERE, "model_entry.py")

# Distributions the served model imports (its runtime closure beyond the standard library), and
# optional ones the model uses when present (pinned when installed at logging time).
RUNTIME_DISTRIBUTIONS = ("numpy", "pandas", "torch")
OPTIONAL_DISTRIBUTIONS = ("safetensors", "tokenizers")


def signature() -> ModelSignature:
    params = [ParamSpec(name, typ, default) for name, (typ, default, _, _) in PARAMS.items()]
    return ModelSignature(
        inputs=Schema([ColSpec("string", PROMPT_COLUMN)]),
        outputs=Schema([ColSpec("string", "text"), ColSpec(Array("long"), "token_ids"),
                        ColSpec("long", "n_tokens"), ColSpec("long", "prompt_tokens"),
                        ColSpec("string", "finish_reason"),
                        ColSpec("string", "backend")]),
        params=ParamSchema(params))


def input_example() -> pd.DataFrame:
    return pd.DataFrame({PROMPT_COLUMN: ["The capital of France is", "def fib(n):"]})


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned_requirements(extra: list[str] | None = None) -> list[str]:
    """Exact pins (``name==version``) of what the served model needs, from this environment."""
    reqs = []
    for mlflow_dist in ("mlflow", "mlflow-skinny"):
        v = _dist_version(mlflow_dist)
        if v:
            reqs.append("%s==%s" % (mlflow_dist, v))
            break
    else:  # pragma: no cover - mlflow imported above, so one of them is installed
        reqs.append("mlflow==%s" % mlflow.__version__)
    for name in RUNTIME_DISTRIBUTIONS:
        v = _dist_version(name)
        if v is None:
            raise RuntimeError("%s is not installed; the model needs it at serving time" % name)
        v = v.split("+")[0]   # local builds (2.x.y+cu130) pin the public version
        reqs.append("%s==%s" % (name, v))
    for name in OPTIONAL_DISTRIBUTIONS:
        v = _dist_version(name)
        if v is not None:
            reqs.append("%s==%s" % (name, v.split("+")[0]))
    return reqs + list(extra or [])


def find_library(lib_path: str | None = None) -> str:
    """The libmla.so to ship: the argument, $MLA_LIBRARY, the installed ``mla`` package's copy, or
    ``<repo>/build/libmla.so`` (the same order the ``mla`` loader uses)."""
    candidates = [lib_path, os.environ.get("MLA_LIBRARY")]
    pkg = _python_package_dir("mla")
    if pkg:
        candidates.append(os.path.join(pkg, "libmla.so"))
    candidates.append(os.path.join(REPO, "build", "libmla.so"))
    for c in candidates:
        if c and os.path.isfile(c):
            return os.path.abspath(c)
    raise FileNotFoundError("libmla.so not found (tried %s); run `make` or pass lib_path="
                            % [c for c in candidates if c])


def _python_package_dir(name: str) -> str | None:
    """Directory of the importable package ``name`` (repo python/ first, then installed)."""
    local = os.path.join(REPO, "python", name)
    if os.path.isfile(os.path.join(local, "__init__.py")):
        return local
    try:
        import importlib.util
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return None


def _stage_code(dst: str) -> list[str]:
    """Copy the Python code the model runs into ``dst``; returns the code_paths entries."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.so.*", "tests", "*.egg-info")
    paths = []
    for name in ("mla", "flash_mla"):
        src = _python_package_dir(name)
        if src is None:
            raise RuntimeError("python package %r not found (PYTHONPATH=<repo>/python or pip install .)"
                               % name)
        shutil.copytree(src, os.path.join(dst, name), ignore=ignore)
        paths.append(os.path.join(dst, name))
    integ = os.path.join(dst, "integrations")
    os.makedirs(integ)
    with open(os.path.join(integ, "__init__.py"), "w") as f:
        f.write('"""DeepSeek MLA model and its MLflow wrapper, packaged inside an MLflow model."""\n')
    for sub in ("deepseek_mla", "mlflow_mla"):
        shutil.copytree(os.path.join(REPO, "integrations", sub), os.path.join(integ, sub), ignore=ignore)
    paths.append(integ)
    return paths


def _model_kwargs(checkpoint_dir, lib_path, device, max_batch_size, extra_pip_requirements,
                  pip_requirements, stage_dir):
    if not os.path.isfile(os.path.join(checkpoint_dir, "config.json")):
        raise FileNotFoundError("%s is not a checkpoint directory (no config.json)" % checkpoint_dir)
    if REPO not in sys.path:   # model_entry.py imports integrations.mlflow_mla at logging time too
        sys.path.insert(0, REPO)
    return dict(
        python_model=ENTRY,
        artifacts={"checkpoint": os.path.abspath(checkpoint_dir), "libmla": find_library(lib_path)},
        code_paths=_stage_code(stage_dir),
        pip_requirements=pip_requirements or pinned_requirements(extra_pip_requirements),
        signature=signature(),
        input_example=input_example(),
        model_config={"device": device, "max_batch_size": int(max_batch_size)},
        metadata={"mla_library": "libmla", "task": "llm/v1/completions-like"},
    )


def save_model(checkpoint_dir: str, path: str, *, lib_path: str | None = None, device: str = "auto",
               max_batch_size: int = 32, extra_pip_requirements: list[str] | None = None,
               pip_requirements: list[str] | None = None, with_input_example: bool = True):
    """Write the model to the local directory ``path`` (what SageMaker gets as /opt/ml/model).
    With the input example MLflow runs the model once on it while saving (a smoke test) and
    stores ``serving_input_example.json``."""
    with tempfile.TemporaryDirectory(prefix="mla-code-") as stage:
        kw = _model_kwargs(checkpoint_dir, lib_path, device, max_batch_size, extra_pip_requirements,
                           pip_requirements, stage)
        if not with_input_example:
            kw.pop("input_example")
        mlflow.pyfunc.save_model(path, **kw)
    return path


def log_model(checkpoint_dir: str, name: str = "model", *, lib_path: str | None = None,
              device: str = "auto", max_batch_size: int = 32,
              registered_model_name: str | None = None,
              extra_pip_requirements: list[str] | None = None,
              pip_requirements: list[str] | None = None, with_input_example: bool = True):
    """Log the model to the active MLflow run (tracking server, file store or Databricks) and
    optionally register it (``registered_model_name``; ``catalog.schema.model`` for Unity Catalog).
    Returns MLflow's ModelInfo."""
    with tempfile.TemporaryDirectory(prefix="mla-code-") as stage:
        kw = _model_kwargs(checkpoint_dir, lib_path, device, max_batch_size, extra_pip_requirements,
                           pip_requirements, stage)
        if not with_input_example:
            kw.pop("input_example")
        return mlflow.pyfunc.log_model(name=name, registered_model_name=registered_model_name, **kw)
