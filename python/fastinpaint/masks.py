"""Irregular hole masks in the spirit of the NVIDIA irregular-mask protocol.

Masks are drawn from free-form brush strokes, ellipses and straight lines of several widths,
then brought into a hole-ratio bucket ``(lo, hi]`` (the protocol's buckets are
``(0.01, 0.1], (0.1, 0.2], …, (0.5, 0.6]``) by growing or shrinking the hole along its
boundary. Everything is deterministic given the seed (a :class:`numpy.random.Generator`; the
drawing uses Pillow's ``ImageDraw``).

Mask convention: **True / 255 / non-zero = hole** (the pixels to fill), as everywhere in
fastinpaint's files, images and command line. Networks built on partial convolutions take the
opposite (1 = valid); :class:`IrregularMaskDataset` returns holes as 1.

Command line: ``fastinpaint masks`` (:mod:`fastinpaint.cli.masks`), also as
``python -m fastinpaint.masks``::

    fastinpaint masks --out masks/ --count 100 --size 512 --bucket 0.1-0.2 --border --seed 0
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
import sys
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

#: The six hole-to-image ratio buckets of the NVIDIA irregular-mask test set, as ``(lo, hi]``.
BUCKETS: Tuple[Tuple[float, float], ...] = (
    (0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6),
)

Size = Union[int, Tuple[int, int]]
SeedLike = Union[None, int, Sequence[int], np.random.SeedSequence]


def _size_hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
        h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"mask size must be at least 8x8, got {h}x{w}")
    return h, w


def _check_bucket(bucket: Sequence[float]) -> Tuple[float, float]:
    if len(bucket) != 2:
        raise ValueError(f"bucket must be (lo, hi), got {bucket!r}")
    lo, hi = float(bucket[0]), float(bucket[1])
    if not (0.0 <= lo < hi <= 1.0):
        raise ValueError(f"bucket must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    return lo, hi


def parse_bucket(text: str) -> Tuple[float, float]:
    """Parses ``"0.1-0.2"`` (or ``"0.1,0.2"``) into ``(0.1, 0.2)``.

    Example:
        >>> from fastinpaint.masks import parse_bucket
        >>> parse_bucket("0.01-0.1")
        (0.01, 0.1)
    """
    for sep in ("-", ",", ":"):
        if sep in text:
            a, b = text.split(sep, 1)
            try:
                return _check_bucket((float(a), float(b)))
            except ValueError as err:
                raise ValueError(f"bad bucket {text!r}: {err}") from None
    raise ValueError(f"bad bucket {text!r}: expected LO-HI, e.g. 0.1-0.2")


def parse_buckets(text: str) -> List[Tuple[float, float]]:
    """Parses ``"all"`` or a comma-free list ``"0.01-0.1 0.1-0.2"`` / ``"0.01-0.1;0.1-0.2"``."""
    if text.strip().lower() == "all":
        return list(BUCKETS)
    parts = [p for p in text.replace(";", " ").split() if p]
    return [parse_bucket(p) for p in parts]


#: The largest mask side ``parse_size`` takes: a 16384² mask is 268 MB while it is drawn (100000
#: asked for 24 GB and was killed by the kernel).
MAX_MASK_SIDE = 16384


def parse_size(text: str) -> Tuple[int, int]:
    """``"512"`` → ``(512, 512)``; ``"320x512"`` → ``(320, 512)`` (height x width)."""
    try:
        if "x" in text.lower():
            a, b = text.lower().split("x", 1)
            size = int(a), int(b)
        else:
            size = int(text), int(text)
    except ValueError:
        raise ValueError(f"bad size {text!r}: expected N or HxW") from None
    if max(size) > MAX_MASK_SIDE:
        raise ValueError(f"bad size {text!r}: at most {MAX_MASK_SIDE} pixels a side")
    return size


def bucket_label(bucket: Sequence[float]) -> str:
    """``(0.1, 0.2)`` → ``"0.1-0.2"`` (used in file names and tables)."""
    return f"{bucket[0]:g}-{bucket[1]:g}"


def default_margin(h: int, w: int) -> int:
    """Border-constraint margin used when none is given: 1/32 of the shorter side (16 px at 512²)."""
    return max(2, min(h, w) // 32)


def _rng(seed: SeedLike) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- shapes -------------------------------------------------------------------------------------

def _draw_stroke(draw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    """A free-form brush stroke: a random walk of segments joined by round caps."""
    s = min(h, w)
    width = max(1, int(round(rng.uniform(0.02, 0.08) * s * scale)))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(3, 10))):
        angle += rng.normal(0.0, 0.8)
        length = rng.uniform(0.03, 0.15) * s * max(scale, 0.3)
        x = float(np.clip(x + length * math.cos(angle), 0, w - 1))
        y = float(np.clip(y + length * math.sin(angle), 0, h - 1))
        points.append((x, y))
    draw.line(points, fill=255, width=width)
    r = width / 2.0
    for px, py in points:
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _draw_ellipse(draw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    s = min(h, w)
    rx = max(1.0, rng.uniform(0.02, 0.12) * s * scale)
    ry = max(1.0, rng.uniform(0.02, 0.12) * s * scale)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)


def _draw_line(draw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    s = min(h, w)
    widths = (0.01, 0.02, 0.04, 0.06)  # several fixed widths, relative to the shorter side
    width = max(1, int(round(widths[int(rng.integers(len(widths)))] * s * scale)))
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    length = rng.uniform(0.1, 0.5) * s
    x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
    draw.line((x0, y0, x1, y1), fill=255, width=width)


_SHAPES = (_draw_stroke, _draw_stroke, _draw_ellipse, _draw_line)  # strokes twice as likely


# --- bucket correction --------------------------------------------------------------------------

def _adjust_count(hole: np.ndarray, allowed: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Grows or shrinks ``hole`` along its boundary until it has exactly ``target`` pixels.

    Shrinking removes the hole pixels nearest to the valid region (an erosion that stops at an
    exact count); growing adds the allowed valid pixels nearest to the hole. Ties are broken by
    a seeded jitter, so the result is deterministic.
    """
    from scipy import ndimage

    count = int(hole.sum())
    if count == target:
        return hole
    jitter = rng.random(hole.shape) * 1e-3  # far below 1 px: reorders ties only
    out = hole.copy()
    if count > target:
        dist = ndimage.distance_transform_edt(hole) + jitter
        idx = np.flatnonzero(hole)
        order = np.argsort(dist.ravel()[idx], kind="stable")
        out.ravel()[idx[order[: count - target]]] = False
    else:
        if count == 0:  # nothing to grow from: start at a random allowed pixel
            cand = np.flatnonzero(allowed)
            out.ravel()[cand[int(rng.integers(cand.size))]] = True
            count = 1
        dist = ndimage.distance_transform_edt(~out) + jitter
        idx = np.flatnonzero(allowed & ~out)
        order = np.argsort(dist.ravel()[idx], kind="stable")
        out.ravel()[idx[order[: target - count]]] = True
    return out


def _count_range(lo: float, hi: float, n: int) -> Tuple[int, int]:
    """The hole pixel counts c with lo < c/n <= hi (as float comparisons)."""
    c_lo = int(math.floor(lo * n)) + 1
    while c_lo > 1 and lo < (c_lo - 1) / n:
        c_lo -= 1
    while not lo < c_lo / n:
        c_lo += 1
    c_hi = int(math.floor(hi * n))
    while (c_hi + 1) / n <= hi:
        c_hi += 1
    while c_hi > 0 and c_hi / n > hi:
        c_hi -= 1
    return c_lo, c_hi


def generate_mask(size: Size, bucket: Sequence[float] = (0.1, 0.2), seed: SeedLike = None,
                  border: bool = False, margin: Optional[int] = None, max_shapes: int = 400) -> np.ndarray:
    """Draws one irregular hole mask whose hole ratio lies in ``bucket = (lo, hi]``.

    Shapes (free-form strokes, ellipses, lines of several widths) are added until the hole
    covers a ratio drawn uniformly from the bucket (at most ``max_shapes`` shapes); the hole is
    then grown or shrunk along its boundary to land exactly inside the bucket, so the function
    always terminates and always meets the bucket.

    Args:
        size: ``H`` (square) or ``(H, W)``.
        bucket: ``(lo, hi)``; the hole ratio (hole pixels / all pixels) ends in ``(lo, hi]``.
        seed: anything :func:`numpy.random.default_rng` takes; the same seed gives the same mask.
        border: keep the holes ``margin`` pixels away from the image border (the protocol's
            "border constraint").
        margin: margin for ``border`` (default :func:`default_margin`, 16 px at 512²).
        max_shapes: bound on the number of shapes drawn before the boundary correction.

    Returns:
        ``np.ndarray`` of bool, shape ``(H, W)``, **True = hole**.

    Raises:
        ValueError: bad size/bucket, or a bucket the border margin makes impossible.

    Example:
        >>> from fastinpaint.masks import generate_mask
        >>> m = generate_mask(512, bucket=(0.1, 0.2), seed=3, border=True)
        >>> m.shape, bool(0.1 < m.mean() <= 0.2), bool(m[:16].any())
        ((512, 512), True, False)
    """
    from PIL import Image, ImageDraw

    h, w = _size_hw(size)
    lo, hi = _check_bucket(bucket)
    n = h * w
    c_lo, c_hi = _count_range(lo, hi, n)
    if c_lo > c_hi:
        raise ValueError(f"no {h}x{w} mask has a hole ratio in ({lo}, {hi}]: the image is too small")
    allowed = np.ones((h, w), dtype=bool)
    if border:
        m = default_margin(h, w) if margin is None else int(margin)
        if m < 0 or 2 * m >= min(h, w):
            raise ValueError(f"border margin {m} leaves no room inside a {h}x{w} image")
        allowed[:] = False
        allowed[m:h - m, m:w - m] = True
        if int(allowed.sum()) < c_lo:
            raise ValueError(f"bucket ({lo}, {hi}] cannot be met inside a {m}-px border of a {h}x{w} image")
    rng = _rng(seed)
    target = int(rng.integers(c_lo, c_hi + 1))
    # Bigger buckets get bigger shapes, so that a mask is a few dozen shapes, not hundreds.
    scale = 0.6 + 2.0 * math.sqrt(target / n)
    canvas = Image.new("L", (w, h), 0)
    hole = np.zeros((h, w), dtype=bool)
    for _ in range(max_shapes):
        shape_scale = scale * rng.uniform(0.6, 1.4)
        # A shape that overshoots the bucket is redrawn smaller (a few times) before the
        # boundary correction below has to erode it.
        for _attempt in range(6):
            trial = canvas.copy()
            _SHAPES[int(rng.integers(len(_SHAPES)))](ImageDraw.Draw(trial), rng, h, w, shape_scale)
            trial_hole = (np.asarray(trial) > 0) & allowed
            if int(trial_hole.sum()) <= c_hi:
                break
            shape_scale *= 0.6
        canvas, hole = trial, trial_hole
        if int(hole.sum()) >= target:
            break
    count = int(hole.sum())
    if not (c_lo <= count <= c_hi):
        hole = _adjust_count(hole, allowed, target, rng)
    return hole


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels (non-zero = hole) in a 2-D mask."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.any(axis=-1)
    return float(np.count_nonzero(mask)) / mask.size


def mask_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of mask ``index`` in a set drawn with ``seed`` (independent streams per index)."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)])


class IrregularMaskDataset:
    """Masks generated on the fly, for training (``torch.utils.data.Dataset``-compatible).

    Item ``i`` is a deterministic function of ``(seed, i)``, so data-loader workers, resumed
    runs and DDP ranks all see the same mask for the same index. Indices beyond ``len`` are
    valid too (they give new masks), which the trainer's sampler uses to vary masks per epoch.
    Bucket of item ``i``: ``buckets[i % len(buckets)]``.

    Args:
        size: ``H`` or ``(H, W)``.
        buckets: one ``(lo, hi)`` or a list of them (default: all six protocol buckets).
        seed: base seed.
        border: border constraint (holes away from the image border); ``"random"`` for half
            of the masks with it.
        length: nominal length (``len()``).

    Returns (per item):
        ``torch.float32`` tensor ``(1, H, W)``, **1 = hole**, 0 = valid.

    Example:
        >>> from fastinpaint.masks import IrregularMaskDataset
        >>> ds = IrregularMaskDataset(256, buckets=[(0.1, 0.2)], seed=0)
        >>> ds[5].shape
        torch.Size([1, 256, 256])
    """

    def __init__(self, size: Size, buckets: Union[Sequence[float], Sequence[Sequence[float]], None] = None,
                 seed: int = 0, border: Union[bool, str] = False, length: int = 10000) -> None:
        self.size = _size_hw(size)
        if buckets is None:
            buckets = BUCKETS
        elif len(buckets) == 2 and not isinstance(buckets[0], (tuple, list)):
            buckets = [buckets]  # a single (lo, hi)
        self.buckets = [_check_bucket(b) for b in buckets]
        if not self.buckets:
            raise ValueError("IrregularMaskDataset: at least one bucket is needed")
        if border not in (True, False, "random"):
            raise ValueError(f"border must be True, False or 'random', got {border!r}")
        self.seed = int(seed)
        self.border = border
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as a bool array, True = hole."""
        ss = mask_seed(self.seed, index)
        border = self.border if self.border != "random" else bool(index // len(self.buckets) % 2)
        return generate_mask(self.size, self.buckets[index % len(self.buckets)], seed=ss, border=border)

    def __getitem__(self, index: int):
        import torch

        return torch.from_numpy(self.mask(int(index))).to(torch.float32).unsqueeze(0)


MANIFEST_COLUMNS = ("mask", "bucket", "hole_ratio", "border", "seed", "width", "height")


def write_mask_set(out_dir: Union[str, os.PathLike], count: int, size: Size = 512,
                   bucket: Union[Sequence[float], Sequence[Sequence[float]]] = (0.1, 0.2), seed: int = 0,
                   border: bool = False, overwrite: bool = False, margin: Optional[int] = None) -> List[pathlib.Path]:
    """Writes ``count`` masks as PNGs (255 = hole, 0 = valid) plus ``manifest.csv``.

    File names are ``mask_<bucket>_<border|free>_<index>.png``; the manifest has the columns
    ``mask, bucket, hole_ratio, border, seed, width, height``. Mask ``i`` depends only on
    ``(seed, i)``, so sets of different counts share their first masks.

    Args:
        out_dir: output folder (created if missing).
        count: number of masks.
        size: ``H`` or ``(H, W)``.
        bucket: ``(lo, hi)``, or a list of buckets used in turn.
        seed: base seed.
        border: border constraint.
        overwrite: replace existing files; otherwise an existing mask or manifest is an error.
        margin: border margin (default :func:`default_margin`).

    Returns:
        The paths of the written masks.

    Raises:
        FileExistsError: a file would be overwritten and ``overwrite`` is False.

    Example:
        >>> import os, tempfile
        >>> from fastinpaint.masks import write_mask_set
        >>> out = os.path.join(tempfile.mkdtemp(), "masks_10_20")
        >>> paths = write_mask_set(out, 3, 256, (0.1, 0.2), seed=0)
        >>> [p.name for p in paths], "manifest.csv" in os.listdir(out)
        (['mask_0.1-0.2_free_00000.png', 'mask_0.1-0.2_free_00001.png', 'mask_0.1-0.2_free_00002.png'], True)
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    h, w = _size_hw(size)
    buckets = _buckets(bucket)
    tag = "border" if border else "free"
    entries = [(f"mask_{bucket_label(buckets[i % len(buckets)])}_{tag}_{i:05d}.png", {}, (h, w),
                buckets[i % len(buckets)], i) for i in range(count)]
    return _write_masks(pathlib.Path(out_dir), entries, seed, border, overwrite, margin, MANIFEST_COLUMNS)


def write_masks_for_images(out_dir: Union[str, os.PathLike], images_dir: Union[str, os.PathLike], count: int = 1,
                           bucket: Union[Sequence[float], Sequence[Sequence[float]]] = (0.1, 0.2), seed: int = 0,
                           border: bool = False, overwrite: bool = False,
                           margin: Optional[int] = None) -> List[pathlib.Path]:
    """Writes ``count`` masks for each image of ``images_dir`` (as :func:`fastinpaint.evaluate.
    load_pairs` lists it), each of that image's size (as displayed: EXIF orientation applied),
    named ``IMAGE__<bucket>_<j>.png`` after the image's stem — the name by which ``fastinpaint
    eval --images IMAGES_DIR --masks OUT_DIR`` pairs them — plus ``manifest.csv`` with an
    ``image`` column (the image's path under ``images_dir``) before :data:`MANIFEST_COLUMNS`.
    Mask ``j`` of image ``i`` depends only on ``(seed, i·count + j)``, as ``eval --generate``'s.

    Raises:
        FileExistsError: a file would be overwritten and ``overwrite`` is False.
        ValueError: ``count`` < 1, no image in ``images_dir``, or an unreadable image (named).
    """
    from fastinpaint.data import list_images
    from fastinpaint.io import _open_pil, orient

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    images_dir = pathlib.Path(images_dir)
    images = list_images(images_dir)
    if not images:
        raise ValueError(f"no images in {images_dir}")
    buckets = _buckets(bucket)
    entries = []
    for i, img in enumerate(images):
        width, height = orient(_open_pil(img, "image")).size
        for j in range(count):
            b = buckets[j % len(buckets)]
            entries.append((f"{img.stem}__{bucket_label(b)}_{j}.png", {"image": img.relative_to(images_dir).as_posix()},
                            (height, width), b, i * count + j))
    return _write_masks(pathlib.Path(out_dir), entries, seed, border, overwrite, margin,
                        ("image", *MANIFEST_COLUMNS))


def _buckets(bucket) -> List[Tuple[float, float]]:
    buckets = [bucket] if len(bucket) == 2 and not isinstance(bucket[0], (tuple, list)) else list(bucket)
    return [_check_bucket(b) for b in buckets]


def _write_masks(out: pathlib.Path, entries, seed: int, border: bool, overwrite: bool, margin: Optional[int],
                 columns: Sequence[str]) -> List[pathlib.Path]:
    """Writes the masks ``entries`` — ``(file name, extra manifest entries, (h, w), bucket, seed
    index)`` — and ``manifest.csv`` with ``columns`` into ``out``, refusing to replace files unless
    ``overwrite``."""
    from PIL import Image

    names = [e[0] for e in entries]
    manifest = out / "manifest.csv"
    if not overwrite:
        existing = [p for p in [manifest] + [out / nm for nm in names] if p.exists()]
        if existing:
            raise FileExistsError(
                f"{len(existing)} file(s) already exist in {out} (e.g. {existing[0].name}); "
                "pass overwrite=True to replace them")
    out.mkdir(parents=True, exist_ok=True)
    rows, paths = [], []
    for name, extra, (h, w), b, i in entries:
        m = generate_mask((h, w), b, seed=mask_seed(seed, i), border=border, margin=margin)
        path = out / name
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(m.astype(np.uint8) * 255, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
        paths.append(path)
        rows.append({**extra, "mask": name, "bucket": bucket_label(b), "hole_ratio": f"{m.mean():.6f}",
                     "border": int(bool(border)), "seed": f"{seed}:{i}", "width": w, "height": h})
    _remove_replaced_set(manifest, set(names))
    tmp = manifest.with_name("manifest.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, manifest)
    return paths


def _remove_replaced_set(manifest: pathlib.Path, kept: set) -> None:
    """With ``overwrite``, the masks an earlier manifest in the folder lists and the new set does not
    reuse: the set is replaced, not mixed with the old one beside a manifest that lists only the
    new. Only files that manifest names (plain names in its folder) are removed, never others."""
    if not manifest.exists():
        return
    try:
        with open(manifest, newline="") as f:
            old = [row.get("mask") or "" for row in csv.DictReader(f)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return  # not a manifest this writes: nothing is removed on its word
    for name in old:
        if name and name not in kept and pathlib.Path(name).name == name and name.endswith(".png"):
            try:
                (manifest.parent / name).unlink()
            except FileNotFoundError:
                pass


if __name__ == "__main__":  # `python -m fastinpaint.masks` (docs/training.md): the CLI's masks command
    from fastinpaint.cli.masks import main

    sys.exit(main())
