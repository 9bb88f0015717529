"""What every learned method shares: where its network comes from, how it runs, how its
prediction is composited.

* :func:`network` — the ``weights`` argument of a learned method resolved to a module on the
  wanted device and dtype: the bundled weights when None, a checkpoint path (loaded once and kept:
  a folder of images reloads nothing; the cache is keyed on the file's real path, modification
  time and size, so a rewritten file is read again), or a module (used as is, or a copy when it
  must change device or dtype — the caller's module is never modified);
* :func:`evaluating` — eval mode and ``torch.inference_mode`` for one forward, the module's own
  train/eval mode restored afterwards;
* :func:`composite` — the prediction in the hole, the input's own values everywhere else;
* :func:`border_blend` and :func:`offset_correct` — corrections of a prediction's systematic
  errors, both against :func:`border_reference` near the hole border (see their docstrings for what
  was measured).

``pconv.py`` and ``glcic.py`` hold only what differs: the checkpoint reader, the normalisation and
the network's call.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from typing import Callable, Iterator, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from fastinpaint.inpaint import check_device
from fastinpaint.smooth_fill import hole_distance, pushpull_fill

__all__ = ["network", "evaluating", "composite", "BorderReference", "border_reference", "border_blend",
           "offset_correct"]

_cache_lock = threading.Lock()
_cache: dict = {}  # method -> (key, module): the last network loaded from a file, per method


def network(method: str, weights: Union[str, os.PathLike, nn.Module, None], cls: type,
            load: Callable[[str], nn.Module], device: torch.device, dtype: torch.dtype = torch.float32,
            memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """The network of a learned ``method`` for ``weights`` (see the module docstring), an instance
    of ``cls``, on ``device`` in ``dtype``; ``load(path)`` reads a checkpoint file."""
    if weights is None:
        from fastinpaint.weights import bundled_weights

        weights = bundled_weights(method)
    if isinstance(weights, cls):
        if any(p.device != device or p.dtype != dtype for p in weights.parameters()):
            weights = copy.deepcopy(weights).to(device=device, dtype=dtype, memory_format=memory_format)
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"{method}: weights must be a checkpoint path or a {cls.__name__}, got {type(weights).__name__}")
    real = os.path.realpath(os.fspath(weights))
    try:
        st = os.stat(real)
    except OSError:
        raise FileNotFoundError(f"{method}: weights file '{os.fspath(weights)}' does not exist") from None
    key = (real, st.st_mtime_ns, st.st_size, str(device), dtype, memory_format)
    with _cache_lock:
        cached = _cache.get(method)
        if cached is None or cached[0] != key:
            net = load(real).to(device=device, dtype=dtype, memory_format=memory_format)
            _cache[method] = (key, net)
        return _cache[method][1]


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """Eval mode and inference mode for the block; the module's train/eval mode is restored."""
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        net.train(was_training)


def composite(image: Tensor, hole: Tensor, prediction: Tensor) -> Tensor:
    """``prediction`` where ``hole`` (broadcast over channels) is non-zero, ``image`` elsewhere, in
    the image's dtype and on its device; an ordinary tensor even when the prediction was made
    under inference mode."""
    return torch.where(hole.to(image.device) != 0, prediction.to(device=image.device, dtype=image.dtype), image)


class BorderReference(NamedTuple):
    """What both corrections compare a network's fill with near the hole border (:func:`border_reference`)."""

    smooth: Tensor  #: ``(N, C, H, W)``: the biharmonic fill of the holes, the image elsewhere
    distance: Tensor  #: ``(N, 1, H, W)`` float32: distance (px) to the nearest known pixel, 0 on known pixels


def border_reference(image: Tensor, hole: Tensor) -> BorderReference:
    """The biharmonic fill (:func:`fastinpaint.methods.biharmonic.inpaint_biharmonic`) of each
    image's holes, in the image's dtype, and each hole pixel's Euclidean distance to the nearest
    known pixel: computed once for both corrections (the solve is their costly part). An image with
    no hole or no known pixel is returned as is, with distance 0.

    Args:
        image: ``(N, C, H, W)`` float, the known pixels (hole values ignored).
        hole: ``(N, 1, H, W)``, non-zero = hole.
    """
    from fastinpaint.methods.biharmonic import inpaint_biharmonic

    smooth = image.clone()
    distance = torch.zeros(image.shape[0], 1, *image.shape[2:], device=image.device)
    for i in range(image.shape[0]):
        h = hole[i, 0].to(image.device) != 0
        if bool(h.any()) and not bool(h.all()):
            smooth[i] = inpaint_biharmonic(image[i], h)
            distance[i, 0] = hole_distance(h)
    return BorderReference(smooth, distance)


def border_blend(image: Tensor, hole: Tensor, prediction: Tensor, tau: float, floor: float = 0.0,
                 reference: Optional[BorderReference] = None) -> Tensor:
    """``prediction`` blended toward the biharmonic fill of the hole near its border.

    The compact bundled networks do not reproduce even the known pixels they predict closely
    (27–33 dB PSNR on the known pixels of the development photos), so the first pixels inside a
    hole, where a smooth interpolation of the known neighbours is accurate, carry a seam; and a
    hole a few pixels wide disappears from the mask after the first strided layer, so the network
    fills it with a colour pulled towards its input normalisation's zero (up to 47 grey levels off
    on a flat image). Inside the hole the result is ``a * smooth + (1 - a) * prediction`` with
    ``a = max(exp(-(d - 1) / tau), floor)``, ``d`` the Euclidean distance (px) to the nearest known
    pixel (1 on the hole's first ring, so ``a = 1`` there) and ``smooth`` the biharmonic fill
    (:func:`fastinpaint.methods.biharmonic.inpaint_biharmonic`); ``tau <= 0`` returns
    ``prediction`` unchanged. Outside the hole the prediction is returned as it is (the caller
    composites).

    Args:
        image: ``(N, C, H, W)`` float, the known pixels (hole values ignored).
        hole: ``(N, 1, H, W)``, non-zero = hole.
        prediction: ``(N, C, H, W)``, the network's output in the image's value range.
        tau: decay length of the blend in pixels.
        floor: the smooth fill's least weight, deep in wide holes (0: the network's fill alone
            there). Two different estimates averaged err less than either where both are weak.
        reference: :func:`border_reference` of ``image`` and ``hole`` if the caller already has it.
    """
    if tau <= 0:
        return prediction
    if reference is None:
        reference = border_reference(image.to(prediction.dtype), hole)
    smooth = reference.smooth.to(prediction.dtype)
    a = torch.exp(-(reference.distance - 1).clamp_min(0) / float(tau)).clamp_min(float(floor)).to(prediction.dtype)
    # where the reference is the image itself (no hole, or no known pixel) the prediction stays
    fill = hole.to(image.device) != 0
    fill &= (reference.distance > 0)
    return torch.where(fill, a * smooth + (1 - a) * prediction, prediction)


def is_bundled(method: str, weights) -> bool:
    """Whether ``weights`` (a learned method's argument) are the bundled network: None, or a path
    to the bundled file. The inference corrections' defaults were measured for those weights only."""
    if weights is None:
        return True
    if not isinstance(weights, (str, os.PathLike)):
        return False
    from fastinpaint.weights import bundled_weights

    try:
        return os.path.realpath(os.fspath(weights)) == os.path.realpath(bundled_weights(method))
    except (OSError, ValueError):
        return False


def corrections(who: str, bundled: bool, defaults: Tuple[float, float, int], border_blend, blend_floor,
                net_size) -> Tuple[float, float, int]:
    """The inference corrections ``(border_blend, blend_floor, net_size)``: each the caller's value,
    else the bundled network's default (``defaults``) for the bundled weights and 0 (off) for any
    other weights; checked, with one-line errors."""
    d_blend, d_floor, d_size = defaults if bundled else (0.0, 0.0, 0)
    return (check_border_blend(who, d_blend if border_blend is None else border_blend),
            check_fraction(who, "blend_floor", d_floor if blend_floor is None else blend_floor),
            check_net_size(who, d_size if net_size is None else net_size))


def check_border_blend(who: str, tau) -> float:
    """``tau`` of :func:`border_blend` as a float; a one-line error for a bad value."""
    import math

    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 0:
        raise ValueError(f"{who}: border_blend must be a finite number of pixels >= 0 (0 = off), got {tau!r}")
    return float(tau)


def check_fraction(who: str, name: str, value) -> float:
    """A weight in [0, 1] as a float; a one-line error for a bad value."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{who}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_net_size(who: str, size) -> int:
    """``net_size`` as an int (0 = the image's own size); a one-line error for a bad value."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or 0 < size < 16:
        raise ValueError(f"{who}: net_size must be 0 (full size) or a longer side of at least 16 px, got {size!r}")
    return size


def at_net_size(image: Tensor, hole: Tensor, net_size: int, run: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``run(image, hole)`` (a network's raw prediction, ``(N, C, H, W)``, hole ``(N, 1, H, W)``
    non-zero = hole) on the image area-downscaled so that its longer side is at most ``net_size``
    (0: as it is), the hole following (a low-resolution pixel is a hole if any of its pixels is),
    and the prediction upsampled bilinearly back.

    Why: the compact networks were trained on 128-px crops, so a hole much wider than that is
    outside anything they saw; on 512-px photos they filled a centred 25 % square up to 16 grey
    levels too dark, and run at 256 px they beat Telea there (docs/model_card_pconv.md). Only the
    interior of a wide hole keeps the network's fill: :func:`border_blend` at full resolution
    replaces it near the hole border, where the low resolution would blur.
    """
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    if net_size == 0 or max(h, w) <= net_size:
        return run(image, hole)
    s = net_size / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    small = F.interpolate(image, size=size, mode="area")
    # "any hole pixel": the max over each source window (adaptive pooling covers every pixel)
    small_hole = F.adaptive_max_pool2d((hole != 0).to(image.dtype), size) > 0
    pred = run(small * ~small_hole, small_hole)
    return F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)


#: Width (px) of the band of the hole, along its border, where :func:`offset_correct` measures the
#: network's offset: the first rings, where the smooth fill of the known neighbours is accurate
#: (:func:`border_blend` gives it a weight of at least 0.93 there at the bundled tau of 16).
OFFSET_BAND = 2.0


def offset_correct(image: Tensor, hole: Tensor, prediction: Tensor,
                   reference: Optional[BorderReference] = None) -> Tensor:
    """``prediction`` plus its own colour offset measured along the hole border, extrapolated
    smoothly into the hole.

    A network whose fill carries a colour offset that varies slowly over the image (the bundled
    GLCIC fills large holes up to 16 grey levels too blue at 256 px) shows it already on the hole's
    first rings, where the truth is well known: there the biharmonic fill of the known neighbours
    (``reference.smooth``) is accurate. The residual ``smooth - prediction`` on the hole pixels within
    ``OFFSET_BAND`` px of a known pixel is filled into the rest of the hole by push-pull (known
    averages from ever coarser scales, upsampled: the smooth fill PatchMatch starts from) and added.
    Known pixels are returned as predicted (the caller composites).

    Why not the network's error on the known pixels it also predicts, as this correction did
    first: a completion network's loss covers the hole only, so its outputs there are untrained:
    the bundled GLCIC's were off by -30 / -16 / -6 grey levels (R / G / B) on average over the
    held-out photos' known pixels (-77 in red on ``moss``), nothing like its error in the hole, and
    adding that residual turned a -2.6 red cast into -9.5 at 512 px.

    Args:
        image, hole, prediction: as :func:`border_blend`.
        reference: :func:`border_reference` of ``image`` and ``hole`` if the caller already has it.
    """
    if reference is None:
        reference = border_reference(image.to(prediction.dtype), hole)
    smooth = reference.smooth.to(prediction.dtype)
    out = prediction.clone()
    for i in range(image.shape[0]):
        h = hole[i, 0].to(image.device) != 0
        d = reference.distance[i, 0]
        if not bool(h.any()) or bool(h.all()):
            continue
        band = h & (d <= OFFSET_BAND)
        residual = torch.where(band, smooth[i] - prediction[i], torch.zeros_like(prediction[i]))
        out[i] = torch.where(h, prediction[i] + pushpull_fill(residual, band), prediction[i])
    return out


def device_of(image: Tensor, device: Union[str, torch.device, None], who: str) -> torch.device:
    """Where a learned method runs: ``device``, default the image's, checked as
    :func:`fastinpaint.inpaint` checks its own (one-line errors naming ``who``); ``"cuda"`` made
    explicit (``cuda:N``, the current device) so that it names one cache entry."""
    device = check_device(device, who) if device is not None else image.device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def no_source_mask(method: str, source_mask: Optional[Tensor]) -> None:
    if source_mask is not None:
        raise ValueError(f"method '{method}' does not take a source_mask (the network sees the whole image)")


def gray_as_rgb(image: Tensor, hole: Tensor, channels: int, predict: Callable[[Tensor], Tensor]) -> Tensor:
    """Runs ``predict`` (image → composited image) on ``image`` ``(..., C, H, W)``; a gray image
    given to a 3-channel network runs as RGB and its fill is averaged back to one channel (known
    pixels stay the input's own)."""
    if image.shape[-3] == 1 and channels == 3:
        rgb = predict(image.expand(*image.shape[:-3], 3, *image.shape[-2:]))
        return composite(image, hole, rgb.mean(-3, keepdim=True))
    return predict(image)
