"""torch.distributed helpers: set up from ``torchrun``'s environment, rank queries."""

from __future__ import annotations

import gc
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
    """Destroys the process group, if one was initialised.

    First it frees unreachable objects: a ``DistributedDataParallel`` wrapper in a reference cycle
    (a dropped trainer) holds the group, which would then outlive ``destroy_process_group`` and be
    torn down during interpreter exit, where gloo now and then aborts the process ("terminate
    called without an active exception": 5 runs in 60 of a two-process script, none in 40 with
    the collection). Then a barrier: a rank that tears its connections down while a peer is still
    in a collective makes gloo abort that peer (SIGABRT).
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced (summed) gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes, on any device and backend.

    In training mode under a process group it all-reduces the per-channel sums (and, in the
    backward pass, their gradients), so the statistics, the running averages and the gradients
    are those one process with the whole batch would compute. Otherwise it is plain BatchNorm
    (same parameters, buffers and state-dict keys). :func:`sync_batchnorm` uses it with gloo on
    the CPU, where :class:`torch.nn.SyncBatchNorm` refuses to run (that one, with fused kernels,
    is used with NCCL).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm: expected an (N, C, ...) input, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.shape[1]], device=input.device,
                             dtype=torch.promote_types(input.dtype, torch.float32))
        dist.all_reduce(count)
        n = count[0]
        mean = _SumOverProcesses.apply(input.sum(dims)) / n  # two passes, as F.batch_norm: (x - mean)² summed
        centred = input - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(var.detach() * (n / (n - 1).clamp_min(1)), alpha=f)
        return out


def sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every BatchNorm layer computing its statistics over all processes' batches.

    Without a process group of more than one process it returns ``module`` unchanged. With NCCL
    (CUDA) it is :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; with another backend
    (gloo, on the CPU) the layers become :class:`GlobalBatchNorm`. The new layers keep the same
    ``Parameter`` objects (an optimizer built before the conversion still updates them) and
    buffers, and the same state-dict keys.
    """
    if not is_dist():
        return module
    if dist.get_backend() == "nccl":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _global_batchnorm(module)


def _global_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, (GlobalBatchNorm, torch.nn.SyncBatchNorm)):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _global_batchnorm(child))
    return module
