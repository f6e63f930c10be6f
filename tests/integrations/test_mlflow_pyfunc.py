"""MLflow packaging of the DeepSeek MLA model: model layout, in-process predict against the engine,
params, the packaged native library, device choice, tracking-server logging, `mlflow models predict`."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import yaml

import mlops_support
from integrations.mlflow_mla import device as devmod
from integrations.mlflow_mla import pyfunc as pf

PROMPTS = ["hello", "The capital of France is", "def fib(n):", "abc"]


def test_model_directory_layout(mlops_model_dir):
    d = mlops_model_dir
    mlmodel = yaml.safe_load(open(os.path.join(d, "MLmodel")))
    flavor = mlmodel["flavors"]["python_function"]
    arts = flavor["artifacts"]
    assert os.path.isfile(os.path.join(d, arts["libmla"]["path"]))
    assert arts["libmla"]["path"].endswith("libmla.so")
    ckpt = os.path.join(d, arts["checkpoint"]["path"])
    assert os.path.isfile(os.path.join(ckpt, "config.json"))
    assert any(f.endswith(".safetensors") for f in os.listdir(ckpt))
    for sub in ("mla/__init__.py", "flash_mla/__init__.py", "integrations/deepseek_mla/engine.py",
                "integrations/mlflow_mla/pyfunc.py"):
        assert os.path.isfile(os.path.join(d, "code", sub)), sub
    assert not [f for f in os.listdir(os.path.join(d, "code", "mla")) if f.endswith(".so")]
    assert flavor["config"] == {"device": "auto", "max_batch_size": 32}
    # signature: one string column in, params with defaults
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert inputs == [{"type": "string", "name": "prompt", "required": True}]
    params = {p["name"]: p for p in json.loads(mlmodel["signature"]["params"])}
    assert params["max_new_tokens"]["type"] == "long" and params["max_new_tokens"]["default"] == 32
    assert params["temperature"]["type"] == "double" and params["temperature"]["default"] == 0.0
    assert set(params) == {"max_new_tokens", "temperature", "top_p", "seed", "stop_on_eos"}
    outputs = [c["name"] for c in json.loads(mlmodel["signature"]["outputs"])]
    assert outputs == list(pf.OUTPUT_COLUMNS)
    # pinned requirements: every line name==version, the runtime closure present
    reqs = [r.strip() for r in open(os.path.join(d, "requirements.txt")) if r.strip()]
    assert all("==" in r for r in reqs), reqs
    names = {r.split("==")[0] for r in reqs}
    assert {"torch", "numpy", "pandas"} <= names
    assert names & {"mlflow", "mlflow-skinny"}
    assert os.path.isfile(os.path.join(d, "python_env.yaml"))
    example = json.load(open(os.path.join(d, "serving_input_example.json")))
    assert example["dataframe_split"]["columns"] == ["prompt"]


def test_predict_equals_engine(mlops_pyfunc, mlops_model_dir):
    from integrations.deepseek_mla import Engine
    out = mlops_pyfunc.predict(pd.DataFrame({"prompt": PROMPTS}), params={"max_new_tokens": 6})
    assert list(out.columns) == list(pf.OUTPUT_COLUMNS)
    assert len(out) == len(PROMPTS)
    ckpt = os.path.join(mlops_model_dir, "artifacts", "tiny-ckpt-0")
    ref = Engine.from_checkpoint(ckpt, device="cpu").generate(PROMPTS, max_new_tokens=6)
    for row, r in zip(out.to_dict("records"), ref):
        assert list(row["token_ids"]) == r["token_ids"]
        assert row["text"] == r["text"]
        assert row["finish_reason"] == r["finish_reason"]
        assert row["n_tokens"] == len(r["token_ids"]) <= 6
        assert row["prompt_tokens"] == r["prompt_tokens"] > 0
        assert row["backend"] == "mla-cpu"


def test_params_defaults_and_sampling(mlops_pyfunc):
    df = pd.DataFrame({"prompt": ["abc"]})
    default = mlops_pyfunc.predict(df)
    assert default["n_tokens"][0] <= 32
    assert default["n_tokens"][0] == 32 or default["finish_reason"][0] == "stop"
    greedy_prefix = list(default["token_ids"][0][:4])
    short = mlops_pyfunc.predict(df, params={"max_new_tokens": 4})
    assert list(short["token_ids"][0]) == greedy_prefix[:len(short["token_ids"][0])]
    a = mlops_pyfunc.predict(df, params={"max_new_tokens": 8, "temperature": 0.9, "top_p": 0.95, "seed": 7})
    b = mlops_pyfunc.predict(df, params={"max_new_tokens": 8, "temperature": 0.9, "top_p": 0.95, "seed": 7})
    assert list(a["token_ids"][0]) == list(b["token_ids"][0])


@pytest.mark.parametrize("params,msg", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": 10**6}, "out of range"),
    ({"temperature": -1.0}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"max_new_tokens": "many"}, "must be a long"),
    ({"nonsense": 1}, "unknown params"),
])
def test_bad_params_rejected(params, msg):
    from mlflow.exceptions import MlflowException
    with pytest.raises(MlflowException, match=msg) as e:
        pf.coerce_params(params)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("inp,msg", [
    (pd.DataFrame({"prompt": [""]}), "empty"),
    (pd.DataFrame({"prompt": ["ok", 3]}), "must be a string"),
    (pd.DataFrame({"a": ["x"], "b": ["y"]}), "column 'prompt'"),
    (pd.DataFrame({"prompt": ["x" * (pf.MAX_PROMPT_CHARS + 1)]}), "limit"),
])
def test_bad_inputs_rejected(inp, msg):
    from mlflow.exceptions import MlflowException
    with pytest.raises(MlflowException, match=msg):
        pf.prompts_from_input(inp)


def test_input_shapes_accepted():
    assert pf.prompts_from_input(pd.DataFrame({"prompt": ["a", "b"]})) == ["a", "b"]
    assert pf.prompts_from_input(pd.Series(["a"])) == ["a"]
    assert pf.prompts_from_input({"prompt": ["a", "b"]}) == ["a", "b"]
    assert pf.prompts_from_input(["a"]) == ["a"]
    assert pf.prompts_from_input("a") == ["a"]
    assert pf.coerce_params(None) == {k: v[1] for k, v in pf.PARAMS.items()}


def test_packaged_library_and_code_are_used(mlops_model_dir, tmp_path):
    """A fresh interpreter with no PYTHONPATH and no MLA_LIBRARY loads the model: the code comes from
    the model's code/ directory and the native library from its artifacts."""
    script = textwrap.dedent("""
        import json, sys, mlflow.pyfunc, pandas as pd
        m = mlflow.pyfunc.load_model(sys.argv[1])
        out = m.predict(pd.DataFrame({"prompt": ["hello"]}), params={"max_new_tokens": 3})
        import mla._lib, integrations.mlflow_mla, flash_mla
        print(json.dumps({"lib": mla._lib.library_path(), "code": integrations.mlflow_mla.__file__,
                          "flash_mla": flash_mla.__file__, "backend": out["backend"][0],
                          "tokens": [int(t) for t in out["token_ids"][0]]}))
    """)
    env = mlops_support.clean_env()
    r = subprocess.run([sys.executable, "-c", script, mlops_model_dir], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert os.path.samefile(info["lib"], os.path.join(mlops_model_dir, "artifacts", "libmla.so"))
    assert info["code"].startswith(os.path.realpath(mlops_model_dir)) or "/code/" in info["code"]
    assert "/code/flash_mla/" in info["flash_mla"]
    assert info["backend"] == "mla-cpu" and len(info["tokens"]) <= 3


def test_mlflow_models_predict_cli(mlops_model_dir, mlops_pyfunc, tmp_path):
    body = {"dataframe_split": {"columns": ["prompt"], "data": [["hello"], ["abc"]]},
            "params": {"max_new_tokens": 5}}
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps(body))
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "mlflow", "models", "predict", "-m", mlops_model_dir, "-i", str(inp),
                        "-o", str(out), "-t", "json", "--env-manager", "local"],
                       env=mlops_support.clean_env(), cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    preds = json.loads(out.read_text())["predictions"]
    ref = mlops_pyfunc.predict(pd.DataFrame({"prompt": ["hello", "abc"]}), params={"max_new_tokens": 5})
    assert [p["token_ids"] for p in preds] == [list(map(int, t)) for t in ref["token_ids"]]


def test_log_and_register_with_tracking_store(tmp_path, monkeypatch, mlops_model_dir, mlops_lib, mlops_pyfunc):
    """log_model into a tracking store, register it, load it back by models:/ URI. (A file store:
    MLflow 3 wants a database or server, which mlflow-skinny does not bring; the logging code path
    is the same.)"""
    import mlflow
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from integrations.mlflow_mla import log_model
    old_t, old_r = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri = "file://" + str(tmp_path / "mlruns")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        mlflow.set_experiment("mla-test")
        ckpt = os.path.join(mlops_model_dir, "artifacts", "tiny-ckpt-0")
        with mlflow.start_run():
            info = log_model(ckpt, lib_path=mlops_lib, registered_model_name="mla-tiny", with_input_example=False)
        assert info.registered_model_version == 1
        m = mlflow.pyfunc.load_model("models:/mla-tiny/1")
        df = pd.DataFrame({"prompt": ["hello"]})
        got = m.predict(df, params={"max_new_tokens": 4})
        ref = mlops_pyfunc.predict(df, params={"max_new_tokens": 4})
        assert list(got["token_ids"][0]) == list(ref["token_ids"][0])
    finally:
        mlflow.set_tracking_uri(old_t)
        mlflow.set_registry_uri(old_r)


# ------------------------------------------------------------------------- device choice
class _Res:
    def __init__(self, addrs):
        self.addresses = addrs


class _TC:
    def __init__(self, res):
        self._res = res

    def resources(self):
        return self._res


def test_select_device_precedence(monkeypatch):
    monkeypatch.delenv("MLA_DEVICE", raising=False)
    monkeypatch.delenv("MLA_GPU_PER_WORKER", raising=False)
    assert devmod.select_device() == "auto"
    assert devmod.select_device("cpu") == "cpu"
    assert devmod.select_device(model_config={"device": "cuda:1"}) == "cuda:1"
    monkeypatch.setenv("MLA_DEVICE", "gpu:2")
    assert devmod.select_device("cpu", {"device": "cuda:1"}) == "cuda:2"
    monkeypatch.setenv("MLA_DEVICE", "auto")
    assert devmod.select_device(model_config={"device": "cpu"}) == "cpu"
    for bad in ("tpu", "cuda:x", "cuda:-1"):
        with pytest.raises(ValueError):
            devmod.normalize_device(bad)
    assert devmod.normalize_device("3") == "cuda:3" and devmod.normalize_device("cuda") == "cuda:0"


def test_select_device_from_spark_task_gpu(monkeypatch):
    """Inside a Spark task the GPU comes from TaskContext.resources()['gpu'], re-read per call."""
    pyspark = pytest.importorskip("pyspark")
    monkeypatch.delenv("MLA_DEVICE", raising=False)
    current = {"tc": _TC({"gpu": _Res(["3"])})}
    monkeypatch.setattr(pyspark.TaskContext, "get", classmethod(lambda cls: current["tc"]))
    assert devmod.spark_task_gpu() == "cuda:3"
    assert devmod.select_device() == "cuda:3"
    current["tc"] = _TC({"gpu": _Res(["5", "6"])})      # reused worker, next task
    assert devmod.select_device() == "cuda:5"
    current["tc"] = _TC({})                             # CPU-only cluster
    assert devmod.select_device() == "auto"
    current["tc"] = None                                # driver side
    assert devmod.select_device() == "auto"
    assert devmod.select_device(model_config={"device": "cpu"}) == "cpu"


def test_one_gpu_per_worker_claims(tmp_path):
    """Serving workers (separate processes) each claim a different GPU; extra ones get none;
    a claim is released when its process exits."""
    lock_dir = str(tmp_path / "locks")
    code = textwrap.dedent("""
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("device", %r)   # device.py alone: fast start
        dev = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(dev)
        print(dev.claim_worker_gpu(n_gpus=2, lock_dir=sys.argv[1]), flush=True)
        time.sleep(float(sys.argv[2]))
    """ % devmod.__file__)
    procs = [subprocess.Popen([sys.executable, "-c", code, lock_dir, "3"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    claims = sorted(p.stdout.readline().strip() for p in procs)
    assert claims == ["0", "1"]
    third = subprocess.run([sys.executable, "-c", code, lock_dir, "0"], capture_output=True, text=True)
    assert third.stdout.strip() == "None"
    for p in procs:
        p.wait(timeout=30)
    fourth = subprocess.run([sys.executable, "-c", code, lock_dir, "0"], capture_output=True, text=True)
    assert fourth.stdout.strip() == "0"
    # in-process: stable answer on repeated calls
    assert devmod.claim_worker_gpu(n_gpus=2, lock_dir=lock_dir) == 0
    assert devmod.claim_worker_gpu(n_gpus=2, lock_dir=lock_dir) == 0
    devmod.release_worker_gpu(lock_dir)


def test_engine_cached_per_device(mlops_model_dir):
    ckpt = os.path.join(mlops_model_dir, "artifacts", "tiny-ckpt-0")
    t = time.time()
    a = pf.get_engine(ckpt, "cpu")
    b = pf.get_engine(ckpt, "cpu")
    assert a is b and a.backend == "mla-cpu"
    assert time.time() - t < 120
