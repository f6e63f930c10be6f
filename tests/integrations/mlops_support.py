"""Helpers shared by the MLOps integration tests (MLflow, serving, SageMaker, Spark, load test).

The expensive things are made once per pytest session through the conftest fixtures that call
these: the native library (build/libmla.so, or a CPU-only build into a temp dir when absent), the
tiny checkpoint packaged as an MLflow model, and the local Spark session."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
PYDIR = os.path.join(REPO, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

_state: dict = {}


def lib_path() -> str:
    """libmla.so: $MLA_LIBRARY, else <repo>/build/libmla.so, else a CPU-only build made once."""
    if "lib" in _state:
        return _state["lib"]
    for cand in (os.environ.get("MLA_LIBRARY"), os.path.join(REPO, "build", "libmla.so")):
        if cand and os.path.isfile(cand):
            _state["lib"] = os.path.abspath(cand)
            return _state["lib"]
    build = tempfile.mkdtemp(prefix="mla-test-build-")
    subprocess.run(["make", "-s", "BUILD=" + build, "MLA_CUDA=0", build + "/libmla.so"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    _state["lib"] = os.path.join(build, "libmla.so")
    return _state["lib"]


def tiny_checkpoint(root: str, seed: int = 0) -> str:
    from integrations.deepseek_mla import write_tiny_checkpoint
    return write_tiny_checkpoint(os.path.join(root, "tiny-ckpt-%d" % seed), seed=seed)


def saved_model(root: str) -> str:
    """The tiny checkpoint packaged by ``save_model`` (with its input example)."""
    from integrations.mlflow_mla import save_model
    path = os.path.join(root, "mla_model")
    save_model(tiny_checkpoint(root), path, lib_path=lib_path())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    """Environment for server subprocesses: no PYTHONPATH and no MLA_LIBRARY, so the model must
    bring its own code and native library; ``extra`` is added."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLA_LIBRARY")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Server:
    """A server subprocess in its own process group; stopped (whole group) on exit."""

    def __init__(self, argv, url, env=None, cwd=None, ready_path="/ping", timeout=180):
        self.argv, self.url, self.env, self.cwd = argv, url, env, cwd
        self.ready_path, self.timeout = ready_path, timeout
        self.log = tempfile.NamedTemporaryFile(prefix="mla-server-", suffix=".log", delete=False)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server not ready in %ds:\n%s" % (self.timeout, self.output()))

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()[-20000:]

    def stop(self, sig=signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        os.unlink(self.log.name)


def mlflow_serve(model_dir: str, port: int | None = None, workers: int = 1) -> Server:
    """``mlflow models serve`` of ``model_dir`` on 127.0.0.1 (local env: no env creation)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_dir, "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    return Server(argv, "http://127.0.0.1:%d" % port, env=clean_env(), cwd=tempfile.gettempdir())


def container_serve(model_root: str, port: int | None = None, inner_port: int | None = None,
                    workers: str = "auto", run_dir: str | None = None, **env) -> Server:
    """The SageMaker-contract launcher (nginx + scoring server) on ``model_root``."""
    port = port or free_port()
    inner_port = inner_port or free_port()
    argv = [sys.executable, "-m", "integrations.serving.launcher", "serve", "--model-root", model_root,
            "--port", str(port), "--inner-port", str(inner_port), "--host", "127.0.0.1", "--workers", workers]
    if run_dir:
        argv += ["--run-dir", run_dir]
    return Server(argv, "http://127.0.0.1:%d" % port, env=clean_env(**env), cwd=REPO)


def have_nginx() -> bool:
    return bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))


def spark_session():
    """One local Spark session per pytest process (stopped at exit)."""
    if "spark" not in _state:
        import atexit

        from pyspark.sql import SparkSession
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (SparkSession.builder.master("local[2]").appName("mla-tests")
                 .config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", "2")
                 .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                 .config("spark.driver.memory", "1g")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        _state["spark"] = spark
        atexit.register(spark.stop)
    return _state["spark"]
