"""Biharmonic inpainting: the holes are filled with the solution of the discrete biharmonic
equation, with the known pixels around them as boundary condition.

It gives the same result as ``skimage.restoration.inpaint_biharmonic`` (same stencil, same
image-border treatment, same clipping) to within 1e-3 on [0, 1] images (typically ~1e-5), but it
is built for speed. The system has one row per hole pixel: the 13-point stencil ``Δ²``
(truncated near the image border exactly as scikit-image truncates it), the entries that fall on
known pixels moved to the right-hand side; it is symmetric positive definite (see
:func:`_stencil_table`). Two solvers:

* more than ``_DIRECT_MAX`` unknowns in all: our C++ multigrid solver
  (``csrc/cpu/biharmonic/solver.cpp``): flexible conjugate gradients in float64, preconditioned by a
  float32 K-cycle (Galerkin coarse levels that follow the hole's shape, Chebyshev smoothing,
  loops over runs of row pixels written with SIMD vectors; compiled for SSE2, AVX2 and AVX-512
  and chosen at run time; torch's intra-op threads work on shares of every level), started from
  a full-multigrid guess, all channels in one pass; it stops once an iteration changes no value
  by more than ``_TOL`` times the range of the known values (each iteration divides the error by
  ~5) and writes the clipped fill straight into a copy of the image;
* fewer: a sparse direct solve (SuperLU in symmetric mode on a minimum-degree ordering of
  ``A + Aᵀ``), one factorisation per independent hole region serving every channel — exact, and
  cheaper than building a hierarchy for a few hundred unknowns.

Run-time needs: NumPy and SciPy (and torch, for tensor inputs); scikit-image is a test and
benchmark dependency only.
"""

from __future__ import annotations

import functools
import warnings
from typing import Optional, Union

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from fastinpaint._cpu_load import on_free_cpu_threads
from fastinpaint._deprecated import deprecated_alias

__all__ = ["inpaint_biharmonic"]

_RADIUS = 2  # reach of the biharmonic stencil (Δ² of the 5-point Laplacian)
_DIRECT_MAX = 1024  # up to this many unknowns in all: sparse direct solve; more: multigrid
# Multigrid: stop once an iteration changes no value by more than _TOL times the image's largest
# channel range of known values (and the error left, judged by the last two changes, is under
# _TOL / 4: csrc/cpu/biharmonic/solver.cpp, converged). Each iteration divides the error by ~5 on
# photos: at most 3.1e-4 over the 96 photo/mask pairs of ../shared (3-6 iterations), inside
# the 1e-3 scikit-image agreement we promise (2e-3 saves an iteration on 40 % of them but leaves
# up to 6.7e-4: too thin a margin for photographs we have not seen).
_TOL = 1e-3
_MAX_ITER = 50  # multigrid: iterations before falling back to the direct solver
_WINDOW = 2 * _RADIUS + 1

ArrayLike = Union[np.ndarray, torch.Tensor]


# ------------------------------------------------------------------------------------------------
# stencils
# ------------------------------------------------------------------------------------------------
def _second_difference_reflect(x: np.ndarray, axis: int) -> np.ndarray:
    """x[i-1] - 2 x[i] + x[i+1] along ``axis`` with half-sample symmetric extension
    (``d c b a | a b c d``: scipy.ndimage's ``mode='reflect'``, numpy's ``'symmetric'``)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    p = np.pad(x, pad, mode="symmetric")
    n = x.shape[axis]
    lo = np.take(p, np.arange(0, n), axis=axis)
    mid = np.take(p, np.arange(1, n + 1), axis=axis)
    hi = np.take(p, np.arange(2, n + 2), axis=axis)
    return lo - 2.0 * mid + hi


def _laplacian_reflect(x: np.ndarray) -> np.ndarray:
    return _second_difference_reflect(x, 0) + _second_difference_reflect(x, 1)


@functools.lru_cache(maxsize=1)
def _stencil_table() -> np.ndarray:
    """Coefficients of every stencil the system uses, shape ``(81, 5, 5)``.

    A hole pixel's stencil depends only on how far it is from each image edge, clipped to the
    stencil radius: ``(top, bottom, left, right)`` distances in {0, 1, 2}, so 3⁴ = 81 classes
    (class 80 = (2, 2, 2, 2) is the full interior stencil). Near the border scikit-image takes
    the stencil window cut to the image and applies its Laplacian twice to a unit impulse with
    reflecting boundaries; we do the same here, once per class, so the coefficients agree to
    the bit. Entry ``[k, 2 + dy, 2 + dx]`` multiplies the pixel at offset ``(dy, dx)``; entries
    outside the image are zero.

    The reflecting Laplacian ``L`` is a symmetric matrix, so the coefficients of row ``p`` —
    column ``p`` of ``L²`` — equal row ``p`` of ``L²``: the system matrix is a principal
    submatrix of the symmetric positive semi-definite ``L²``. ``L``'s null space is the constant
    images only, so with at least one known pixel the submatrix is positive definite.
    """
    table = np.zeros((81, _WINDOW, _WINDOW))
    for top in range(3):
        for bottom in range(3):
            for left in range(3):
                for right in range(3):
                    impulse = np.zeros((top + bottom + 1, left + right + 1))
                    impulse[top, left] = 1.0
                    coef = _laplacian_reflect(_laplacian_reflect(impulse))
                    k = ((top * 3 + bottom) * 3 + left) * 3 + right
                    table[k, _RADIUS - top : _RADIUS + bottom + 1, _RADIUS - left : _RADIUS + right + 1] = coef
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=1)
def _diamond_table() -> torch.Tensor:
    """The 81 stencils on the 13 taps of the diamond ``|dy| + |dx| <= 2`` (raster order), as the
    C++ solver takes them: ``(81, 13)`` float64."""
    table = _stencil_table().reshape(81, -1)
    used = np.flatnonzero(np.any(table != 0, axis=0))
    assert used.size == 13
    return torch.from_numpy(np.ascontiguousarray(table[:, used]))


def _multigrid_fill(image: torch.Tensor, hole: torch.Tensor) -> Optional[torch.Tensor]:
    """The image with its holes filled by the C++ multigrid solver, each value clipped to its
    channel's range of known values (as scikit-image does: a biharmonic fill can overshoot).
    ``image``: ``(H, W, C)`` float64, contiguous, on the CPU (only read); ``hole``: ``(H, W)`` bool.
    The solver copies the known pixels into the new tensor itself, during its first pass over the
    image, on all of torch's intra-op threads (the new array's page faults are shared out: after
    another library has returned its memory to the system, a single-threaded copy's ~1000 faults
    cost ~1.5 ms on our VMs). None if the solver did not converge in ``_MAX_ITER`` iterations (the
    caller then solves directly). ValueError if a known value is not finite."""
    out = torch.empty_like(image)
    # The solver's thread team meets at hundreds of barriers per solve, each held up by a thread
    # the OS has descheduled: it runs on the threads other processes leave free (as
    # fastinpaint.inpaint does for every method; this covers direct calls of inpaint_biharmonic).
    with on_free_cpu_threads(image.device):
        *_, last_change, _levels, _isa = torch.ops.fastinpaint.biharmonic_solve(
            image, hole, _diamond_table(), _TOL, _MAX_ITER, fill=True, out=out
        )
    return out if last_change <= _TOL else None


# ------------------------------------------------------------------------------------------------
# system assembly and solve
# ------------------------------------------------------------------------------------------------
def _assemble(image2d: np.ndarray, mask: np.ndarray, order: np.ndarray):
    """Builds ``A x = b`` for the hole pixels ``order`` (flat indices; row i is pixel order[i]).

    Returns the CSC matrix ``A`` (float64, n × n) and the right-hand side ``b`` (float64, n × C):
    ``b = -Σ coef · known value`` over each stencil's known pixels.
    """
    h, w = mask.shape
    n = order.size
    number = np.full(h * w, -1, dtype=np.int64)
    number[order] = np.arange(n, dtype=np.int64)

    r, c = np.divmod(order, w)
    cls = ((np.minimum(r, 2) * 3 + np.minimum(h - 1 - r, 2)) * 3 + np.minimum(c, 2)) * 3 + np.minimum(
        w - 1 - c, 2
    )
    table = _stencil_table().reshape(81, -1)
    # Only the 13 offsets of the diamond |dy| + |dx| <= 2 are ever non-zero.
    used = np.flatnonzero(np.any(table != 0, axis=0))
    dy, dx = np.divmod(used, _WINDOW)
    offsets = (dy - _RADIUS) * w + (dx - _RADIUS)

    coef = table[:, used][cls]  # (n, 13)
    present = coef != 0  # zero exactly where the offset leaves the image
    nbr = order[:, None] + offsets[None, :]
    nbr[~present] = 0  # keep absent entries' indices in range; they are masked out below
    col = number[nbr]
    unknown = present & (col >= 0)
    known = present & (col < 0)

    # Boolean indexing walks the (n, 13) arrays row by row, and within a row by ascending
    # offset, hence ascending column (numbering follows raster order within each region): these
    # already are CSR arrays, and since A is symmetric, CSR of A is CSC of A — no COO sort.
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(unknown, axis=1), out=indptr[1:])
    a = sp.csc_matrix((coef[unknown], col[unknown], indptr), shape=(n, n))

    k_rows = np.broadcast_to(np.arange(n)[:, None], coef.shape)[known]
    k_vals, k_nbr = coef[known], nbr[known]
    b = np.empty((n, image2d.shape[1]), dtype=np.float64)
    for ch in range(image2d.shape[1]):
        b[:, ch] = -np.bincount(k_rows, weights=k_vals * image2d[k_nbr, ch], minlength=n)
    return a, b


def _factor_solve(a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
    """Solves ``a x = b`` (every column of b) with one sparse LU factorisation.

    ``a`` is symmetric positive definite (see :func:`_stencil_table`), so pivoting is not needed
    for stability: SuperLU's symmetric mode keeps the diagonal pivots and orders on the pattern of
    ``A + Aᵀ`` with minimum degree. On a 61k-unknown hole that is 25 % less fill than COLAMD or
    scikit-image's MMD_ATA with partial pivoting (5.1 M vs 6.8 M entries in L + U), so a faster
    factorisation and a faster multi-column solve.
    """
    lu = spla.splu(
        a,
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options=dict(SymmetricMode=True),
    )
    x = lu.solve(b)
    return x.reshape(b.shape)


def _region_order(mask: np.ndarray, holes: np.ndarray):
    """Hole pixels sorted by independent region, and where each region starts.

    Two hole pixels whose 4-neighbourhoods are not 8-connected are farther apart than the
    stencil reaches, so regions of the dilated mask (as scikit-image splits them) never share an
    equation: the system is block diagonal, one block per region.
    """
    dilated = ndi.binary_dilation(mask, structure=ndi.generate_binary_structure(2, 1))
    labels, count = ndi.label(dilated, structure=np.ones((3, 3), dtype=bool))
    region = labels.reshape(-1)[holes]
    perm = np.argsort(region, kind="stable")
    starts = np.searchsorted(region[perm], np.arange(1, count + 2))
    return holes[perm], starts


def _solve_blocks(a: sp.csc_matrix, b: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Solves a block-diagonal ``a`` one diagonal block (region) at a time."""
    x = np.empty_like(b)
    indptr, indices, data = a.indptr, a.indices, a.data
    for s, e in zip(starts[:-1], starts[1:]):
        if e == s:
            continue
        # Block diagonal: columns s..e-1 only hold rows s..e-1, so the block is a slice of the
        # CSC arrays (no scipy fancy indexing, which would cost more than small solves).
        p0, p1 = indptr[s], indptr[e]
        block = sp.csc_matrix(
            (data[p0:p1], indices[p0:p1] - s, indptr[s : e + 1] - p0), shape=(e - s, e - s)
        )
        x[s:e] = _factor_solve(block, b[s:e])
    return x


def _fill(image: torch.Tensor, hole: torch.Tensor, split_into_regions: bool) -> torch.Tensor:
    """The biharmonic fill of ``image`` ``(H, W, C)`` float64 (contiguous, CPU; only read) over
    ``hole`` ``(H, W)`` bool (at least one hole and one known pixel): a new ``(H, W, C)`` float64
    tensor. The direct solver works on NumPy views of the same memory."""
    h, w, _ = image.shape
    count = int(torch.count_nonzero(hole))
    if count > _DIRECT_MAX:
        # One multigrid solve for every region: its cost is linear in the unknowns, so splitting
        # would gain nothing (the regions never share an equation). It also checks the known
        # values, and writes the known pixels and the clipped fill into a new image: no per-pixel
        # work is left here.
        filled = _multigrid_fill(image, hole)
        if filled is not None:
            return filled
    # Small holes, or the rare multigrid solve that did not converge: a sparse direct solve.
    hole_np = hole.numpy()
    holes = np.flatnonzero(hole_np)
    flat = image.numpy().reshape(h * w, -1)  # (H*W, C), a view
    known = flat[~hole_np.reshape(-1)]
    lo, hi = known.min(axis=0), known.max(axis=0)  # NaN/inf show up here at no extra cost
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("inpaint_biharmonic: image has non-finite values (NaN or inf) outside the hole")
    order = holes
    if split_into_regions:
        order, starts = _region_order(hole_np, holes)
    else:
        starts = np.array([0, holes.size])
    a, b = _assemble(flat, hole_np, order)
    x = _solve_blocks(a, b, starts)
    if split_into_regions:
        x = x[np.argsort(order)]  # region order -> raster order
    # As scikit-image does: a biharmonic fill can overshoot, so clip each channel to the range
    # of its known values.
    np.clip(x, lo, hi, out=x)
    out = image.clone()
    out.numpy().reshape(h * w, -1)[holes] = x
    return out


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def inpaint_biharmonic(image: ArrayLike, mask: ArrayLike, *, split_into_regions: bool = True, seed: int = 0,
                       source_mask: Optional[torch.Tensor] = None) -> ArrayLike:
    """Fills the holes of ``image`` with the solution of the biharmonic equation ``Δ²u = 0``,
    the known pixels around each hole being the boundary condition.

    Same system as ``skimage.restoration.inpaint_biharmonic`` (with ``channel_axis=-1`` for
    colour images), including its treatment of holes that touch the image border and its final
    clipping of filled values to each channel's range of known values. Up to ``_DIRECT_MAX``
    (1024) hole pixels the system is solved directly (scikit-image's result to ~1e-11); more, by
    multigrid-preconditioned conjugate gradients until an iteration changes no value by more
    than ``_TOL`` (1e-3) times the range of the known values: ~1e-4 max abs difference to
    scikit-image on [0, 1] photos, always below 1e-3 in our tests (should the iteration not
    converge, the system is solved directly). The linear systems are solved in float64 whatever
    the input dtype (scikit-image solves float32 images in float32).

    This is the method behind ``fastinpaint.inpaint(image, mask, method="biharmonic")`` (which
    hands it a ``(C, H, W)`` float tensor and an ``(H, W)`` bool hole); called directly it is also a
    drop-in for scikit-image's function on NumPy arrays.

    Args:
        image: float image, NumPy ``(H, W)`` or ``(H, W, C)``, float16/32/64, any value range —
            or a torch tensor ``(H, W)`` or ``(C, H, W)`` (floating dtype, any device). The hole
            pixels' values are ignored (they may be anything, NaN included); the known pixels
            must be finite.
        mask: hole mask ``(H, W)``, **non-zero / True = hole** (the pixels to fill), NumPy or
            torch; for a tensor image a ``(1, H, W)`` mask is accepted too.
        split_into_regions: for the direct solve (small holes), solve each independent hole
            region (connected after a one-pixel dilation, as scikit-image defines them) as its
            own system; ``False``: one joint system. The multigrid solver always takes every
            region at once (its cost is linear in the unknowns). The results agree to the
            solver's tolerance.
        seed: unused (the method is deterministic); there for the method interface.
        source_mask: must be None (the fill interpolates from the hole's border).

    Returns:
        The filled image: same type, shape and dtype as ``image`` (and same device for a
        tensor). Known pixels are copied bit for bit; only the holes change.

    Shape:
        - image: ``(H, W)`` / ``(H, W, C)`` (NumPy) or ``(H, W)`` / ``(C, H, W)`` (torch)
        - mask: ``(H, W)``
        - output: same as image

    Raises:
        TypeError: image is not a NumPy array / tensor, or not floating point.
        ValueError: image or mask of the wrong rank, mask shape not the image's ``(H, W)``, the
            mask covering the whole image (nothing to copy from), or non-finite known pixels.

    Warns:
        UserWarning: the mask has no hole; a copy of the image is returned.

    Example:
        >>> import numpy as np
        >>> from fastinpaint.methods.biharmonic import inpaint_biharmonic
        >>> image = np.tile(np.linspace(0.0, 1.0, 8), (6, 1))   # a horizontal ramp
        >>> mask = np.zeros((6, 8), dtype=bool)
        >>> mask[2:4, 3:5] = True                               # a 2×2 hole
        >>> out = inpaint_biharmonic(image, mask)
        >>> bool(np.allclose(out, image))                       # a ramp is biharmonic
        True
    """
    if source_mask is not None:
        raise ValueError("inpaint_biharmonic: source_mask does not apply: the method interpolates smoothly "
                         "from the hole's border")
    if isinstance(image, torch.Tensor):
        return _inpaint_biharmonic_tensor(image, mask, split_into_regions)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"inpaint_biharmonic: image must be a NumPy array or a torch tensor, "
                        f"got {type(image).__name__}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"inpaint_biharmonic: image must be floating point (float16/32/64), got dtype {image.dtype}; "
            "convert it first, e.g. image.astype(np.float32) / 255"
        )
    if image.ndim not in (2, 3):
        raise ValueError(f"inpaint_biharmonic: image must be (H, W) or (H, W, C), got shape {image.shape}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"inpaint_biharmonic: mask must be 2-D (H, W) with non-zero = hole, "
                         f"got shape {mask.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"inpaint_biharmonic: mask shape {mask.shape} does not match the image's (H, W) = {image.shape[:2]} "
            f"(image shape {image.shape})"
        )
    hole = np.ascontiguousarray(mask, dtype=bool)
    if not _has_hole_and_known(hole):
        return image.copy()
    h, w = hole.shape
    work = np.ascontiguousarray(image.reshape(h, w, -1), dtype=np.float64)
    with warnings.catch_warnings():  # a read-only image (np.asarray of a PIL image) is only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        filled = _fill(torch.from_numpy(work), torch.from_numpy(hole), split_into_regions).numpy()
    return filled.astype(image.dtype, copy=False).reshape(image.shape)


def _has_hole_and_known(hole) -> bool:
    """False (with a warning) for an empty hole; ValueError for a hole covering everything."""
    count = int(np.count_nonzero(hole) if isinstance(hole, np.ndarray) else torch.count_nonzero(hole))
    if count == 0:
        warnings.warn("inpaint_biharmonic: the mask has no hole; returning a copy of the image", stacklevel=3)
        return False
    if count == (hole.size if isinstance(hole, np.ndarray) else hole.numel()):
        raise ValueError("inpaint_biharmonic: the mask covers the whole image, so there is nothing to copy from")
    return True


def _inpaint_biharmonic_tensor(image: torch.Tensor, mask: ArrayLike, split_into_regions: bool) -> torch.Tensor:
    """Tensor front end: ``(H, W)`` / ``(C, H, W)`` in, same shape, dtype and device out (one copy
    into the solver's ``(H, W, C)`` float64 layout, one back)."""
    if not image.is_floating_point():
        raise TypeError(f"inpaint_biharmonic: image must be a floating-point tensor, got dtype {image.dtype}")
    if image.dim() not in (2, 3):
        raise ValueError(f"inpaint_biharmonic: image tensor must be (H, W) or (C, H, W), "
                         f"got shape {tuple(image.shape)}")
    m = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    spatial = tuple(image.shape[-2:])
    if m.dim() != 2:
        raise ValueError(f"inpaint_biharmonic: mask must be (H, W) or (1, H, W) with non-zero = hole, "
                         f"got shape {tuple(m.shape)}")
    if tuple(m.shape) != spatial:
        raise ValueError(
            f"inpaint_biharmonic: mask shape {tuple(m.shape)} does not match the image's (H, W) = {spatial} "
            f"(image shape {tuple(image.shape)})"
        )
    hole = m.ne(0).contiguous()
    if not _has_hole_and_known(hole):
        return image.clone()
    chw = image.detach().reshape(-1, *spatial)
    hwc = chw.permute(1, 2, 0).to(device="cpu", dtype=torch.float64, memory_format=torch.contiguous_format)
    filled = _fill(hwc.contiguous(), hole, split_into_regions).permute(2, 0, 1)
    return filled.to(device=image.device, dtype=image.dtype).reshape(image.shape).contiguous()


inpaint_biharmonic_method = deprecated_alias(
    inpaint_biharmonic, "fastinpaint.methods.biharmonic.inpaint_biharmonic_method", "fastinpaint.methods.biharmonic.inpaint_biharmonic"
)

# fastinpaint.hd: "auto" solves each hole's crop at full resolution up to this many pixels, and
# scales the crops down so that all holes together have at most this many unknowns: the solve
# costs per unknown, and a biharmonic fill is smooth, so a 12 MP photo's holes solved at this
# budget and upscaled lose little (the exact full-resolution solve: hd_strategy="original").
inpaint_biharmonic.hd_max_pixels = 4_000_000  # type: ignore[attr-defined]
inpaint_biharmonic.hd_max_hole_pixels = 1 << 16  # type: ignore[attr-defined]
