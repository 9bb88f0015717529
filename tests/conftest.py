"""Shared test fixtures: the backends every op is checked on.

``backend`` runs a test three ways:
  * ``cpu``            — the C++ CPU kernels;
  * ``cuda_emulated``  — the CUDA kernels themselves, compiled for the CPU (cuda_compat.h), on CPU
                         tensors: how CI tests the GPU code without a GPU;
  * ``cuda``           — a real GPU (skipped where CUDA is unavailable).
"""

from __future__ import annotations

import contextlib
import pathlib
from dataclasses import dataclass

import pytest
import torch

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
