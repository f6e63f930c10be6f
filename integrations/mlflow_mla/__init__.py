"""MLflow packaging of the DeepSeek MLA model: pyfunc class, log/save helpers, device selection.

    from integrations.mlflow_mla import log_model, save_model
    save_model("ckpt/", "mla_model/")            # local directory, servable by `mlflow models serve`
    log_model("ckpt/", registered_model_name="main.default.mla")   # tracking server / Unity Catalog

Packaging helpers need mlflow; the pyfunc class and device helpers import without it.
"""
from .device import normalize_device, select_device, spark_task_gpu  # noqa: F401
from .pyfunc import MLADecodeModel, OUTPUT_COLUMNS, PARAMS, PROMPT_COLUMN  # noqa: F401


def __getattr__(name):  # lazy: packaging imports mlflow's model-saving machinery
    if name in ("log_model", "save_model", "signature", "pinned_requirements", "find_library"):
        from . import packaging
        return getattr(packaging, name)
    raise AttributeError(name)
