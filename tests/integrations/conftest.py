"""pytest setup for tests/integrations: imports from <repo>/python and <repo>/integrations, plus
shared fixtures. Several engineers add fixtures here: only add, never remove or rename."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(REPO, "integrations"), os.path.join(REPO, "python")):
    if _p not in sys.path:
        sys.path.insert(0, _p)


# ---------------------------------------------------------------- deepseek_mla fixtures
@pytest.fixture(scope="session")
def dsk_tiny_ckpt(tmp_path_factory):
    """A tiny random DeepSeek-V3 checkpoint (HF format, fp32, seed 0) written once per session."""
    from deepseek_mla import write_tiny_checkpoint
    return write_tiny_checkpoint(str(tmp_path_factory.mktemp("dsk_tiny_v3")), seed=0, variant="v3")


@pytest.fixture(scope="session")
def dsk_tiny_ckpt_v2(tmp_path_factory):
    """A tiny random DeepSeek-V2(-Lite-like) checkpoint, sharded in two files (seed 1)."""
    from deepseek_mla import write_tiny_checkpoint
    return write_tiny_checkpoint(str(tmp_path_factory.mktemp("dsk_tiny_v2")), seed=1, variant="v2", shards=2)


@pytest.fixture(scope="session")
def dsk_flash_mla():
    """The flash_mla module if its native library loads and a CPU call works; else skip."""
    try:
        import flash_mla
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"flash_mla not importable ({type(e).__name__}: {e}); build libmla (make lib) "
                    "or set MLA_LIBRARY")
    import torch
    from deepseek_mla.engine import probe_mla_ops
    why = probe_mla_ops(flash_mla, torch.device("cpu"))
    if why is not None:
        pytest.skip(f"flash_mla CPU path does not run: {why}")
    return flash_mla


@pytest.fixture(scope="module")
def dsk_one_thread():
    """torch on one intra-op thread for the module (tiny matrices on a shared 2-core box: 2 threads
    are ~100x slower under load). Restored afterwards."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- MLOps fixtures (MLflow, serving, Spark)
@pytest.fixture(scope="session")
def mlops_lib():
    """Path of libmla.so for packaging (build/libmla.so, $MLA_LIBRARY, or a CPU-only build)."""
    import mlops_support
    return mlops_support.lib_path()


@pytest.fixture(scope="session")
def mlops_model_dir(tmp_path_factory, mlops_lib):
    """The tiny checkpoint packaged as an MLflow model directory (integrations.mlflow_mla.save_model)."""
    import mlops_support
    return mlops_support.saved_model(str(tmp_path_factory.mktemp("mlops")))


@pytest.fixture(scope="session")
def mlops_pyfunc(mlops_model_dir):
    """The packaged model loaded in this process (mlflow.pyfunc.load_model), for expected outputs."""
    import mlflow.pyfunc
    return mlflow.pyfunc.load_model(mlops_model_dir)


@pytest.fixture(scope="session")
def mlops_spark():
    """A local[2] Spark session shared by the Spark and Databricks tests."""
    import mlops_support
    return mlops_support.spark_session()
