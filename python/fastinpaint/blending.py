"""Poisson blending (seamless cloning, Pérez et al. 2003) of a fill into an image over a hole.

GLCIC's optional post-processing: the network's prediction is blended into the image so that the
filled region keeps the prediction's gradients while meeting the known pixels without a seam.

For every hole pixel ``p`` with in-image 4-neighbours ``N(p)``::

    sum_{q in N(p)} (u_p - u_q) = sum_{q in N(p)} (fill_p - fill_q)

where ``u_q = image_q`` for known ``q`` (moved to the right-hand side). That is ``Δu = Δfill``
inside the hole with ``u = image`` on its boundary; at the image border only the neighbours
inside the image count (no flux through the border). The matrix is symmetric positive definite
whenever every hole region touches a known pixel; it is factorised once (SuperLU) and the
factorisation serves every channel.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

__all__ = ["poisson_blend", "poisson_system"]

_Array = Union[np.ndarray, torch.Tensor]


def poisson_system(hole: np.ndarray):
    """The sparse system of :func:`poisson_blend` for a boolean ``(H, W)`` hole mask.

    Returns:
        ``(A, idx, neighbours)``: ``A`` the ``(n, n)`` CSC matrix over the ``n`` hole pixels (in
        row-major order), ``idx`` their flat indices, ``neighbours`` a list of
        ``(hole_rows, neighbour_flat_index, neighbour_is_hole)`` triples, one per direction.
    """
    hole = np.asarray(hole, dtype=bool)
    h, w = hole.shape
    idx = np.flatnonzero(hole)
    n = idx.size
    number = np.full(h * w, -1, dtype=np.int64)
    number[idx] = np.arange(n)
    ys, xs = np.divmod(idx, w)
    diag = np.zeros(n)
    rows, cols = [], []
    neighbours = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        r = np.flatnonzero(inside)
        q = ny[inside] * w + nx[inside]
        diag[r] += 1
        q_hole = hole.ravel()[q]
        rows.append(r[q_hole])
        cols.append(number[q[q_hole]])
        neighbours.append((r, q, q_hole))
    rows = np.concatenate(rows + [np.arange(n)])
    cols = np.concatenate(cols + [np.arange(n)])
    vals = np.concatenate([-np.ones(rows.size - n), diag])
    a = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    return a, idx, neighbours


def _to_hwc(x: _Array, name: str):
    """(H, W, C) float64 numpy view of an input; and how to turn the result back."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dim() == 2:
            arr = t.cpu().double().numpy()[:, :, None]
            back = lambda r: torch.from_numpy(r[:, :, 0]).to(dtype=x.dtype, device=x.device)  # noqa: E731
        elif t.dim() == 3:
            arr = t.cpu().double().permute(1, 2, 0).numpy()
            back = lambda r: torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1))).to(dtype=x.dtype, device=x.device)  # noqa: E731
        else:
            raise ValueError(f"poisson_blend: tensor {name} must be (C, H, W) or (H, W), got shape {tuple(t.shape)}")
        return arr, back
    arr = np.asarray(x)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    if arr.ndim == 2:
        return arr.astype(np.float64)[:, :, None], lambda r: r[:, :, 0].astype(dtype)
    if arr.ndim == 3:
        return arr.astype(np.float64), lambda r: r.astype(dtype)
    raise ValueError(f"poisson_blend: array {name} must be (H, W, C) or (H, W), got shape {arr.shape}")


def poisson_blend(image: _Array, fill: _Array, hole: _Array) -> _Array:
    """Seamlessly clones ``fill`` into ``image`` over ``hole`` (Poisson blending).

    Inside the hole the result ``u`` solves ``Δu = Δfill`` (5-point Laplacian, per channel) with
    ``u = image`` on the hole's boundary; outside the hole it is ``image`` exactly. Blending a fill
    equal to the image returns the image. No clipping: clamp the result if you need a range.

    Args:
        image: the known image. NumPy ``(H, W, C)`` / ``(H, W)`` (channels last) or torch
            ``(C, H, W)`` / ``(H, W)`` (channels first).
        fill: the proposed content (e.g. a network's prediction), same type and shape as ``image``.
        hole: ``(H, W)`` mask, **non-zero = hole** (NumPy or torch, any dtype).

    Returns:
        The blended image, same type, shape, dtype (float; integer NumPy inputs give float64)
        and device as ``image``.

    Raises:
        ValueError: shape mismatches, or the hole covers the whole image (nothing to blend into).

    Example:
        >>> import numpy as np
        >>> from fastinpaint.blending import poisson_blend
        >>> img = np.random.rand(40, 60, 3); fill = np.random.rand(40, 60, 3)
        >>> hole = np.zeros((40, 60), bool); hole[10:30, 20:40] = True
        >>> out = poisson_blend(img, fill, hole)
        >>> np.array_equal(out[~hole], img[~hole])
        True
    """
    if isinstance(image, torch.Tensor) != isinstance(fill, torch.Tensor):
        raise TypeError("poisson_blend: image and fill must both be NumPy arrays or both torch tensors")
    img, back = _to_hwc(image, "image")
    fil, _ = _to_hwc(fill, "fill")
    if img.shape != fil.shape:
        raise ValueError(f"poisson_blend: fill shape {tuple(fill.shape)} differs from image shape {tuple(image.shape)}")
    m = hole.detach().cpu().numpy() if isinstance(hole, torch.Tensor) else np.asarray(hole)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != img.shape[:2]:
        raise ValueError(f"poisson_blend: hole must be (H, W) = {img.shape[:2]}, got shape {m.shape}")
    m = m != 0
    out = img.copy()
    if not m.any():
        return back(out)
    if m.all():
        raise ValueError("poisson_blend: the hole covers the whole image; there is no boundary to blend into")
    h, w, c = img.shape
    a, idx, neighbours = poisson_system(m)
    img_f, fil_f = img.reshape(h * w, c), fil.reshape(h * w, c)
    b = np.zeros((idx.size, c))
    for r, q, q_hole in neighbours:
        p = idx[r]
        np.add.at(b, r, fil_f[p] - fil_f[q])  # guidance: the fill's Laplacian
        known = ~q_hole
        np.add.at(b, r[known], img_f[q[known]])  # boundary condition
    solution = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                         options={"SymmetricMode": True}).solve(b)
    out.reshape(h * w, c)[idx] = solution
    return back(out)
