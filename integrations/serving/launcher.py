"""SageMaker inference-container contract, runnable anywhere.

SageMaker starts the container as ``docker run <image> serve`` with the model unpacked at
``/opt/ml/model`` and sends ``GET /ping`` and ``POST /invocations`` to port 8080. This launcher does
what MLflow's own container entrypoint (``mlflow.models.container._serve_pyfunc``) does, with the
paths and ports configurable so tests can run it on a temporary directory:

* nginx listens on ``--port`` (8080) and proxies /ping and /invocations to the scoring server;
  everything else is a 404 (``nginx.conf.template``);
* the MLflow scoring server (``uvicorn mlflow.pyfunc.scoring_server.app:app``, the command
  ``scoring_server.get_cmd`` builds) listens on 127.0.0.1:``--inner-port`` (8000) with the model at
  ``--model-root`` (/opt/ml/model); no environment is created (MLFLOW_DISABLE_ENV_CREATION: the image
  has the dependencies);
* one uvicorn worker per GPU (``--workers auto``; 1 on a CPU-only host): each worker claims its own
  GPU at model load (``MLA_GPU_PER_WORKER=1``, see integrations/mlflow_mla/device.py);
* if either process exits, the other is stopped and the launcher exits with its status; SIGTERM
  (``docker stop``) stops both.

Environment overrides (as in MLflow's container): MLFLOW_MODELS_WORKERS, DISABLE_NGINX=true,
SAGEMAKER_BIND_TO_PORT; plus MLA_MODEL_ROOT.

    python -m integrations.serving.launcher serve --model-root /tmp/m --port 18080 --inner-port 18000
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TEMPLATE = os.path.join(HERE, "nginx.conf.template")
DEFAULT_MODEL_ROOT = "/opt/ml/model"


def count_gpus() -> int:
    """GPUs on this host: nvidia-smi -L if present, else torch, else 0."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import torch
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def resolve_workers(spec: str | int | None) -> tuple[int, bool]:
    """(number of workers, whether each worker pins its own GPU)."""
    spec = os.environ.get("MLFLOW_MODELS_WORKERS") or spec or "auto"
    gpus = count_gpus()
    if str(spec) == "auto":
        n = max(gpus, 1)
    else:
        n = int(spec)
        if n < 1:
            raise ValueError("workers must be >= 1")
    return n, gpus > 0 and n > 1


def render_nginx_conf(run_dir: str, port: int, inner_port: int, host: str = "0.0.0.0",
                      timeout: int = 600, access_log: str = "off") -> str:
    with open(TEMPLATE) as f:
        tmpl = string.Template(f.read())
    values = {"RUN_DIR": run_dir, "PORT": str(port), "INNER_PORT": str(inner_port),
              "LISTEN_HOST": host, "TIMEOUT": str(int(timeout)), "ACCESS_LOG": access_log}
    text = tmpl.safe_substitute(values)
    left = [k for k in values if "${%s}" % k in text]
    assert not left, left
    return text


def scoring_server_command(model_root: str, inner_port: int, workers: int, timeout: int):
    """The scoring server command and environment, built by MLflow itself (as its container does)."""
    from mlflow.pyfunc import scoring_server
    cmd, env = scoring_server.get_cmd(model_uri=model_root, port=inner_port, host="127.0.0.1",
                                      nworkers=workers, timeout=timeout)
    # Run uvicorn with this interpreter, not whatever `uvicorn` is first on PATH.
    if cmd.startswith("uvicorn "):
        cmd = "%s -m uvicorn %s" % (sys.executable, cmd[len("uvicorn "):])
    env["MLFLOW_DISABLE_ENV_CREATION"] = "true"
    env.setdefault("SERVING_ENVIRONMENT", "SageMaker")
    # the model's own code/ dir carries the integrations package, but keep the repo importable too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return cmd, env


def build_parser():
    p = argparse.ArgumentParser(prog="python -m integrations.serving.launcher",
                                description="Serve an MLflow model behind nginx, as a SageMaker container does.")
    p.add_argument("cmd", nargs="?", default="serve", choices=["serve", "train"],
                   help="what SageMaker passes to the container (only serve is implemented)")
    p.add_argument("--model-root", default=os.environ.get("MLA_MODEL_ROOT", DEFAULT_MODEL_ROOT))
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080)))
    p.add_argument("--host", default="0.0.0.0", help="nginx listen address (default 0.0.0.0)")
    p.add_argument("--inner-port", type=int, default=8000, help="scoring server port on 127.0.0.1")
    p.add_argument("--workers", default=None, help="uvicorn workers: auto (one per GPU, 1 on CPU) or N")
    p.add_argument("--timeout", type=int, default=int(os.environ.get(
        "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", 600)), help="request timeout in seconds")
    p.add_argument("--run-dir", help="nginx pid/temp files (default: a fresh temp dir)")
    p.add_argument("--no-nginx", action="store_true", default=os.environ.get("DISABLE_NGINX", "").lower() == "true",
                   help="serve the scoring server directly on --port (DISABLE_NGINX=true)")
    p.add_argument("--print-config", action="store_true", help="print the nginx config and the scoring "
                   "server command, then exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "train":
        print("error: this container only serves (train is not implemented)", file=sys.stderr)
        return 2
    workers, per_gpu = resolve_workers(args.workers)
    run_dir = args.run_dir or tempfile.mkdtemp(prefix="mla-serve-")
    os.makedirs(run_dir, exist_ok=True)
    os.chmod(run_dir, 0o755)   # nginx workers run as an unprivileged user when started as root
    inner_port = args.port if args.no_nginx else args.inner_port
    cmd, env = scoring_server_command(args.model_root, inner_port, workers, args.timeout)
    if args.no_nginx:
        cmd = cmd.replace("--host 127.0.0.1", "--host %s" % args.host)
    if per_gpu:
        env["MLA_GPU_PER_WORKER"] = "1"
        env["MLA_GPU_LOCK_DIR"] = os.path.join(run_dir, "gpu-locks")
    conf_path = os.path.join(run_dir, "nginx.conf")
    conf = render_nginx_conf(run_dir, args.port, args.inner_port, args.host, args.timeout)
    with open(conf_path, "w") as f:
        f.write(conf)
    if args.print_config:
        print(conf)
        print("# scoring server: %s" % cmd)
        print("# workers: %d (one GPU per worker: %s)" % (workers, per_gpu))
        return 0
    if not os.path.isfile(os.path.join(args.model_root, "MLmodel")):
        print("error: no MLmodel under %s" % args.model_root, file=sys.stderr)
        return 2

    procs = []
    if not args.no_nginx:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", conf_path, "-p", run_dir], start_new_session=True))
    procs.append(subprocess.Popen(["/bin/bash", "-c", "exec " + cmd], env=env, start_new_session=True))
    print("mla-serve: pid %d, port %d, model %s, %d worker(s)%s" % (
        os.getpid(), args.port, args.model_root, workers, ", one GPU each" if per_gpu else ""),
        file=sys.stderr, flush=True)

    stopping = []

    def stop(signum=None, frame=None):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = 0
    while not stopping:
        done = [p for p in procs if p.poll() is not None]
        if done:
            rc = done[0].returncode or 1
            print("mla-serve: pid %d exited with %s; stopping" % (done[0].pid, done[0].returncode),
                  file=sys.stderr, flush=True)
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return 0 if stopping else rc


if __name__ == "__main__":
    sys.exit(main())
