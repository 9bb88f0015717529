"""The three training phases of GLCIC (Iizuka et al. 2017) as single optimisation steps.

* ``"completion"`` (phase 1): the completion network alone, with the MSE over the hole pixels;
* ``"discriminator"`` (phase 2): the context discriminator alone, with the binary cross-entropy
  of real images (label 1) and completed ones (label 0); the completion network is frozen (run
  in eval mode under ``torch.no_grad``: neither its parameters nor its BatchNorm statistics move);
* ``"joint"`` (phase 3): both, the completion network with ``MSE + alpha * adversarial`` (its
  completed images labelled real), the discriminator with ``alpha * BCE`` as in phase 2.

The discriminator sees *completed* images (prediction inside the hole, the known pixels outside)
and, for the local discriminator, a ``local_size`` patch centred on each image's hole bounding
box, shifted to lie inside the image; real images are cropped at the same place. The boxes
depend on each sample's own mask only, so they do not change with the number of processes.

Under DDP, pass the networks wrapped in ``DistributedDataParallel``: each phase runs through a
wrapper only the network it trains (the frozen completion network of phase 2 and the
discriminator judging the completion in phase 3 run unwrapped), so every wrapper's backward
reaches all of its parameters and the gradient all-reduce is exact; the MSE is normalised by
the hole pixels of the global batch, so the averaged gradient is that of one process with the
whole batch (given BatchNorm over the global batch too:
:func:`fastinpaint.training.distributed.sync_batchnorm`, as ``GLCICTrainer`` does).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from fastinpaint.training.trainer import autocast, backward_step, unpack_batch

__all__ = ["glcic_step", "hole_crop_boxes", "crop_boxes", "masked_mse", "PHASES", "DEFAULT_ALPHA"]

#: The phase names :func:`glcic_step` takes, in training order.
PHASES = ("completion", "discriminator", "joint")
#: The paper's weight of the adversarial loss.
DEFAULT_ALPHA = 4e-4


def masked_mse(pred: Tensor, target: Tensor, hole: Tensor, count: Optional[Tensor] = None) -> Tensor:
    """Mean squared error over the hole pixels only (all channels); 0 for a batch without holes.

    ``count``: the number of hole values to divide by (default this batch's; see
    :func:`_hole_count` for DDP).
    """
    weight = hole.expand_as(pred)
    return ((pred - target) ** 2 * weight).sum() / (weight.sum() if count is None else count).clamp_min(1)


def _hole_count(hole: Tensor, channels: int, completion: nn.Module) -> Optional[Tensor]:
    """Under DDP (``completion`` wrapped), the global batch's hole values per process: with it each
    process's MSE is its share of the global batch's, and DDP's gradient average is exact."""
    if not isinstance(completion, DistributedDataParallel):
        return None
    count = hole.sum() * channels
    torch.distributed.all_reduce(count)
    return count / torch.distributed.get_world_size()


def _bare(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def hole_crop_boxes(hole: Tensor, local_size: Union[int, Sequence[int]]) -> Tensor:
    """Top-left corners of ``local_size`` patches centred on each image's hole bounding box.

    Args:
        hole: ``(N, 1, H, W)`` or ``(N, H, W)``, non-zero = hole.
        local_size: patch size, int or ``(h, w)``, at most ``(H, W)``.

    Returns:
        ``(N, 2)`` int64 ``(top, left)``, clamped so that the patch lies inside the image. An
        image without a hole gets the centred patch.

    Example:
        >>> import torch
        >>> from fastinpaint.training.glcic import hole_crop_boxes
        >>> hole = torch.zeros(1, 1, 64, 64); hole[..., 0:8, 50:60] = 1
        >>> hole_crop_boxes(hole, 32).tolist()
        [[0, 32]]
    """
    if hole.dim() == 4:
        hole = hole[:, 0]
    lh, lw = (local_size, local_size) if isinstance(local_size, int) else tuple(local_size)
    n, h, w = hole.shape
    if lh > h or lw > w:
        raise ValueError(f"hole_crop_boxes: local_size {(lh, lw)} is larger than the images {(h, w)}")
    m = hole != 0
    rows, cols = m.any(2), m.any(1)  # (N, H), (N, W)
    ar_h = torch.arange(h, device=hole.device)
    ar_w = torch.arange(w, device=hole.device)
    has = rows.any(1)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1)
    cy = torch.where(has, (y0 + y1 + 1) // 2, torch.full_like(y0, h // 2))
    cx = torch.where(has, (x0 + x1 + 1) // 2, torch.full_like(x0, w // 2))
    top = (cy - lh // 2).clamp(0, h - lh)
    left = (cx - lw // 2).clamp(0, w - lw)
    return torch.stack([top, left], 1).long()


def crop_boxes(x: Tensor, boxes: Tensor, size: Union[int, Sequence[int]]) -> Tensor:
    """``(N, C, h, w)`` patches of ``x`` at the ``(top, left)`` corners ``boxes`` (differentiable)."""
    lh, lw = (size, size) if isinstance(size, int) else tuple(size)
    return torch.stack([x[i, :, t : t + lh, l : l + lw] for i, (t, l) in enumerate(boxes.tolist())])


def _set_requires_grad(module: nn.Module, flag: bool):
    previous = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(flag)
    return previous


def _restore_requires_grad(module: nn.Module, previous) -> None:
    for p, flag in zip(module.parameters(), previous):
        p.requires_grad_(flag)


def glcic_step(phase: str, batch: Any, completion: nn.Module, discriminator: nn.Module,
               opt_c: Optional[torch.optim.Optimizer], opt_d: Optional[torch.optim.Optimizer],
               alpha: float = DEFAULT_ALPHA, local_size: Union[int, Sequence[int], None] = None, *,
               scaler_c=None, scaler_d=None, amp: bool = False,
               grad_clip: Optional[float] = None) -> Dict[str, float]:
    """One optimisation step of a GLCIC training phase.

    Args:
        phase: ``"completion"`` (MSE on the hole; updates only ``completion``),
            ``"discriminator"`` (BCE real/fake; updates only ``discriminator``, the completion
            network frozen and its output detached) or ``"joint"`` (``MSE + alpha * adversarial``
            for ``completion``, ``alpha * BCE`` for ``discriminator``; updates both).
        batch: ``{"image": (N, C, H, W) in [0, 1], "mask": (N, 1, H, W), 1 = hole}`` (the trainer's
            batches) or an ``(image, mask)`` pair.
        completion: a :class:`fastinpaint.nn.GLCIC` (or any ``module(image, hole) -> image``),
            or one wrapped in ``DistributedDataParallel``.
        discriminator: a :class:`fastinpaint.nn.GLCICDiscriminator` (or any
            ``module(image, patch) -> (N, 1) logits``), or one wrapped in ``DistributedDataParallel``.
        opt_c, opt_d: the optimisers of the two networks (the one a phase does not update may be
            None).
        alpha: weight of the adversarial loss (the paper's 0.0004).
        local_size: the local discriminator's patch size; default ``discriminator.local_size``.
        scaler_c, scaler_d: AMP ``GradScaler`` of ``opt_c`` / ``opt_d`` (None: no loss scaling).
        amp: float16 autocast of the forward passes (CUDA); the losses are computed in the
            images' dtype (float32).
        grad_clip: clip each network's gradient norm to this value.

    Returns:
        The loss terms as floats: ``mse`` (phases 1 and 3), ``d_real``, ``d_fake``, ``d``
        (phases 2 and 3), ``adv`` and ``total`` (phase 3).

    Raises:
        ValueError: unknown phase, bad batch shapes, missing optimiser, images not of the
            discriminator's size.

    Example:
        >>> import torch
        >>> from fastinpaint.nn.glcic import GLCIC, GLCICDiscriminator
        >>> from fastinpaint.training.glcic import glcic_step
        >>> net, disc = GLCIC(width=8), GLCICDiscriminator(64, 32, width=4, features=16)
        >>> oc, od = torch.optim.Adam(net.parameters()), torch.optim.Adam(disc.parameters())
        >>> hole = torch.zeros(2, 1, 64, 64); hole[..., 20:40, 10:30] = 1
        >>> batch = {"image": torch.rand(2, 3, 64, 64), "mask": hole}
        >>> for phase, steps in (("completion", 3), ("discriminator", 1), ("joint", 2)):
        ...     for _ in range(steps):
        ...         logs = glcic_step(phase, batch, net, disc, oc, od)
        >>> sorted(logs)
        ['adv', 'd', 'd_fake', 'd_real', 'mse', 'total']
    """
    if phase not in PHASES:
        raise ValueError(f"glcic_step: phase must be one of {PHASES}, got {phase!r}")
    if phase in ("completion", "joint") and opt_c is None:
        raise ValueError(f"glcic_step: phase {phase!r} updates the completion network and needs opt_c")
    if phase in ("discriminator", "joint") and opt_d is None:
        raise ValueError(f"glcic_step: phase {phase!r} updates the discriminator and needs opt_d")
    image, hole = unpack_batch(batch, "glcic_step")
    hole = (hole != 0).to(image.dtype)
    disc = _bare(discriminator)
    if local_size is None:
        local_size = getattr(disc, "local_size", None)
        if local_size is None and phase != "completion":
            raise ValueError("glcic_step: pass local_size (the discriminator has no local_size attribute)")
    logs: Dict[str, float] = {}

    def complete() -> Tuple[Tensor, Tensor]:
        with autocast(amp):
            pred = completion(image, hole).to(image.dtype)
        count = _hole_count(hole, pred.shape[1], completion)
        return pred, masked_mse(pred, image, hole, count)

    if phase == "completion":
        completion.train()
        opt_c.zero_grad(set_to_none=True)
        _, loss = complete()
        backward_step(loss, opt_c, scaler_c, grad_clip)
        return {"mse": loss.item()}

    boxes = hole_crop_boxes(hole, local_size)
    real_patch = crop_boxes(image, boxes, local_size)

    def judge(net: nn.Module, images: Tensor, patches: Tensor) -> Tensor:
        with autocast(amp):
            return net(images, patches).to(images.dtype)

    def d_loss(completed: Tensor) -> Tuple[Tensor, Tensor]:
        real = judge(discriminator, image, real_patch)
        fake = judge(discriminator, completed, crop_boxes(completed, boxes, local_size))
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    if phase == "discriminator":
        frozen = _bare(completion)  # no gradients, no DDP collectives
        was_training = frozen.training
        frozen.eval()
        try:
            with torch.no_grad(), autocast(amp):
                pred = frozen(image, hole).to(image.dtype)
        finally:
            frozen.train(was_training)
        completed = torch.where(hole.bool(), pred, image)
        discriminator.train()
        opt_d.zero_grad(set_to_none=True)
        loss_real, loss_fake = d_loss(completed)
        loss = (loss_real + loss_fake) / 2
        backward_step(loss, opt_d, scaler_d, grad_clip)
        return {"d_real": loss_real.item(), "d_fake": loss_fake.item(), "d": loss.item()}

    # joint
    completion.train()
    discriminator.train()
    pred, mse = complete()
    completed = torch.where(hole.bool(), pred, image)
    # discriminator step, on the detached completion
    opt_d.zero_grad(set_to_none=True)
    loss_real, loss_fake = d_loss(completed.detach())
    loss_d = alpha * (loss_real + loss_fake) / 2
    backward_step(loss_d, opt_d, scaler_d, grad_clip)
    # completion step: MSE + alpha * (completed images judged real); no gradients into the
    # discriminator's parameters (they are not stepped here), so it runs unwrapped (no DDP sync)
    opt_c.zero_grad(set_to_none=True)
    previous = _set_requires_grad(disc, False)
    try:
        logits = judge(disc, completed, crop_boxes(completed, boxes, local_size))
    finally:
        _restore_requires_grad(disc, previous)
    adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    total = mse + alpha * adv
    backward_step(total, opt_c, scaler_c, grad_clip)
    logs.update({"mse": mse.item(), "adv": adv.item(), "total": total.item(), "d_real": loss_real.item(),
                 "d_fake": loss_fake.item(), "d": loss_d.item() / alpha if alpha else 0.0})
    return logs
