"""Learned inpainting with the GLCIC completion network (Iizuka et al. 2017), optionally
followed by Poisson blending (the paper's post-processing)."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch
from torch import Tensor

from fastinpaint._deprecated import deprecated_alias
from fastinpaint.methods import learned
from fastinpaint.nn.glcic import GLCIC

__all__ = ["inpaint_glcic", "BLEND_MODES"]

_Weights = Union[str, os.PathLike, GLCIC, None]

#: Accepted values of ``blend``.
BLEND_MODES = (None, "none", "poisson")
#: ``border_blend``, ``blend_floor``, ``net_size`` and ``correct_offset`` of :func:`inpaint_glcic`
#: for the bundled network (its defaults with the bundled weights, as for the PConvUNet;
#: docs/model_card_glcic.md). Other weights get none of the corrections unless asked.
BORDER_BLEND = 16.0
BLEND_FLOOR = 0.5
NET_SIZE = 256
CORRECT_OFFSET = True


def inpaint_glcic(image: Tensor, hole: Tensor, weights: _Weights = None, blend: Optional[str] = None, *,
                  seed: int = 0, source_mask: Optional[Tensor] = None, border_blend: Optional[float] = None,
                  correct_offset: Optional[bool] = None, blend_floor: Optional[float] = None,
                  net_size: Optional[int] = None, device: Union[str, torch.device, None] = None) -> Tensor:
    """Fills holes with a GLCIC completion network and composites the result.

    The network sees the image with its holes set to its ``fill_mean`` plus the hole mask; it runs
    in eval mode under ``torch.inference_mode`` in float32 on ``device`` (default the image's; padded
    internally to a multiple of 4). Its prediction is clamped to [0, 1], corrected and composited:
    **known pixels are returned exactly as given**. The corrections (both on by default; see
    :func:`fastinpaint.methods.learned.offset_correct` and :func:`~fastinpaint.methods.learned.border_blend`):
    the network's colour offset, measured on the hole's first rings against the biharmonic fill, is
    extrapolated into the hole and removed (``correct_offset``); then the fill is blended toward the biharmonic
    fill near the hole border (``border_blend``). With ``blend="poisson"`` the raw prediction is
    instead Poisson-blended into the image over the hole (:func:`fastinpaint.blending.poisson_blend`,
    the paper's post-processing; slower on large holes) and clamped to [0, 1] before compositing.

    This is the method behind ``fastinpaint.inpaint(image, mask, method="glcic")``, which hands it
    ``(C, H, W)`` colour in [0, 1] and an ``(H, W)`` bool hole whatever the input's type; called
    directly it also takes batches.

    Args:
        image: float ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], ``C`` = the network's channels (a
            gray ``C = 1`` image given to an RGB network runs as RGB, its fill averaged back).
        hole: **non-zero = hole**; ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` (or ``(1, 1, H, W)``
            for the whole batch); any dtype.
        weights: None (the compact network bundled with the package), a checkpoint path written
            by :meth:`fastinpaint.nn.GLCIC.save` (the last one loaded is cached) or a
            :class:`fastinpaint.nn.GLCIC` (not modified: its train/eval mode is restored; copied
            when it is not on ``device`` in float32).
        blend: None / ``"none"`` (compositing, after the corrections below) or ``"poisson"``
            (Poisson blending of the raw prediction; the two corrections are not applied).
        seed: unused (inference is deterministic); there for the method interface.
        source_mask: must be None (the network sees the whole image).
        border_blend: decay length (px) of the blend toward the biharmonic fill (0 = off), as
            in :func:`fastinpaint.methods.pconv.inpaint_pconv`. This and the three below: None =
            the module's constants (``BORDER_BLEND`` …) with the bundled weights, off with others.
        correct_offset: remove the network's colour offset (the bundled network's fills are
            tinted blue on large holes without it).
        blend_floor, net_size: as in :func:`fastinpaint.methods.pconv.inpaint_pconv`.
        device: where to run (default: the image's device); the result is on the image's.

    Returns:
        The composited image, same shape, dtype and device as ``image``.

    Raises:
        ValueError: shape mismatches, channel count not the network's, unknown ``blend``, bad
            ``border_blend``, a ``device`` that is neither the CPU nor CUDA.
        RuntimeError: ``device="cuda"`` where torch has no CUDA.
        FileNotFoundError / ValueError: missing or bad weights file.

    Example:
        >>> import torch
        >>> from fastinpaint.methods.glcic import inpaint_glcic
        >>> img = torch.rand(3, 37, 53); hole = torch.zeros(37, 53, dtype=torch.bool); hole[10:20, 10:30] = True
        >>> out = inpaint_glcic(img, hole, blend="poisson")     # the bundled weights (or weights=PATH)
        >>> torch.equal(out[:, ~hole], img[:, ~hole])
        True
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"inpaint_glcic: blend must be one of {BLEND_MODES}, got {blend!r}")
    learned.no_source_mask("glcic", source_mask)
    bundled = learned.is_bundled("glcic", weights)
    border_blend, blend_floor, net_size = learned.corrections(
        "inpaint_glcic", bundled, (BORDER_BLEND, BLEND_FLOOR, NET_SIZE), border_blend, blend_floor, net_size)
    correct_offset = (CORRECT_OFFSET and bundled) if correct_offset is None else bool(correct_offset)
    if not isinstance(image, Tensor) or not isinstance(hole, Tensor):
        raise TypeError("inpaint_glcic: image and hole must be torch.Tensors")
    if not image.is_floating_point():
        raise TypeError(f"inpaint_glcic: image must be a float tensor in [0, 1], got {image.dtype}")
    single = image.dim() == 3
    image_b = image.unsqueeze(0) if single else image
    if image_b.dim() != 4:
        raise ValueError(f"inpaint_glcic: image must be (N, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
    n, _, h, w = image_b.shape
    device = learned.device_of(image, device, "inpaint_glcic")
    hole_b = GLCIC._hole_batch(image_b, hole, who="inpaint_glcic")
    holes = (hole_b.to(device) != 0).expand(n, 1, h, w)
    # channels_last weights: oneDNN (and cuDNN) then convolve in that layout throughout, without
    # re-layout copies: the forward at 256 px measured 0.28 -> 0.22 s on one CPU thread.
    net = learned.network("glcic", weights, GLCIC, GLCIC.load, device, memory_format=torch.channels_last)

    def predict(x_b: Tensor) -> Tensor:
        if x_b.shape[1] != net.channels:
            raise ValueError(f"inpaint_glcic: image has {x_b.shape[1]} channels, the network takes {net.channels}")
        x_f = x_b.to(device=device, dtype=torch.float32)
        with learned.evaluating(net):
            pred = learned.at_net_size(x_f, holes, net_size, lambda x, h: net(x, h.float()).clamp_(0, 1))
        pred = pred.clone()  # an ordinary tensor outside inference mode
        if blend == "poisson":
            from fastinpaint.blending import poisson_blend

            pred = torch.stack([poisson_blend(x_f[i], pred[i], holes[i, 0]) for i in range(n)]).clamp_(0, 1)
        else:
            # one biharmonic solve and distance transform serve both corrections (their costly part)
            ref = learned.border_reference(x_f, holes) if (correct_offset or border_blend > 0) else None
            if correct_offset:
                pred = learned.offset_correct(x_f, holes, pred, ref)
            pred = learned.border_blend(x_f, holes, pred, border_blend, blend_floor, ref).clamp_(0, 1)
        return learned.composite(x_b, holes, pred)

    out = learned.gray_as_rgb(image_b, holes, net.channels, predict)
    return out[0] if single else out


inpaint_glcic_method = deprecated_alias(
    inpaint_glcic, "fastinpaint.methods.glcic.inpaint_glcic_method", "fastinpaint.methods.glcic.inpaint_glcic"
)


# The dispatcher hands it colour in [0, 1] whatever the input's dtype (see fastinpaint.inpaint).
inpaint_glcic.unit_range = True  # type: ignore[attr-defined]
# fastinpaint.hd: images up to 512 px are run whole; on larger ones each hole's crop is run at a
# long side of 384 (trained on 128-256 px crops, the network leaves a flat rectangle or streaks in
# a hole far wider than anything it saw): at 4000 px, 384 measured +0.7 dB over 512 for pconv
# (12 development pairs upscaled, scripts/eval_hd.py) and is what keeps a 12 MP photo within 3x the
# time of the same photo at 1024 px.
inpaint_glcic.working_size = 384  # type: ignore[attr-defined]
inpaint_glcic.hd_whole_size = 512  # type: ignore[attr-defined]
# ... and the photo's own full-resolution detail is copied onto its upscaled fill
# (fastinpaint.hd._scaled, patchmatch.texture_from_guide; figures in the README).
inpaint_glcic.hd_texture_from_photo = True  # type: ignore[attr-defined]
