"""Image-quality metrics for inpainting: PSNR, SSIM and L1, vectorised over batches.

They are computed on the **composite** image (the method's output inside the hole, the original
outside), see :func:`composite`. All three accept NumPy arrays or torch tensors:

* NumPy: channel-last, ``(H, W)``, ``(H, W, C)`` or a batch ``(N, H, W, C)`` (scikit-image's
  layout). Returns a Python float for one image, an ``np.ndarray`` ``(N,)`` for a batch.
* torch: channel-first, ``(C, H, W)`` or ``(N, C, H, W)`` (PyTorch's layout); a 2-D tensor is
  one single-channel image. Returns a 0-d tensor for one image, ``(N,)`` for a batch (float64,
  on the input's device; no gradient is needed or kept).

The arithmetic is float64 and matches scikit-image: ``peak_signal_noise_ratio`` and
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=..., channel_axis=-1)`` (an 11×11 Gaussian window, σ = 1.5, the border of 5 pixels
left out of the mean, the mean of the per-channel SSIMs).

``data_range`` defaults to 255 for integer inputs and 1.0 for floating-point inputs.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's default: window radius int(3.5 * 1.5 + 0.5) = 5, 11x11
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _to_nchw(x: Array, name: str) -> Tuple[torch.Tensor, bool, bool]:
    """Returns (float64 NCHW tensor, was_numpy, was_batched)."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.array(x, dtype=np.float64))  # a writable float64 copy
        if t.dim() == 2:
            return t[None, None].to(torch.float64), True, False
        if t.dim() == 3:
            return t.permute(2, 0, 1)[None].to(torch.float64), True, False
        if t.dim() == 4:
            return t.permute(0, 3, 1, 2).to(torch.float64), True, True
        raise ValueError(f"{name}: expected a NumPy array (H, W), (H, W, C) or (N, H, W, C), got shape {x.shape}")
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dim() == 2:
            return t[None, None].to(torch.float64), False, False
        if t.dim() == 3:
            return t[None].to(torch.float64), False, False
        if t.dim() == 4:
            return t.to(torch.float64), False, True
        raise ValueError(f"{name}: expected a tensor (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    raise TypeError(f"{name}: expected a NumPy array or a torch tensor, got {type(x).__name__}")


def _default_range(x: Array) -> float:
    if isinstance(x, np.ndarray):
        integer = np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_
    else:
        integer = not (x.dtype.is_floating_point or x.dtype.is_complex)
    if integer and x.dtype in (np.uint8, torch.uint8):
        return 255.0
    if integer:
        raise ValueError("data_range is required for integer images other than uint8")
    return 1.0


def _prepare(a: Array, b: Array, data_range: Optional[float]):
    if type(a) is not type(b) and not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        raise TypeError(f"both images must be NumPy arrays or both torch tensors, got {type(a).__name__} "
                        f"and {type(b).__name__}")
    ta, numpy_in, batched = _to_nchw(a, "image_true")
    tb, _, _ = _to_nchw(b, "image_test")
    if ta.shape != tb.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    tb = tb.to(ta.device)
    rng = float(data_range) if data_range is not None else _default_range(a)
    if rng <= 0:
        raise ValueError(f"data_range must be positive, got {rng}")
    return ta, tb, rng, numpy_in, batched


def _out(v: torch.Tensor, numpy_in: bool, batched: bool):
    if numpy_in:
        arr = v.cpu().numpy()
        return arr if batched else float(arr[0])
    return v if batched else v[0]


def mse(image_true: Array, image_test: Array) -> Array:
    """Mean squared error per image (float64). Layouts as in the module docstring."""
    ta, tb, _, numpy_in, batched = _prepare(image_true, image_test, 1.0)
    return _out(((ta - tb) ** 2).flatten(1).mean(1), numpy_in, batched)


def l1(image_true: Array, image_test: Array, data_range: Optional[float] = None, normalize: bool = True) -> Array:
    """Mean absolute error per image.

    Args:
        image_true, image_test: same shape; layouts as in the module docstring.
        data_range: value range of the images (default 255 for uint8, 1.0 for floats).
        normalize: divide by ``data_range`` (so that uint8 and [0, 1] inputs give the same
            number, in [0, 1]); False gives the error in the images' own units.

    Returns:
        float / ``(N,)`` array for NumPy inputs; 0-d / ``(N,)`` float64 tensor for torch inputs.

    Example:
        >>> l1(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.5))
        0.5
    """
    ta, tb, rng, numpy_in, batched = _prepare(image_true, image_test, data_range)
    v = (ta - tb).abs().flatten(1).mean(1)
    return _out(v / rng if normalize else v, numpy_in, batched)


def psnr(image_true: Array, image_test: Array, data_range: Optional[float] = None) -> Array:
    """Peak signal-to-noise ratio in dB per image: ``10·log10(data_range² / MSE)``.

    Matches ``skimage.metrics.peak_signal_noise_ratio(image_true, image_test, data_range=...)``
    (``inf`` for identical images).

    Args:
        image_true, image_test: same shape; layouts as in the module docstring.
        data_range: value range (default 255 for uint8, 1.0 for floats).

    Returns:
        float / ``(N,)`` array for NumPy inputs; 0-d / ``(N,)`` float64 tensor for torch inputs.

    Example:
        >>> round(psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)), 6)
        20.0
    """
    ta, tb, rng, numpy_in, batched = _prepare(image_true, image_test, data_range)
    err = ((ta - tb) ** 2).flatten(1).mean(1)
    return _out(10.0 * torch.log10(rng * rng / err), numpy_in, batched)


def _gaussian_window(sigma: float, truncate: float, device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D correlation of ``x`` with ``g`` along ``dim``, "valid" part only, as k shifted FMAs.

    (Depthwise ``conv2d`` has no fast float64 path on the CPU; k shifted multiply-adds over the
    whole tensor are ~50x faster at 512² and exact to float64 rounding.)
    """
    k = g.numel()
    n = x.shape[dim] - k + 1
    out = x.narrow(dim, 0, n) * g[0]
    for i in range(1, k):
        out.add_(x.narrow(dim, i, n), alpha=float(g[i]))
    return out


def ssim(image_true: Array, image_test: Array, data_range: Optional[float] = None,
         sigma: float = SSIM_SIGMA, return_map: bool = False) -> Array:
    """Structural similarity per image, Gaussian-window variant (Wang et al. 2004).

    Matches ``skimage.metrics.structural_similarity(image_true, image_test, data_range=...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)``: local
    means, variances and covariance under an 11×11 Gaussian window (σ = 1.5), K1 = 0.01,
    K2 = 0.03, averaged over the pixels at least 5 from the border, then over channels.

    Args:
        image_true, image_test: same shape, at least 11×11; layouts as in the module docstring.
        data_range: value range (default 255 for uint8, 1.0 for floats).
        sigma: Gaussian σ (the window radius is ``int(3.5·σ + 0.5)``).
        return_map: also return the SSIM map ``(N, C, H - 2r, W - 2r)`` (torch, float64).

    Returns:
        float / ``(N,)`` array for NumPy inputs; 0-d / ``(N,)`` float64 tensor for torch inputs
        (and the map when ``return_map``).

    Example:
        >>> img = np.random.default_rng(0).random((32, 32, 3))
        >>> ssim(img, img)
        1.0
    """
    ta, tb, rng, numpy_in, batched = _prepare(image_true, image_test, data_range)
    n, c, h, w = ta.shape
    g = _gaussian_window(sigma, SSIM_TRUNCATE, ta.device)
    k = g.numel()
    if h < k or w < k:
        raise ValueError(f"ssim: images must be at least {k}x{k} for sigma={sigma}, got {h}x{w}")
    # One depthwise separable "valid" filtering of the five moment images at once. The border
    # the valid filter drops is exactly the border scikit-image crops before averaging, so
    # padding never matters.
    stack = torch.cat([ta, tb, ta * ta, tb * tb, ta * tb], dim=1)  # (N, 5C, H, W)
    f = _filter_valid(_filter_valid(stack, g, dim=2), g, dim=3)
    ux, uy, uxx, uyy, uxy = f.split(c, dim=1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (SSIM_K1 * rng) ** 2
    c2 = (SSIM_K2 * rng) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    val = smap.mean(dim=(2, 3)).mean(dim=1)
    out = _out(val, numpy_in, batched)
    return (out, smap) if return_map else out


def composite(image: Array, output: Array, hole: Array) -> Array:
    """The composite image: ``output`` inside the hole, ``image`` elsewhere.

    Args:
        image: the original image.
        output: the method's output (same shape as ``image``).
        hole: **non-zero / True = hole**; shape of ``image`` without the channel axis, or
            broadcastable to it (NumPy: ``(H, W)`` / ``(N, H, W)`` / channel-last;
            torch: ``(N, 1, H, W)`` / ``(1, H, W)`` / ``(H, W)``).

    Returns:
        Same type, shape and dtype as ``image``.
    """
    if isinstance(image, np.ndarray):
        m = np.asarray(hole) != 0
        if m.ndim == image.ndim - 1:
            m = m[..., None]
        return np.where(m, np.asarray(output).astype(image.dtype, copy=False), image)
    m = hole != 0
    if m.dim() == 2 and image.dim() >= 3:
        m = m.unsqueeze(0)
    return torch.where(m, output.to(image.dtype), image)


__all__ = ["psnr", "ssim", "l1", "mse", "composite"]
