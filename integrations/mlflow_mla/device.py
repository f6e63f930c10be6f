"""Which device a model copy runs on.

Order of precedence (first that applies wins):

1. an explicit request (``MLA_DEVICE`` environment variable, then the model_config ``device`` key,
   then the caller's argument) that is not ``"auto"``;
2. the GPU that Spark gave the current task (``TaskContext.get().resources()["gpu"].addresses[0]``):
   Spark does not set ``CUDA_VISIBLE_DEVICES`` per task, and a reused Python worker may be handed a
   different GPU by its next task, so this is re-read on every batch;
3. one GPU per serving worker (``MLA_GPU_PER_WORKER=1``, set by the serving launcher): each uvicorn
   worker process claims the lowest-numbered GPU that no other worker holds, through an exclusive
   ``flock`` on ``$MLA_GPU_LOCK_DIR/gpu<N>.lock`` held for the life of the process;
4. ``"auto"``: the engine picks the GPU kernel when a usable GPU is there, else the CPU path.
"""
from __future__ import annotations

import fcntl
import os
import sys
import threading

_claim_lock = threading.Lock()
_claimed: dict[str, object] = {}   # lock dir -> (gpu index, open file) held by this process


def spark_task_gpu() -> str | None:
    """``"cuda:<addr>"`` for the GPU Spark assigned to the running task, else None.

    Only looks when pyspark is already imported (it is, inside a Spark Python worker), so serving
    processes never pay for importing pyspark."""
    if "pyspark" not in sys.modules:
        return None
    try:
        from pyspark import TaskContext
    except Exception:  # pragma: no cover - broken pyspark install
        return None
    tc = TaskContext.get()
    if tc is None:
        return None
    try:
        res = tc.resources()
    except Exception:
        return None
    gpu = res.get("gpu") if res else None
    addrs = list(getattr(gpu, "addresses", None) or [])
    if not addrs:
        return None
    return "cuda:%s" % str(addrs[0]).strip()


def gpu_count() -> int:
    """Number of CUDA devices torch can see (0 without torch or without a GPU)."""
    try:
        import torch
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def claim_worker_gpu(n_gpus: int | None = None, lock_dir: str | None = None) -> int | None:
    """Claim one GPU for this process: the lowest index whose lock file no live process holds.

    Returns the index (the same one on every later call in this process), or None when all
    ``n_gpus`` are held or there is no GPU. The lock is released when the process exits."""
    lock_dir = lock_dir or os.environ.get("MLA_GPU_LOCK_DIR") or "/tmp/mla-gpu-locks"
    with _claim_lock:
        if lock_dir in _claimed:
            return _claimed[lock_dir][0]
        n = gpu_count() if n_gpus is None else int(n_gpus)
        if n <= 0:
            return None
        os.makedirs(lock_dir, exist_ok=True)
        for i in range(n):
            f = open(os.path.join(lock_dir, "gpu%d.lock" % i), "a+")
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            f.seek(0)
            f.truncate()
            f.write("%d\n" % os.getpid())
            f.flush()
            _claimed[lock_dir] = (i, f)
            return i
        return None


def release_worker_gpu(lock_dir: str | None = None) -> None:
    """Drop this process's claim (tests; a worker keeps its claim until it exits)."""
    lock_dir = lock_dir or os.environ.get("MLA_GPU_LOCK_DIR") or "/tmp/mla-gpu-locks"
    with _claim_lock:
        entry = _claimed.pop(lock_dir, None)
    if entry is not None:
        entry[1].close()


def select_device(requested: str | None = None, model_config: dict | None = None) -> str:
    """The device string for ``Engine.from_checkpoint``: ``"auto"``, ``"cpu"`` or ``"cuda:N"``."""
    for choice in (os.environ.get("MLA_DEVICE"), (model_config or {}).get("device"), requested):
        if choice and str(choice).strip().lower() != "auto":
            return normalize_device(choice)
    task_gpu = spark_task_gpu()
    if task_gpu:
        return task_gpu
    if os.environ.get("MLA_GPU_PER_WORKER", "0") == "1":
        idx = claim_worker_gpu()
        if idx is not None:
            return "cuda:%d" % idx
    return "auto"


def normalize_device(device) -> str:
    """Accept ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``gpu``, ``gpu:N`` or a bare GPU index."""
    d = str(device).strip().lower()
    if d in ("auto", "cpu"):
        return d
    if d.isdigit():
        return "cuda:" + d
    for prefix in ("cuda", "gpu"):
        if d == prefix:
            return "cuda:0"
        if d.startswith(prefix + ":") and d[len(prefix) + 1:].isdigit():
            return "cuda:" + d[len(prefix) + 1:]
    raise ValueError("device must be 'auto', 'cpu' or 'cuda:N', got %r" % (device,))
