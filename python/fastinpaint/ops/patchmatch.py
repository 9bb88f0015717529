"""PatchMatch nearest-neighbour fields and patch voting as PyTorch ops.

Layers, from the bottom (the op template every fastinpaint op follows: ``csrc/README.md``):

* ``torch.ops.fastinpaint.nnf`` / ``vote`` / ``valid_centres`` — schemas and kernels registered
  in C++ (``csrc/ops/patchmatch.cpp``: the CPU, CUDA or CUDA-emulated kernels, the device guard
  and the current stream);
* here: their fake kernels, so they trace under ``torch.compile``;
* :func:`nnf`, :func:`vote` and :func:`valid_centres` — the public entry points, which validate
  and normalise their arguments.

Neither op is differentiable (the field is discrete).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from fastinpaint._ext import _C

__all__ = ["nnf", "vote", "valid_centres", "check_patch_size"]

_PROPAGATIONS = ("jump", "scan")
_REDUCES = ("mean", "plurality")


# ------------------------------------------------------------------------------------------------
# fake kernels (the ops' schemas are in csrc/ops/patchmatch.cpp)
# ------------------------------------------------------------------------------------------------
@torch.library.register_fake("fastinpaint::nnf")
def _(target, source, patch_size, source_valid, source_centres, target_weight, active, init, iterations,
      propagation, max_jump, seed):
    h, w = target.shape[1:]
    return target.new_empty((h, w, 2), dtype=torch.int32), target.new_empty((h, w))


@torch.library.register_fake("fastinpaint::vote")
def _(source, field, patch_size, weight, mask, reduce="mean"):
    h, w = field.shape[:2]
    return source.new_empty((source.shape[0], h, w)), source.new_empty((h, w))


@torch.library.register_fake("fastinpaint::valid_centres")
def _(source_valid, patch_size):
    return source_valid.new_empty(source_valid.shape, dtype=torch.bool)


# ------------------------------------------------------------------------------------------------
# autograd: a backward through either op is an error, not silently no gradient
# ------------------------------------------------------------------------------------------------
def _not_differentiable(op: str):
    def backward(ctx, *grads):
        raise RuntimeError(f"fastinpaint.ops.{op} is not differentiable (a nearest-neighbour field is "
                           f"discrete); detach its inputs, or compute what needs a gradient without it")

    return backward


for _op in ("nnf", "vote"):
    # Without an autograd kernel an input that requires grad gave an output with a grad_fn whose
    # backward left the input's .grad None, with only PyTorch's generic warning
    torch.library.register_autograd(f"fastinpaint::{_op}", _not_differentiable(_op),
                                    setup_context=lambda ctx, inputs, output: None)


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check_image(t, op: str, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 3:
        raise ValueError(f"{op}: {name} must be 3-D (C, H, W), got shape {tuple(t.shape)}")
    if t.dtype != torch.float32:
        raise TypeError(f"{op}: {name} must be float32, got {t.dtype}")
    if min(t.shape) == 0:
        raise ValueError(f"{op}: {name} is empty (shape {tuple(t.shape)})")


def _check_plane(t, op: str, name: str, hw, device) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != tuple(hw):
        raise ValueError(f"{op}: {name} must have shape {tuple(hw)}, got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{op}: {name} is on {t.device} but the images are on {device}")


def check_patch_size(patch_size, op: str) -> int:
    """The patch-size rule of every PatchMatch entry point (the ops and the method): a positive odd
    int up to 255 (the C++ kernels check it again as their own contract)."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"{op}: patch_size must be a positive odd int, got {patch_size!r}")
    if patch_size > 255:
        raise ValueError(f"{op}: patch_size must be at most 255, got {patch_size}")
    return patch_size


def valid_centres(source_valid: Tensor, patch_size: int) -> Tensor:
    """Where a patch may be centred so that all its pixels are valid source pixels.

    Args:
        source_valid: ``(H, W)``, non-zero = the pixel may be copied.
        patch_size: odd patch side.

    Returns:
        ``(H, W)`` bool: True where the ``patch_size`` × ``patch_size`` patch centred there lies
        inside the image and covers valid pixels only.
    """
    check_patch_size(patch_size, "valid_centres")
    if not isinstance(source_valid, Tensor) or source_valid.dim() != 2:
        raise ValueError("valid_centres: source_valid must be a 2-D tensor (H, W)")
    return torch.ops.fastinpaint.valid_centres(source_valid, patch_size)


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def nnf(
    target: Tensor,
    source: Tensor,
    patch_size: int = 7,
    *,
    source_valid: Optional[Tensor] = None,
    source_centres: Optional[Tensor] = None,
    target_weight: Optional[Tensor] = None,
    active: Optional[Tensor] = None,
    init: Optional[Tensor] = None,
    iterations: Optional[int] = None,
    propagation: Optional[str] = None,
    max_jump: int = 0,
    seed: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Approximate nearest-neighbour field (PatchMatch, Barnes et al. 2009) from ``target``
    patches to ``source`` patches.

    For every target pixel, finds the centre of the source patch minimising the sum of squared
    differences (over all channels and the target patch's in-image pixels, each weighted by
    ``target_weight``). Random initialisation from a counter-based generator keyed on
    (seed, pixel, iteration), then ``iterations`` rounds of propagation and random search
    (radius halving from the source size to 1 pixel), SSD with early termination.

    Args:
        target: ``(C, Ht, Wt)`` float32 — any channel count (RGB, RGB + gradients, features).
        source: ``(C, Hs, Ws)`` float32 on the same device (may be the same tensor).
        patch_size: odd patch side p (patches are p × p).
        source_valid: ``(Hs, Ws)``, **non-zero = the pixel may be copied** (e.g. the known region
            in inpainting). Only patches lying fully inside the source and fully on valid pixels
            are candidates. Default: every pixel.
        source_centres: ``(Hs, Ws)`` bool, instead of ``source_valid``: the precomputed
            :func:`valid_centres` ``(source_valid, patch_size)``, for callers that match against
            one source region many times (each call would otherwise compute it again).
        target_weight: ``(Ht, Wt)`` float32 weight of each target pixel in the SSD (e.g. a
            confidence). Default: 1.
        active: ``(Ht, Wt)``, non-zero = compute this pixel's match. Inactive pixels get
            ``(-1, -1)`` and distance ``inf`` and never propagate. Default: every pixel.
        init: ``(Ht, Wt, 2)`` int32 initial field (y, x), e.g. upsampled from a coarser scale;
            entries that are not valid centres are replaced by random ones.
        iterations: propagation + random-search rounds. Default: 5 for jump flooding (each round
            is log2(n) passes), 10 for scan order (each round is one cheap pass); from a random
            start both then come within a few percent of the exact mean distance.
        propagation: ``"jump"`` — jump flooding, every round runs passes with steps n/2, …, 1,
            each trying the 8 neighbours at that distance, then random search; each pass is a
            pure function of the previous field, so CPU, CUDA and CUDA emulation give the same
            field for the same seed. ``"scan"`` — classic scan order, alternating direction each
            round, CPU only (cheaper per round). Default: ``"scan"`` on the CPU, ``"jump"``
            otherwise (and under :func:`fastinpaint.cuda_emulation`).
        max_jump: largest jump step (0 = automatic, n/2); a small value refines a good ``init``
            cheaply.
        seed: random seed.

    Returns:
        ``(field, distance)``: field ``(Ht, Wt, 2)`` int32 with the (y, x) centre of each target
        pixel's matched source patch; distance ``(Ht, Wt)`` float32, the weighted mean over the
        target patch's in-image pixels of the squared difference summed over channels.

    Example:
        >>> import torch, fastinpaint
        >>> a = torch.rand(3, 64, 64)
        >>> field, dist = fastinpaint.ops.nnf(a, a.flip(-1), patch_size=7, seed=0)
        >>> field.shape, dist.shape
        (torch.Size([64, 64, 2]), torch.Size([64, 64]))
    """
    op = "nnf"
    _check_image(target, op, "target")
    _check_image(source, op, "source")
    if target.shape[0] != source.shape[0]:
        raise ValueError(f"{op}: target has {target.shape[0]} channels but source has {source.shape[0]}")
    if target.device != source.device:
        raise ValueError(f"{op}: target is on {target.device} but source is on {source.device}")
    patch_size = check_patch_size(patch_size, op)
    hs, ws = source.shape[1:]
    if hs < patch_size or ws < patch_size:
        raise ValueError(f"{op}: the source ({hs}x{ws}) is smaller than one {patch_size}x{patch_size} patch")
    ht_wt = target.shape[1:]
    if source_valid is not None:
        _check_plane(source_valid, op, "source_valid", (hs, ws), source.device)
        source_valid = source_valid.ne(0)
    if source_centres is not None:
        if source_valid is not None:
            raise ValueError(f"{op}: pass source_valid or source_centres, not both")
        _check_plane(source_centres, op, "source_centres", (hs, ws), source.device)
        source_centres = source_centres.ne(0)
    if target_weight is not None:
        _check_plane(target_weight, op, "target_weight", ht_wt, target.device)
        target_weight = target_weight.to(torch.float32)
    if active is not None:
        _check_plane(active, op, "active", ht_wt, target.device)
        active = active.ne(0)
    if init is not None:
        if not isinstance(init, Tensor) or tuple(init.shape) != (*ht_wt, 2):
            raise ValueError(f"{op}: init must be a tensor of shape {(*ht_wt, 2)}, got {getattr(init, 'shape', init)}")
        if init.device != target.device:
            raise ValueError(f"{op}: init is on {init.device} but target is on {target.device}")
        init = init.to(torch.int32)
    # (dynamo cannot trace the pybind11 query; emulation is a test-only eager-mode switch)
    emulating = False if torch.compiler.is_compiling() else bool(_C.cuda_emulation_enabled())
    if propagation is None:
        propagation = "scan" if (target.device.type == "cpu" and not emulating) else "jump"
    if propagation not in _PROPAGATIONS:
        raise ValueError(f"{op}: propagation must be one of {_PROPAGATIONS}, got {propagation!r}")
    if propagation == "scan" and (target.device.type != "cpu" or emulating):
        raise ValueError(f"{op}: propagation='scan' is sequential and runs on the CPU only; use 'jump'")
    if iterations is None:
        iterations = 10 if propagation == "scan" else 5
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"{op}: iterations must be a non-negative int, got {iterations!r}")
    if not isinstance(max_jump, int) or max_jump < 0:
        raise ValueError(f"{op}: max_jump must be a non-negative int, got {max_jump!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{op}: seed must be an int, got {seed!r}")
    seed = seed & 0x7FFFFFFFFFFFFFFF  # the schema's int is int64; the kernels use its bits
    return torch.ops.fastinpaint.nnf(
        target, source, patch_size, source_valid, source_centres, target_weight, active, init, iterations,
        propagation, max_jump, seed,
    )


def vote(
    source: Tensor,
    field: Tensor,
    patch_size: int = 7,
    weight: Optional[Tensor] = None,
    *,
    mask: Optional[Tensor] = None,
    return_total: bool = False,
    reduce: str = "mean",
):
    """Patch voting (Wexler et al. 2007): rebuild an image from a nearest-neighbour field.

    Every pixel p becomes the weighted mean of the values that all matched patches covering it
    propose: ``out(p) = Σ_q w(q) · source(field(q) + p − q) / Σ_q w(q)`` over the pixels q with
    ``|q − p|∞ ≤ patch_size // 2`` whose field entry is valid. Computed as a gather (each output
    pixel sums its own contributions in a fixed order): deterministic, no atomics.

    With ``reduce="plurality"`` p instead copies the one source pixel proposed with the largest
    total weight ``Σ w(q)`` over the patches proposing it (coherent patches, whose matches share an
    offset, propose the same pixel): no averaging, so no blur where the proposals disagree; ties
    go to the patch met first in row order. It costs O(patch_size⁴) per pixel (the mean
    O(patch_size²)).

    Args:
        source: ``(C, Hs, Ws)`` float32.
        field: ``(H, W, 2)`` int32 as returned by :func:`nnf` (entries < 0 are skipped).
        patch_size: odd patch side used to build the field.
        weight: ``(H, W)`` float32 weight of each patch, e.g. ``exp(-distance / (2 σ²))``
            (non-positive or NaN weights are skipped). Default: 1.
        mask: ``(H, W)``, non-zero = vote this pixel; elsewhere the image and the total are 0
            (e.g. the hole, when only the hole is kept). Default: every pixel.
        return_total: also return the ``(H, W)`` total weight of each pixel.
        reduce: ``"mean"`` (default) or ``"plurality"``, see above.

    Returns:
        ``(C, H, W)`` float32 image — 0 where no patch covers the pixel — or
        ``(image, total)`` with ``return_total=True``.

    Example:
        >>> import torch, fastinpaint
        >>> a = torch.rand(3, 48, 48)
        >>> field, dist = fastinpaint.ops.nnf(a, a, patch_size=5, iterations=5)
        >>> out = fastinpaint.ops.vote(a, field, 5, torch.exp(-dist / 0.1))
        >>> out.shape
        torch.Size([3, 48, 48])
    """
    op = "vote"
    _check_image(source, op, "source")
    patch_size = check_patch_size(patch_size, op)
    if not isinstance(field, Tensor) or field.dim() != 3 or field.shape[2] != 2:
        raise ValueError(f"{op}: field must be a (H, W, 2) tensor, got {getattr(field, 'shape', field)}")
    if field.device != source.device:
        raise ValueError(f"{op}: field is on {field.device} but source is on {source.device}")
    field = field.to(torch.int32)
    if weight is not None:
        _check_plane(weight, op, "weight", field.shape[:2], source.device)
        weight = weight.to(torch.float32)
    if mask is not None:
        _check_plane(mask, op, "mask", field.shape[:2], source.device)
        mask = mask.ne(0)
    if reduce not in _REDUCES:
        raise ValueError(f"{op}: reduce must be one of {_REDUCES}, got {reduce!r}")
    out, total = torch.ops.fastinpaint.vote(source, field, patch_size, weight, mask, reduce)
    return (out, total) if return_total else out
