"""Learned inpainting with the partial-convolution U-Net (Liu et al. 2018)."""

from __future__ import annotations

import copy
import os
import threading
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from fastinpaint.nn.pconv_unet import PConvUNet

__all__ = ["inpaint_pconv"]

_Weights = Union[str, os.PathLike, PConvUNet]

# The last network loaded from a path (a folder of images reloads nothing): key = (realpath,
# mtime, size, device, half).
_cache_lock = threading.Lock()
_cache: dict = {}


def _load_cached(path: Union[str, os.PathLike], device: torch.device, half: bool) -> PConvUNet:
    from fastinpaint.models import load_pconv_checkpoint

    real = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(real)
    except OSError:
        raise FileNotFoundError(f"inpaint_pconv: weights file '{os.fspath(path)}' does not exist") from None
    key = (real, st.st_mtime_ns, st.st_size, str(device), half)
    with _cache_lock:
        if key not in _cache:
            # channels_last weights to match the channels_last activations it runs on: otherwise every
            # convolution copies its weight into that layout on every call.
            net = load_pconv_checkpoint(real).to(device).to(memory_format=torch.channels_last)
            _cache.clear()
            _cache[key] = net.half() if half else net
        return _cache[key]


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


def inpaint_pconv(image: Tensor, mask: Tensor, weights: _Weights, device: Union[str, torch.device, None] = None,
                  half: bool = False) -> Tensor:
    """Fills holes with a partial-convolution U-Net and composites the result.

    The image is normalised with the network's input normalisation (ImageNet for published
    weights), laid out ``channels_last``, padded internally to a multiple of ``2**layers``, run under
    ``torch.inference_mode`` in eval mode, un-normalised, clamped to [0, 1] and composited:
    **known pixels are returned exactly as given**, holes get the network's prediction.

    Args:
        image: float ``(N, C, H, W)`` or ``(C, H, W)`` in [0, 1] (``C`` = the network's channels, 3).
        mask: **non-zero = hole** (the image-level convention; the network itself takes
            1 = valid). ``(N, 1, H, W)``, ``(N, H, W)``, ``(H, W)`` or ``(1, 1, H, W)`` for the whole
            batch; any dtype.
        weights: a checkpoint path (fastinpaint's own or the naoto0804 reimplementation's format,
            see :func:`fastinpaint.models.load_pconv_checkpoint`; the last one loaded is cached) or
            a :class:`fastinpaint.nn.PConvUNet` (not modified: its train/eval mode is restored; it is
            copied when it must change device or dtype).
        device: where to run (default: the image's device).
        half: run the network in float16 (CUDA only); results are returned in the image's dtype.

    Returns:
        The composited image, same shape, dtype and device as ``image``.

    Raises:
        ValueError: shape mismatches (mask size or batch, mask with more than one channel, image
            channels not matching the network), ``half=True`` on a non-CUDA device.
        FileNotFoundError / ValueError: bad weights file (see ``load_pconv_checkpoint``).

    Example:
        >>> img = torch.rand(1, 3, 341, 512)
        >>> hole = torch.zeros(1, 1, 341, 512); hole[..., 100:180, 200:300] = 1
        >>> out = inpaint_pconv(img, hole, weights="pconv_places.pth")
        >>> torch.equal(out[..., :100, :], img[..., :100, :])
        True
    """
    image_b, hole_b, single = _as_batch(image, mask)
    device = torch.device(device) if device is not None else image.device
    if half and device.type != "cuda":
        raise ValueError(f"inpaint_pconv: half=True needs a CUDA device (fastinpaint's CPU op is float32/float64), "
                         f"got {device}")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # so that "cuda" equals "cuda:0"
    compute_dtype = torch.float16 if half else torch.float32

    if isinstance(weights, PConvUNet):
        net = weights
        needs_copy = any(p.device != device or p.dtype != compute_dtype for p in net.parameters())
        if needs_copy:
            net = copy.deepcopy(net).to(device=device, dtype=compute_dtype)
    elif isinstance(weights, (str, os.PathLike)):
        net = _load_cached(weights, device, half)
    else:
        raise TypeError(f"inpaint_pconv: weights must be a checkpoint path or a PConvUNet, got {type(weights).__name__}")
    if image_b.shape[1] != net.in_channels:
        raise ValueError(f"inpaint_pconv: image has {image_b.shape[1]} channels, the network takes {net.in_channels}")

    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            x = image_b.to(device=device, dtype=torch.float32)
            valid = (hole_b.to(device) == 0).to(torch.float32)
            mean = torch.tensor(net.normalization["mean"], device=device).view(1, -1, 1, 1)
            std = torch.tensor(net.normalization["std"], device=device).view(1, -1, 1, 1)
            # channels_last: oneDNN/cuDNN convolve it without re-layout copies (faster, less memory)
            x = ((x - mean) / std).to(compute_dtype).contiguous(memory_format=torch.channels_last)
            pred = net(x, valid.to(compute_dtype))
            pred = (pred.float() * std + mean).clamp_(0, 1)
            filled = pred.to(device=image.device, dtype=image.dtype)
            known = valid.to(image.device).bool()
    finally:
        net.train(was_training)
    # outside inference mode, so the result is an ordinary tensor (usable later with autograd)
    out = torch.where(known, image_b, filled)
    return out[0] if single else out


def inpaint_pconv_method(image: Tensor, hole: Tensor, *, seed: int = 0, source_mask: Optional[Tensor] = None,
                         weights: Optional[_Weights] = None, half: bool = False) -> Tensor:
    """``fastinpaint.inpaint(image, mask, method="pconv", weights=PATH_OR_MODEL)``; without
    ``weights``, the bundled compact network (:func:`fastinpaint.weights.bundled_weights`).

    ``image``: ``(C, H, W)`` float in [0, 1] (the dispatcher scales integer images), C = 1 (gray,
    run as RGB and averaged back) or 3; ``hole``: ``(H, W)`` bool, True = hole. ``seed`` is unused
    (inference is deterministic).
    """
    if weights is None:
        from fastinpaint.weights import bundled_weights

        weights = bundled_weights("pconv")
    if source_mask is not None:
        raise ValueError("method 'pconv' does not take a source_mask (the network sees the whole image)")
    gray = image.shape[0] == 1
    out = inpaint_pconv(image.expand(3, -1, -1) if gray else image, hole, weights=weights, half=half)
    return out.mean(0, keepdim=True) if gray else out


inpaint_pconv_method.unit_range = True  # type: ignore[attr-defined]
