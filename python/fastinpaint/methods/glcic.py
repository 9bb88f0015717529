"""Learned inpainting with the GLCIC completion network (Iizuka et al. 2017), optionally
followed by Poisson blending (the paper's post-processing)."""

from __future__ import annotations

import copy
import os
import threading
from typing import Optional, Union

import torch
from torch import Tensor

from fastinpaint.nn.glcic import GLCIC

__all__ = ["inpaint_glcic", "inpaint_glcic_method", "BLEND_MODES"]

_Weights = Union[str, os.PathLike, GLCIC]

#: Accepted values of ``blend``.
BLEND_MODES = (None, "none", "poisson")

# The last network loaded from a path: key = (realpath, mtime, size).
_cache_lock = threading.Lock()
_cache: dict = {}


def _load_cached(path: Union[str, os.PathLike]) -> GLCIC:
    real = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(real)
    except OSError:
        raise FileNotFoundError(f"inpaint_glcic: weights file '{os.fspath(path)}' does not exist") from None
    key = (real, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        if key not in _cache:
            net = GLCIC.load(real)
            _cache.clear()
            _cache[key] = net
        return _cache[key]


def inpaint_glcic(image: Tensor, hole: Tensor, weights: _Weights, blend: Optional[str] = None) -> Tensor:
    """Fills holes with a GLCIC completion network and composites the result.

    The network sees the image with its holes set to its ``fill_mean`` plus the hole mask; it runs
    in eval mode under ``torch.inference_mode`` in float32 on the image's device (padded
    internally to a multiple of 4). Its prediction is clamped to [0, 1] and composited: **known
    pixels are returned exactly as given**. With ``blend="poisson"`` the prediction is
    Poisson-blended into the image over the hole (:func:`fastinpaint.methods.poisson.poisson_blend`)
    and clamped to [0, 1] before compositing.

    Args:
        image: float ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], ``C`` = the network's channels.
        hole: **non-zero = hole**; ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` (or ``(1, 1, H, W)``
            for the whole batch); any dtype.
        weights: a checkpoint path written by :meth:`fastinpaint.nn.GLCIC.save` (the last one
            loaded is cached) or a :class:`fastinpaint.nn.GLCIC` (not modified: its train/eval mode
            is restored; copied when it is not on the image's device in float32).
        blend: None / ``"none"`` (plain compositing) or ``"poisson"``.

    Returns:
        The composited image, same shape, dtype and device as ``image``.

    Raises:
        ValueError: shape mismatches, channel count not the network's, unknown ``blend``.
        FileNotFoundError / ValueError: missing or bad weights file.

    Example:
        >>> img = torch.rand(3, 37, 53); hole = torch.zeros(37, 53, dtype=torch.bool); hole[10:20, 10:30] = True
        >>> out = inpaint_glcic(img, hole, weights="glcic.pt", blend="poisson")
        >>> torch.equal(out[:, ~hole], img[:, ~hole])
        True
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"inpaint_glcic: blend must be one of {BLEND_MODES}, got {blend!r}")
    if not isinstance(image, Tensor) or not isinstance(hole, Tensor):
        raise TypeError("inpaint_glcic: image and hole must be torch.Tensors")
    if not image.is_floating_point():
        raise TypeError(f"inpaint_glcic: image must be a float tensor in [0, 1], got {image.dtype}")
    single = image.dim() == 3
    image_b = image.unsqueeze(0) if single else image
    if image_b.dim() != 4:
        raise ValueError(f"inpaint_glcic: image must be (N, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
    n, c, h, w = image_b.shape
    hole_b = GLCIC._hole_batch(image_b, hole, who="inpaint_glcic")
    holes = (hole_b.to(image.device) != 0).expand(n, 1, h, w)

    if isinstance(weights, GLCIC):
        net = weights
        if any(p.device != image.device or p.dtype != torch.float32 for p in net.parameters()):
            net = copy.deepcopy(net).to(device=image.device, dtype=torch.float32)
    elif isinstance(weights, (str, os.PathLike)):
        net = _load_cached(weights)
        if any(p.device != image.device for p in net.parameters()):
            net = copy.deepcopy(net).to(image.device)
    else:
        raise TypeError(f"inpaint_glcic: weights must be a checkpoint path or a GLCIC, got {type(weights).__name__}")
    if c != net.channels:
        raise ValueError(f"inpaint_glcic: image has {c} channels, the network takes {net.channels}")

    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            pred = net(image_b.float(), holes.float()).clamp_(0, 1)
    finally:
        net.train(was_training)
    pred = pred.clone()  # an ordinary tensor outside inference mode
    if blend == "poisson":
        from fastinpaint.methods.poisson import poisson_blend

        pred = torch.stack([poisson_blend(image_b[i].float(), pred[i], holes[i, 0]) for i in range(n)]).clamp_(0, 1)
    out = torch.where(holes, pred.to(image.dtype), image_b)
    return out[0] if single else out


def inpaint_glcic_method(image: Tensor, hole: Tensor, *, seed: int = 0, source_mask: Optional[Tensor] = None,
                         weights: Optional[_Weights] = None, blend: Optional[str] = None) -> Tensor:
    """``fastinpaint.inpaint(image, mask, method="glcic", weights=PATH_OR_MODEL, blend=None|"poisson")``;
    without ``weights``, the bundled compact network (:func:`fastinpaint.weights.bundled_weights`).

    ``image``: ``(C, H, W)`` float in [0, 1] (the dispatcher scales integer images), C = the
    network's channels, or 1 with an RGB network (run as RGB, the prediction averaged back); ``hole``: ``(H, W)`` bool, True =
    hole. ``seed`` is unused (inference is deterministic).
    """
    if weights is None:
        from fastinpaint.weights import bundled_weights

        weights = bundled_weights("glcic")
    if source_mask is not None:
        raise ValueError("method 'glcic' does not take a source_mask (the network sees the whole image)")
    net = weights if isinstance(weights, GLCIC) else _load_cached(weights) if isinstance(weights, (str, os.PathLike)) \
        else None  # (other types: inpaint_glcic names the problem)
    gray = image.shape[0] == 1 and net is not None and net.channels == 3
    out = inpaint_glcic(image.expand(3, -1, -1) if gray else image, hole, weights=weights, blend=blend)
    if gray:  # average the prediction back to one channel; known pixels stay bit-exact
        hole_b = (hole != 0).reshape(1, *image.shape[1:]).to(image.device)
        out = torch.where(hole_b, out.mean(0, keepdim=True), image)
    return out


inpaint_glcic_method.unit_range = True  # type: ignore[attr-defined]
