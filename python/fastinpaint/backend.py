"""Which kernels this build carries, and the switch that runs the CUDA kernels on the CPU.

(Streams and devices are not handled here: each op takes the device guard and the current CUDA
stream in C++, as ATen's own kernels do.)"""

from __future__ import annotations

import contextlib
from typing import Iterator

from fastinpaint._ext import _C

__all__ = ["built_with_cuda", "cuda_emulation"]


def built_with_cuda() -> bool:
    """True when this build of fastinpaint carries CUDA kernels."""
    return bool(_C.built_with_cuda)


@contextlib.contextmanager
def cuda_emulation(enabled: bool = True) -> Iterator[None]:
    """Run fastinpaint's CUDA kernels on CPU tensors, compiled for the CPU.

    Inside this context every fastinpaint op called on CPU tensors executes the *CUDA* kernels
    (the same ``.cu`` sources, compiled by the C++ compiler through ``csrc/cuda/cuda_compat.h``,
    threads emulated, ``__syncthreads`` through fibers) instead of the CPU loops. This is how the
    test-suite checks the GPU code on machines without a GPU. It is slow; not for production.

    Example:
        >>> import torch, fastinpaint
        >>> x, mask, weight = torch.randn(1, 3, 16, 16), torch.ones(1, 1, 16, 16), torch.randn(4, 3, 3, 3)
        >>> with fastinpaint.cuda_emulation():                 # the CUDA kernels, on the CPU
        ...     out, new_mask = fastinpaint.ops.partial_conv2d(x, mask, weight, padding=1)
        >>> torch.allclose(out, fastinpaint.ops.partial_conv2d(x, mask, weight, padding=1)[0], atol=1e-5)
        True
    """
    if enabled and not _C.built_with_cuda_emulation:
        raise RuntimeError("this build of fastinpaint has no CUDA emulation (FASTINPAINT_CUDA_EMULATION=OFF)")
    previous = _C.cuda_emulation_enabled()
    _C.set_cuda_emulation(enabled)
    try:
        yield
    finally:
        _C.set_cuda_emulation(previous)
