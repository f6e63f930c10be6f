"""The MLflow pyfunc model around the DeepSeek MLA generation engine.

Input: a DataFrame with one string column ``prompt`` (what the scoring server builds from
``dataframe_split``, ``dataframe_records``, ``inputs`` and CSV bodies, and what ``spark_udf`` passes).
Output: one row per prompt: ``text``, ``token_ids``, ``n_tokens``, ``finish_reason``, ``backend``
(``"mla-gpu"`` when the GPU kernel ran, ``"mla-cpu"`` for the CPU path).
Params (per request): ``max_new_tokens``, ``temperature``, ``top_p``, ``seed`` (-1: none),
``stop_on_eos``.

Bad requests (empty prompt, out-of-range params) raise ``MlflowException`` with
INVALID_PARAMETER_VALUE, which the scoring server answers with HTTP 400 and the message.
"""
from __future__ import annotations

import os
import threading

import pandas as pd

try:  # mlflow is needed to serve, not to import this module for a unit test
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
    _PythonModel = mlflow.pyfunc.PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object
    MlflowException = ValueError
    INVALID_PARAMETER_VALUE = None

from .device import select_device

PROMPT_COLUMN = "prompt"
OUTPUT_COLUMNS = ("text", "token_ids", "n_tokens", "prompt_tokens", "finish_reason", "backend")

# name -> (type, default, lower bound, upper bound); the signature's ParamSchema is built from this.
PARAMS = {
    "max_new_tokens": ("long", 32, 1, 4096),
    "temperature": ("double", 0.0, 0.0, 100.0),
    "top_p": ("double", 1.0, 1e-6, 1.0),
    "seed": ("long", -1, -1, 2**63 - 1),
    "stop_on_eos": ("boolean", True, None, None),
}
MAX_PROMPT_CHARS = 1 << 16

_engines_lock = threading.Lock()
_engines: dict[tuple[str, str], object] = {}   # (checkpoint dir, device) -> Engine, per process


def _bad(msg: str):
    if INVALID_PARAMETER_VALUE is None:  # pragma: no cover
        return ValueError(msg)
    return MlflowException(msg, error_code=INVALID_PARAMETER_VALUE)


def engine_class():
    """The generation engine class from integrations/deepseek_mla."""
    try:
        from integrations.deepseek_mla import Engine
    except ImportError:
        from deepseek_mla import Engine  # integrations/ itself on sys.path
    return Engine


def get_engine(checkpoint: str, device: str, max_batch_size: int = 32, dtype: str | None = None):
    """One engine per (checkpoint, device, dtype) per process, created on first use.
    dtype: weights/activations dtype (None: the engine's default, bf16 on GPU and fp32 on CPU)."""
    key = (os.path.abspath(checkpoint), device, dtype)
    with _engines_lock:
        eng = _engines.get(key)
        if eng is None:
            kw = {"max_batch_size": max_batch_size}
            if dtype:
                kw["dtype"] = dtype
            eng = engine_class().from_checkpoint(checkpoint, device=device, **kw)
            _engines[key] = eng
        return eng


def coerce_params(params: dict | None) -> dict:
    """Defaults filled in, types and ranges checked; raises a 400-class error on bad values."""
    out = {}
    params = dict(params or {})
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise _bad("unknown params %s; supported: %s" % (unknown, sorted(PARAMS)))
    for name, (typ, default, lo, hi) in PARAMS.items():
        v = params.get(name, default)
        if v is None:
            v = default
        try:
            if typ == "long":
                if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                    raise ValueError
                v = int(v)
            elif typ == "double":
                v = float(v)
            elif typ == "boolean":
                if isinstance(v, str):
                    if v.lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    v = v.lower() in ("true", "1")
                else:
                    v = bool(v)
        except (TypeError, ValueError):
            raise _bad("param %s must be a %s, got %r" % (name, typ, params.get(name))) from None
        if lo is not None and not (lo <= v <= hi):
            raise _bad("param %s=%r is out of range [%r, %r]" % (name, v, lo, hi))
        out[name] = v
    return out


def prompts_from_input(model_input) -> list[str]:
    """The prompt strings from whatever pyfunc hands ``predict`` (DataFrame, Series, list, dict)."""
    if isinstance(model_input, pd.DataFrame):
        if PROMPT_COLUMN in model_input.columns:
            col = model_input[PROMPT_COLUMN]
        elif model_input.shape[1] == 1:
            col = model_input.iloc[:, 0]
        else:
            raise _bad("input must have a string column %r; got columns %s"
                       % (PROMPT_COLUMN, list(model_input.columns)))
        values = col.tolist()
    elif isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, dict):
        if PROMPT_COLUMN not in model_input:
            raise _bad("input must have a %r field" % PROMPT_COLUMN)
        values = model_input[PROMPT_COLUMN]
        values = [values] if isinstance(values, str) else list(values)
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        try:
            values = list(model_input)
        except TypeError:
            raise _bad("unsupported input type %s" % type(model_input).__name__) from None
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise _bad("prompt %d must be a string, got %s" % (i, type(v).__name__))
        if not v:
            raise _bad("prompt %d is empty" % i)
        if len(v) > MAX_PROMPT_CHARS:
            raise _bad("prompt %d has %d characters; the limit is %d" % (i, len(v), MAX_PROMPT_CHARS))
    return values


def outputs_frame(results: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "text": [str(r["text"]) for r in results],
        "token_ids": [[int(t) for t in r["token_ids"]] for r in results],
        "n_tokens": [len(r["token_ids"]) for r in results],
        "prompt_tokens": [int(r.get("prompt_tokens", -1)) for r in results],
        "finish_reason": [str(r["finish_reason"]) for r in results],
        "backend": [str(r["backend"]) for r in results],
    }, columns=list(OUTPUT_COLUMNS))


class MLADecodeModel(_PythonModel):
    """pyfunc model: artifacts ``checkpoint`` (HF-format directory) and ``libmla`` (native library)."""

    def load_context(self, context):
        art = context.artifacts
        lib = art.get("libmla")
        # The library shipped in the model is the one loaded, unless the operator names another.
        if lib and os.path.exists(lib) and not os.environ.get("MLA_LIBRARY"):
            os.environ["MLA_LIBRARY"] = lib
        self.checkpoint = art["checkpoint"]
        self.model_config = dict(getattr(context, "model_config", None) or {})
        # Load now (the server's /ping goes green only after this), on the device chosen at load time.
        self.load_device = select_device(model_config=self.model_config)
        self.max_batch_size = int(self.model_config.get("max_batch_size", 32))
        self.dtype = os.environ.get("MLA_DTYPE") or self.model_config.get("dtype") or None
        self.engine = get_engine(self.checkpoint, self.load_device, self.max_batch_size, self.dtype)

    def _current_engine(self):
        # Inside a Spark task the GPU can differ from batch to batch (reused Python workers).
        dev = select_device(model_config=self.model_config)
        if dev == self.load_device:
            return self.engine
        return get_engine(self.checkpoint, dev, self.max_batch_size, self.dtype)

    def predict(self, context, model_input, params=None):
        prompts = prompts_from_input(model_input)
        p = coerce_params(params)
        if not prompts:
            return outputs_frame([])
        engine = self._current_engine()
        try:
            # The engine batches continuously (max_batch_size active requests, the rest queued)
            # and serialises concurrent calls, so the whole input goes in one call.
            results = engine.generate(
                prompts, max_new_tokens=p["max_new_tokens"], temperature=p["temperature"], top_p=p["top_p"],
                seed=None if p["seed"] < 0 else p["seed"], stop_on_eos=p["stop_on_eos"])
        except ValueError as e:   # request-shaped problems (e.g. prompt + max_new_tokens too long)
            raise _bad(str(e)) from e
        return outputs_frame(results)
