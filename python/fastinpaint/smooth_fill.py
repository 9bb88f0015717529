"""Mask-aware helpers shared by the methods and the networks: a smooth fill of a hole from its
known pixels (push-pull) and each pixel's distance to the known pixels.

PatchMatch starts its coarsest level from the push-pull fill and weights patches by their distance
into the hole; the learned methods blend toward a smooth fill by that distance and carry colour
residuals into the hole with push-pull; GLCIC's ``prefill="pushpull"`` gives the network the
push-pull fill as its input. Beside them, what the pyramid and the large-photo dispatcher share:
bilinear and bicubic upsampling evaluated at chosen pixels only (and independent of the thread
count), and a square dilation of masks. One implementation of each, here, below all of them.

Images are ``(C, H, W)`` float tensors; masks ``(H, W)`` bool.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pushpull_fill", "hole_distance", "dilate", "upsample", "upsample_at", "upsample_where", "bicubic_at"]


def _down_image(img: Tensor, known: Tensor) -> Tensor:
    """2x downsample averaging known pixels only (hole values never leak into known ones)."""
    k = known.to(img.dtype)[None, None]
    num = F.avg_pool2d(img[None] * k, 2, ceil_mode=True)
    den = F.avg_pool2d(k, 2, ceil_mode=True)
    return (num / den.clamp_min(1e-12))[0]


def _down_any(mask: Tensor) -> Tensor:
    """2x downsample of a bool mask: a coarse pixel is set where any of its 2x2 fine pixels is (an
    odd last row / column alone). A padded view's OR, not a max-pool of a float copy (4x faster)."""
    h, w = mask.shape
    m = F.pad(mask, (0, w % 2, 0, h % 2))
    return m.view(m.shape[0] // 2, 2, m.shape[1] // 2, 2).any(3).any(1)


def _linear_taps(n_in: int, n_out: int, device):
    """Source indices and weights of linear interpolation along one axis, ``align_corners=False``
    (as ``F.interpolate``: ``(i + 0.5) * n_in / n_out - 0.5``, clamped at 0)."""
    src = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).to(torch.float32)


def upsample(img: Tensor, size) -> Tensor:
    """``(C, h, w)`` -> ``(C, *size)``, bilinear (pixel centres aligned as ``F.interpolate(...,
    mode="bilinear", align_corners=False)``, to float rounding): :func:`upsample_at` at every
    pixel. The methods use that or :func:`upsample_where`, which compute the hole alone."""
    h, w = size
    ys = torch.arange(h, device=img.device).repeat_interleave(w)
    xs = torch.arange(w, device=img.device).repeat(h)
    return upsample_at(img, size, ys, xs).reshape(img.shape[0], h, w)


def upsample_at(img: Tensor, size, ys: Tensor, xs: Tensor) -> Tensor:
    """The bilinear upsample of ``img`` to ``size`` (see :func:`upsample`) at pixels ``(ys, xs)``
    only, ``(C, N)``: the callers need the upsampled values in a hole alone (a 12 MP image with a
    scattered 8 % hole spent 2.5 s upsampling all of it). Written as gathers and elementwise
    products so that the result does not depend on the thread count: ATen's bilinear kernel
    rounds differently in its vectorised and scalar paths, whose split follows the threads, and
    one ulp at a level start changed PatchMatch's fills (up to 91 grey levels on a 128 px photo
    between 1 and 2 threads)."""
    h, w = size
    c, hi, wi = img.shape
    y0, y1, ly = _linear_taps(hi, h, img.device)
    x0, x1, lx = _linear_taps(wi, w, img.device)
    y0, y1, ly = y0[ys] * wi, y1[ys] * wi, ly[ys].to(img.dtype)[:, None]
    x0, x1, lx = x0[xs], x1[xs], lx[xs].to(img.dtype)[:, None]
    # pixels as rows of C values: each tap is one row gather (4x faster than img[:, y, x])
    table = img.reshape(c, -1).t().contiguous()
    # along x within each of the two rows, then along y
    top = table.index_select(0, y0 + x0) * (1 - lx) + table.index_select(0, y0 + x1) * lx
    bottom = table.index_select(0, y1 + x0) * (1 - lx) + table.index_select(0, y1 + x1) * lx
    return (top * (1 - ly) + bottom * ly).t()


#: points per row of the grid bicubic_at samples
_GRID_ROW = 1024


def bicubic_at(lo: Tensor, size: Tuple[int, int], ys: Tensor, xs: Tensor) -> Tensor:
    """``F.interpolate(lo, size, mode="bicubic", align_corners=False)[:, ys, xs]`` (``(C, N)``),
    evaluated at those pixels only (the same source coordinates: a fine pixel's centre maps to the
    same point of ``lo``)."""
    h, w = size
    n = ys.numel()
    gy = (ys.to(torch.float32) + 0.5) * (2.0 / h) - 1.0
    gx = (xs.to(torch.float32) + 0.5) * (2.0 / w) - 1.0
    # In rows of a fixed length, the last one padded: torch's grid sampler shares rows among its
    # threads (a single row of every point would run on one thread) and computes each row whole
    # on one thread, so the values do not depend on the thread count
    rows = -(-n // _GRID_ROW)
    grid = F.pad(torch.stack([gx, gy], -1), (0, 0, 0, rows * _GRID_ROW - n)).view(1, rows, _GRID_ROW, 2)
    out = F.grid_sample(lo[None].float(), grid, mode="bicubic", padding_mode="border", align_corners=False)[0]
    return out.reshape(out.shape[0], -1)[:, :n]


def upsample_where(img: Tensor, where: Tensor, base: Tensor) -> Tensor:
    """``torch.where(where, upsample(img, where.shape), base)``, computed at ``where``'s pixels only."""
    ys, xs = torch.nonzero(where, as_tuple=True)
    out = base.clone()
    out[:, ys, xs] = upsample_at(img, where.shape, ys, xs).to(base.dtype)
    return out


def pushpull_fill(img: Tensor, known: Tensor, where: Optional[Tensor] = None) -> Tensor:
    """``img`` with its unknown pixels filled smoothly: the known pixels' averages from ever coarser
    scales (2x each), upsampled back; known pixels unchanged. All zeros when nothing is known.
    ``where``: fill only these unknown pixels (the others keep ``img``'s values): the same values
    there, for the cost of those pixels at full size (PatchMatch's seam correction knows a thin
    ring around the hole and needs the hole alone: on a whole 2048 px image, 0.4 s)."""
    if bool(known.all()):
        return img
    if not bool(known.any()):
        return torch.zeros_like(img) if where is None else torch.where(where[None], 0.0, img)
    # (a fine pixel's bilinear taps lie within one coarse pixel of its own: the coarse pixels
    # needed are those, dilated by one)
    where_c = None if where is None else dilate(_down_any(where), 1)
    coarse = pushpull_fill(_down_image(img, known), _down_any(known), where_c)
    return upsample_where(coarse, ~known if where is None else where & ~known, img)


def dilate(mask: Tensor, radius: int) -> Tensor:
    """Square dilation by ``radius`` (a bool mask): along each axis a running OR whose window
    doubles each pass, so a k x k window costs log2(k) boolean passes per axis (max pooling a
    float copy was several times slower, and PatchMatch and fastinpaint.hd dilate at every level
    and box)."""
    if radius <= 0:
        return mask
    out = mask != 0
    for dim in (1, 0):  # rows last: their narrowed window is contiguous memory
        out = _window_or(out, dim, radius)
    return out


def _window_or(mask: Tensor, dim: int, radius: int) -> Tensor:
    """``out[i] = any(mask[i - radius : i + radius + 1])`` along ``dim`` (bool)."""
    n, k = mask.shape[dim], 2 * radius + 1
    shape = list(mask.shape)
    shape[dim] = radius
    # padded in front by radius: out[i] is then the forward window of k starting at i
    acc = torch.cat([mask.new_zeros(shape), mask], dim)
    width = 1  # acc[j] = any(padded[j : j + width]) (cut at the end)
    while width < k:
        step = min(width, k - width)
        wider = acc.clone()
        m = acc.shape[dim] - step
        if m > 0:
            wider.narrow(dim, 0, m).logical_or_(acc.narrow(dim, step, m))
        acc, width = wider, width + step
    return acc.narrow(dim, 0, n)


def hole_distance(hole: Tensor) -> Tensor:
    """Euclidean distance of each pixel to the nearest known pixel (0 on known pixels), float32 on
    ``hole``'s device."""
    from scipy.ndimage import distance_transform_edt

    # On the CPU: one small round trip per pyramid level, far cheaper than peeling rings on the device.
    # Only the hole's bounding box grown by one pixel is transformed: its rim is known, and the
    # nearest known pixel of a hole pixel is never outside it (clamping a point into a box that
    # holds the hole pixel brings it no farther), so the distances are exact at the cost of the
    # box, not of the whole image (a small hole in a large crop).
    h_np = hole.cpu().numpy()
    d = np.zeros(h_np.shape, np.float32)
    rows, cols = np.flatnonzero(h_np.any(1)), np.flatnonzero(h_np.any(0))
    if rows.size:
        y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, h_np.shape[0])
        x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, h_np.shape[1])
        d[y0:y1, x0:x1] = distance_transform_edt(h_np[y0:y1, x0:x1])
    return torch.from_numpy(d).to(hole.device)
