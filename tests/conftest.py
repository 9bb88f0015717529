"""Shared test fixtures: the backends every op is checked on.

``backend`` runs a test three ways:
  * ``cpu``            — the C++ CPU kernels;
  * ``cuda_emulated``  — the CUDA kernels themselves, compiled for the CPU (cuda_compat.h), on CPU
                         tensors: how CI tests the GPU code without a GPU;
  * ``cuda``           — a real GPU (skipped where CUDA is unavailable).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

import fastinpaint

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@dataclass
class Backend:
    name: str
    device: torch.device

    def context(self):
        return fastinpaint.cuda_emulation() if self.name == "cuda_emulated" else contextlib.nullcontext()


BACKENDS = ["cpu", "cuda_emulated", "cuda"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    name = request.param
    if name == "cuda_emulated" and not fastinpaint._C.built_with_cuda_emulation:
        pytest.skip("fastinpaint was built without CUDA emulation (FASTINPAINT_CUDA_EMULATION=OFF)")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if name == "cuda" and not fastinpaint.built_with_cuda():
        pytest.skip("fastinpaint was built without CUDA kernels")
    return Backend(name, torch.device("cuda" if name == "cuda" else "cpu"))


requires_emulation = pytest.mark.skipif(
    not fastinpaint._C.built_with_cuda_emulation, reason="built without CUDA emulation"
)


@pytest.fixture
def shared_data() -> pathlib.Path:
    """../shared/data beside the repository (the team's development photos and masks)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"development data not found at {data}")
    return data


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Eight small smooth synthetic photos for training tests (no dependency on the shared data)."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    for i in range(8):
        c = rng.random((3, 3))
        img = np.stack([c[k, 0] + c[k, 1] * xx + c[k, 2] * yy for k in range(3)], -1) / 3.0
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(d / f"img_{i}.png")
    return d


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for the module (tiny tensors: extra threads only add overhead)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_entry(rank, world, port, fn, args):
    """One spawned process: the environment torchrun would set, the gloo group, ``fn(rank, *args)``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from fastinpaint.training.distributed import cleanup, init_distributed

    init_distributed()
    try:
        fn(rank, *args)
    finally:
        cleanup()


@pytest.fixture
def run_ddp():
    """``run_ddp(fn, world, *args)``: runs ``fn(rank, *args)`` in ``world`` spawned processes joined
    in a gloo process group (``fn`` must be a module-level function, so it pickles)."""

    def run(fn, world, *args):
        mp.spawn(_ddp_entry, args=(world, _free_port(), fn, args), nprocs=world, join=True)

    return run


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory):
    """``start(*args) -> (process, url)``: a real ``fastinpaint serve --port 0 ARGS`` process, once
    it answers ``/healthz`` (its stderr in a file beside it); stopped after the module."""
    import subprocess
    import sys
    import time
    import urllib.request

    started = []
    logs = tmp_path_factory.mktemp("serve_logs")

    def start(*args, timeout=90):
        err = open(logs / f"stderr-{len(started)}.txt", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "fastinpaint.cli", "serve", "--port", "0", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        started.append((proc, err))
        line = _readline(proc, timeout)  # "fastinpaint serve: open http://127.0.0.1:PORT/"
        if "open http" not in line:
            proc.kill()
            err.seek(0)
            raise RuntimeError(f"fastinpaint serve did not start: {line!r} {err.read()[-2000:]}")
        url = line.split("open ", 1)[1].strip()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=5) as resp:
                    if resp.status == 200:
                        return proc, url
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)

    yield start
    for proc, err in started:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        err.close()


def _readline(proc, timeout: float) -> str:
    """The process's next stdout line, or "" after ``timeout`` seconds or when it exits."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    return proc.stdout.readline() if ready else ""
