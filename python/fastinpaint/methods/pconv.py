"""Learned inpainting with the partial-convolution U-Net (Liu et al. 2018)."""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from fastinpaint._deprecated import deprecated_alias
from fastinpaint.methods import learned
from fastinpaint.nn.pconv_unet import PConvUNet

__all__ = ["inpaint_pconv"]

_Weights = Union[str, os.PathLike, PConvUNet, None]


def _load(path: str) -> PConvUNet:
    from fastinpaint.models import load_pconv_checkpoint

    return load_pconv_checkpoint(path)


def _as_batch(image: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor, bool]:
    if not isinstance(image, Tensor) or not isinstance(mask, Tensor):
        raise TypeError("inpaint_pconv: image and mask must be torch.Tensors")
    if not image.is_floating_point():
        raise TypeError(f"inpaint_pconv: image must be a float tensor in [0, 1], got {image.dtype}")
    single = image.dim() == 3
    if single:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"inpaint_pconv: image must be (N, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
    n, _, h, w = image.shape
    if mask.dim() == 2:
        mask = mask.expand(n, 1, h, w) if mask.shape == (h, w) else mask.reshape(1, 1, *mask.shape)
    elif mask.dim() == 3:
        mask = mask.unsqueeze(1) if (mask.shape[0] == n and not single) else mask.unsqueeze(0)
    if mask.dim() != 4:
        raise ValueError(f"inpaint_pconv: mask must be (N, 1, H, W), (N, H, W) or (H, W), got shape {tuple(mask.shape)}")
    if mask.shape[1] != 1:
        raise ValueError(f"inpaint_pconv: the hole mask must have 1 channel, got {mask.shape[1]} (shape "
                         f"{tuple(mask.shape)}); reduce a colour mask with mask.amax(dim=1, keepdim=True)")
    if mask.shape[2:] != image.shape[2:]:
        raise ValueError(f"inpaint_pconv: mask size {tuple(mask.shape[2:])} differs from image size {(h, w)}")
    if mask.shape[0] not in (1, n):
        raise ValueError(f"inpaint_pconv: mask batch {mask.shape[0]} differs from image batch {n}")
    return image, mask.expand(n, 1, h, w), single


#: ``border_blend``, ``blend_floor`` and ``net_size`` of :func:`inpaint_pconv` for the bundled
#: network (its defaults with the bundled weights; chosen on the development photos at 256 and
#: 512 px, docs/model_card_pconv.md). Other weights get none of the corrections unless asked.
BORDER_BLEND = 16.0
BLEND_FLOOR = 0.5
NET_SIZE = 256


def inpaint_pconv(image: Tensor, hole: Tensor, weights: _Weights = None, device: Union[str, torch.device, None] = None,
                  half: bool = False, *, seed: int = 0, source_mask: Optional[Tensor] = None,
                  border_blend: Optional[float] = None, blend_floor: Optional[float] = None,
                  net_size: Optional[int] = None) -> Tensor:
    """Fills holes with a partial-convolution U-Net and composites the result.

    The image is normalised with the network's input normalisation (ImageNet for published
    weights), laid out ``channels_last``, padded internally to a multiple of ``2**layers``, run under
    ``torch.inference_mode`` in eval mode, un-normalised, clamped to [0, 1], blended toward the biharmonic fill near the hole border
    (``border_blend``, see :func:`fastinpaint.methods.learned.border_blend`) and composited:
    **known pixels are returned exactly as given**, holes get the network's prediction.

    This is the method behind ``fastinpaint.inpaint(image, mask, method="pconv")``, which hands it
    ``(C, H, W)`` colour in [0, 1] and an ``(H, W)`` bool hole whatever the input's type; called
    directly it also takes batches.

    Args:
        image: float ``(N, C, H, W)`` or ``(C, H, W)`` in [0, 1] (``C`` = the network's channels, 3;
            a gray ``C = 1`` image runs as RGB and its fill is averaged back).
        hole: **non-zero = hole** (the image-level convention; the network itself takes
            1 = valid). ``(H, W)``, ``(N, H, W)``, ``(N, 1, H, W)`` or ``(1, 1, H, W)`` for the whole
            batch; any dtype.
        weights: None (the compact network bundled with the package,
            :func:`fastinpaint.weights.bundled_weights`), a checkpoint path (fastinpaint's own or the
            naoto0804 reimplementation's format, see :func:`fastinpaint.models.load_pconv_checkpoint`;
            the last one loaded is cached) or a :class:`fastinpaint.nn.PConvUNet` (not modified: its
            train/eval mode is restored; it is copied when it must change device or dtype).
        device: where to run (default: the image's device).
        half: run the network in float16 (CUDA only); results are returned in the image's dtype.
        seed: unused (inference is deterministic); there for the method interface.
        source_mask: must be None (the network sees the whole image).
        border_blend, blend_floor, net_size: the inference corrections (None: ``BORDER_BLEND``,
            ``BLEND_FLOOR``, ``NET_SIZE`` with the bundled weights, off — 0 — with any other).
            ``border_blend``: decay length (px) of the blend toward the biharmonic fill: weight
            ``exp(-(d - 1) / border_blend)`` at distance ``d`` from the nearest known pixel, so the
            hole's first ring is the smooth fill and the centre of a wide hole the network's.
            0 turns it off (the raw network fill). It corrects the compact networks' seam and their
            failure on holes a few pixels wide.
        blend_floor: the biharmonic fill's least weight deep in wide holes (0: the network's
            fill alone there).
        net_size: the network runs on the image area-downscaled to this longer side (its fill
            upsampled; the border blend is at full resolution); 0 = at the image's own size. The
            bundled network was trained on 128-px crops: 256 keeps wide holes at a scale it saw.
            Set 0 for networks trained on large images.

    Returns:
        The composited image, same shape, dtype and device as ``image``.

    Raises:
        ValueError: ``border_blend`` negative or not finite, ``blend_floor`` outside [0, 1],
            ``net_size`` not 0 or >= 16, shape mismatches (mask size or batch, mask with more than one channel, image
            channels not matching the network), ``half=True`` on a non-CUDA device, a ``device`` that is
            neither the CPU nor CUDA.
        RuntimeError: ``device="cuda"`` where torch has no CUDA.
        FileNotFoundError / ValueError: bad weights file (see ``load_pconv_checkpoint``).

    Example:
        >>> import torch
        >>> from fastinpaint.methods.pconv import inpaint_pconv
        >>> img = torch.rand(1, 3, 341, 512)
        >>> hole = torch.zeros(1, 1, 341, 512); hole[..., 100:180, 200:300] = 1
        >>> out = inpaint_pconv(img, hole)                       # the bundled weights
        >>> torch.equal(out[..., :100, :], img[..., :100, :])
        True
    """
    learned.no_source_mask("pconv", source_mask)
    bundled = learned.is_bundled("pconv", weights)
    border_blend, blend_floor, net_size = learned.corrections(
        "inpaint_pconv", bundled, (BORDER_BLEND, BLEND_FLOOR, NET_SIZE), border_blend, blend_floor, net_size)
    image_b, hole_b, single = _as_batch(image, hole)
    device = learned.device_of(image, device, "inpaint_pconv")
    if half and device.type != "cuda":
        raise ValueError(f"inpaint_pconv: half=True needs a CUDA device (fastinpaint's CPU op is float32/float64), "
                         f"got {device}")
    compute_dtype = torch.float16 if half else torch.float32
    # channels_last weights to match the channels_last activations it runs on: otherwise every
    # convolution copies its weight into that layout on every call.
    net = learned.network("pconv", weights, PConvUNet, _load, device, compute_dtype, torch.channels_last)

    def predict(x_b: Tensor) -> Tensor:
        if x_b.shape[1] != net.in_channels:
            raise ValueError(f"inpaint_pconv: image has {x_b.shape[1]} channels, the network takes {net.in_channels}")
        mean = torch.tensor(net.normalization["mean"], device=device).view(1, -1, 1, 1)
        std = torch.tensor(net.normalization["std"], device=device).view(1, -1, 1, 1)

        def run(x: Tensor, hole_x: Tensor) -> Tensor:
            valid = (hole_x == 0).to(compute_dtype)
            # channels_last: oneDNN/cuDNN convolve it without re-layout copies (faster, less memory)
            x = ((x - mean) / std).to(compute_dtype).contiguous(memory_format=torch.channels_last)
            return (net(x, valid).float() * std + mean).clamp_(0, 1)

        x_f = x_b.to(device=device, dtype=torch.float32)
        with learned.evaluating(net):
            pred = learned.at_net_size(x_f, hole_b.to(device), net_size, run)
        pred = learned.border_blend(x_f, hole_b.to(device), pred, border_blend, blend_floor)
        return learned.composite(x_b, hole_b, pred)

    out = learned.gray_as_rgb(image_b, hole_b, net.in_channels, predict)
    return out[0] if single else out


inpaint_pconv_method = deprecated_alias(
    inpaint_pconv, "fastinpaint.methods.pconv.inpaint_pconv_method", "fastinpaint.methods.pconv.inpaint_pconv"
)


# The dispatcher hands it colour in [0, 1] whatever the input's dtype (see fastinpaint.inpaint).
inpaint_pconv.unit_range = True  # type: ignore[attr-defined]
# fastinpaint.hd: images up to 512 px are run whole; on larger ones each hole's crop is run at a
# long side of 384 (trained on 128-256 px crops, the network leaves a flat rectangle or streaks in
# a hole far wider than anything it saw): at 4000 px, 384 measured +0.7 dB over 512 for pconv
# (12 development pairs upscaled, scripts/eval_hd.py) and is what keeps a 12 MP photo within 3x the
# time of the same photo at 1024 px.
inpaint_pconv.working_size = 384  # type: ignore[attr-defined]
inpaint_pconv.hd_whole_size = 512  # type: ignore[attr-defined]
# ... and the photo's own full-resolution detail is copied onto its upscaled fill
# (fastinpaint.hd._scaled, patchmatch.texture_from_guide; figures in the README).
inpaint_pconv.hd_texture_from_photo = True  # type: ignore[attr-defined]
