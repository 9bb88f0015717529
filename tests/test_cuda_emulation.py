"""Every CUDA kernel of fastinpaint runs on the CPU in CI.

The .cu sources are compiled a second time by the C++ compiler through csrc/cuda/cuda_compat.h
(emulated launches; fibers for __syncthreads). The per-op tests compare the emulated kernels with
the CPU path through the ``backend`` fixture; this file makes sure no kernel escapes that: it
runs one small call of every op under emulation and checks, through the launch registry the shim
keeps, that every ``__global__`` kernel in csrc/cuda/ was actually executed.
"""

from __future__ import annotations

import re

import pytest
import torch

import fastinpaint
from fastinpaint._ext import _C
from fastinpaint.ops import nnf, partial_conv2d, vote

from conftest import REPO, requires_emulation


def cuda_kernel_names() -> set[str]:
    names = set()
    for path in sorted((REPO / "csrc" / "cuda").glob("*.cu")):
        source = path.read_text()
        names |= set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)\s*\(", source))
    return names


def smoke_partial_conv2d():
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(3, 4, 3, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    out, _ = partial_conv2d(x, (torch.rand(2, 1, 9, 9) > 0.5).float(), w, b, padding=1)
    out.sum().backward()


def smoke_patchmatch():
    target, source = torch.rand(3, 12, 14), torch.rand(3, 12, 14)
    field, _ = nnf(target, source, 3, propagation="jump", iterations=2, seed=1)
    vote(source, field, 3)


# One small call per op, enough to launch each of its kernels.
SMOKE_CALLS = [smoke_partial_conv2d, smoke_patchmatch]


# Every __global__ kernel of csrc/cuda/, by name: a new kernel must be added here and get a smoke
# call above, so that it runs under emulation in CI like all the others.
KNOWN_KERNELS = {
    "pconv_apply_mask_kernel",
    "pconv_mask_ratio_kernel",
    "pconv_forward_epilogue_kernel",
    "pconv_backward_epilogue_kernel",
    "pm_init_kernel",
    "pm_jump_kernel",
    "pm_vote_kernel",
    "pm_valid_centres_kernel",
    "pm_mean_distances_kernel",
}


def test_kernel_list_is_complete():
    assert cuda_kernel_names() == KNOWN_KERNELS


@pytest.mark.skipif(not _C.built_with_cuda_emulation, reason="built without CUDA emulation")
def test_every_cuda_kernel_runs_under_emulation():
    with fastinpaint.cuda_emulation():
        for call in SMOKE_CALLS:
            call()
    launched = set(_C.emulated_kernel_launches())
    missing = cuda_kernel_names() - launched
    assert not missing, f"CUDA kernels never executed under emulation: {sorted(missing)}"


@requires_emulation
def test_emulation_switch_is_scoped():
    assert not _C.cuda_emulation_enabled()
    with fastinpaint.cuda_emulation():
        assert _C.cuda_emulation_enabled()
    assert not _C.cuda_emulation_enabled()
