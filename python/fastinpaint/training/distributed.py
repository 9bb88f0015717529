"""torch.distributed helpers: set up from ``torchrun``'s environment, rank queries."""

from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.distributed as dist


def is_dist() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0 (or no process group): the only process that writes checkpoints and logs."""
    return get_rank() == 0


def init_distributed(backend: str = "auto") -> Tuple[int, int, int]:
    """Joins the process group that ``torchrun`` describes in the environment, if any.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``). With a
    world size above 1 it initialises ``torch.distributed`` — NCCL when CUDA is available, gloo
    otherwise (or ``backend``) — and selects ``cuda:LOCAL_RANK``. Does nothing when already
    initialised or when not launched by ``torchrun``.

    Returns:
        ``(rank, world_size, local_rank)``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local_rank
    if world <= 1:
        return 0, 1, 0
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), local_rank


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def cleanup() -> None:
    """Destroys the process group, if one was initialised — after a barrier: a rank that tears its
    connections down while a peer is still in a collective makes gloo abort that peer (SIGABRT)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
