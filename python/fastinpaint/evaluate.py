"""Score inpainting methods on (image, mask) pairs: PSNR, SSIM and L1 on the composite image, and
the texture scores sharpness and SWD inside the hole.

:func:`evaluate` takes any callable ``fn(image, mask) -> image`` — ``image`` a ``uint8``
``(H, W, 3)`` array whose hole pixels are zeroed (so no method can read the ground truth),
``mask`` a bool ``(H, W)`` array, **True = hole** — which is the calling convention of
``fastinpaint.inpaint(image, mask, method=...)`` and of :func:`telea` (OpenCV) and
:func:`mean_fill`, the two baselines defined here. The method's output replaces the hole only
(the composite); metrics are computed on [0, 1] images, overall and per hole-ratio bucket,
printed as a table and written as CSV.

Command line: ``fastinpaint eval`` (:mod:`fastinpaint.cli.eval`), also as
``python -m fastinpaint.evaluate``::

    fastinpaint eval --method telea --images photos/ --masks masks/ --csv scores.csv
    fastinpaint eval --method patchmatch,telea --images photos/ --generate 6 --bucket all --max-size 256
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import sys
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from fastinpaint import metrics
from fastinpaint.io import require_hole
from fastinpaint.masks import BUCKETS, bucket_label, generate_mask, mask_seed

InpaintFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --- baselines ----------------------------------------------------------------------------------

def _as_uint8(image: np.ndarray) -> Tuple[np.ndarray, bool]:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image, False
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), True
    raise TypeError(f"image must be uint8 or float in [0, 1], got {image.dtype}")


def telea(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """OpenCV's fast-marching inpainting (Telea 2004), ``cv2.inpaint(..., cv2.INPAINT_TELEA)``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, uint8, or float in [0, 1].
        mask: ``(H, W)``, **non-zero = hole**.
        radius: neighbourhood radius in pixels (3).

    Returns:
        The inpainted image, same shape and dtype as ``image``.

    Raises:
        ImportError: OpenCV is not installed (``pip install opencv-python-headless``).
    """
    try:
        import cv2
    except ImportError:
        raise ImportError("the 'telea' baseline needs OpenCV: pip install opencv-python-headless") from None
    img, was_float = _as_uint8(image)
    m = (np.asarray(mask) != 0).astype(np.uint8) * 255
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask {m.shape} does not match image {img.shape[:2]}")
    out = cv2.inpaint(np.ascontiguousarray(img), m, radius, cv2.INPAINT_TELEA)
    if out.ndim == 2 and img.ndim == 3:
        out = out[..., None]
    return out.astype(np.float32) / 255.0 if was_float else out


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole with the per-channel mean of the valid pixels (a trivial baseline).

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, any numeric dtype.
        mask: ``(H, W)``, **non-zero = hole**.

    Returns:
        Same shape and dtype as ``image``.
    """
    image = np.asarray(image)
    hole = np.asarray(mask) != 0
    valid = ~hole
    out = image.copy()
    if not valid.any():
        return out
    mean = image[valid].astype(np.float64).mean(axis=0)
    if np.issubdtype(image.dtype, np.integer):
        mean = np.round(mean)
    out[hole] = mean.astype(image.dtype)
    return out


def telea5(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`telea` with radius 5, ``cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)``: the reference
    the learned methods' targets are stated against (issue 18)."""
    return telea(image, mask, radius=5)


def pypatchmatch(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """pypatchmatch's PatchMatch inpainting at ``patch_size=3`` (a radius: 7×7 patches, as
    fastinpaint's default), random seed 0 — the external PatchMatch the learned methods' targets
    name.

    Args:
        image: ``(H, W, 3)`` uint8 (or float in [0, 1]).
        mask: ``(H, W)``, **non-zero = hole**.

    Raises:
        ImportError: pypatchmatch is not installed or its native library does not load.
    """
    try:
        from patchmatch import patch_match
    except Exception as exc:  # ImportError, or its native library failing to build or load
        raise ImportError(f"the 'pypatchmatch' baseline needs pypatchmatch ({exc}): pip install pypatchmatch") from None
    img, was_float = _as_uint8(image)
    m = (np.asarray(mask) != 0).astype(np.uint8) * 255
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask {m.shape} does not match image {img.shape[:2]}")
    patch_match.set_random_seed(0)
    out = np.asarray(patch_match.inpaint(np.ascontiguousarray(img), mask=m, patch_size=3))
    return out.astype(np.float32) / 255.0 if was_float else out


#: Methods this module provides itself (the rest come from ``fastinpaint.inpaint``).
BASELINES: Dict[str, InpaintFn] = {"telea": telea, "telea5": telea5, "pypatchmatch": pypatchmatch, "mean": mean_fill}


# --- pairs --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Pair:
    """One evaluation case: ``image`` uint8 ``(H, W, 3)``, ``mask`` bool ``(H, W)`` (True = hole)."""

    name: str
    image: np.ndarray
    mask: np.ndarray


def read_image(path: Union[str, os.PathLike], max_size: Optional[int] = None) -> np.ndarray:
    """Reads an image (:func:`fastinpaint.io.read_image`: as displayed) as uint8 RGB ``(H, W, 3)``;
    ``max_size`` area-downscales the longer side.

    Raises:
        ValueError: the file cannot be read as an image (the message names it).
    """
    from PIL import Image

    from fastinpaint import io as fio

    rgb = fio.to_rgb8(fio.read_image(path).pixels)
    if max_size and max(rgb.shape[:2]) > max_size:
        im = Image.fromarray(rgb)
        s = max_size / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BOX)
        rgb = np.asarray(im, dtype=np.uint8)
    return rgb


def read_mask(path: Union[str, os.PathLike], shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Reads a mask file as bool ``(H, W)`` by the one mask rule of :mod:`fastinpaint.io` (grey >
    127 = hole); resized (nearest) to ``shape``.

    Raises:
        ValueError: unreadable file.
    """
    from PIL import Image

    from fastinpaint import io as fio

    m = fio.read_mask(path)
    if shape is not None and m.shape != tuple(shape):
        im = Image.fromarray(m.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.NEAREST)
        m = np.asarray(im) > 127
    return m


def _index_folder(folder: pathlib.Path) -> List[pathlib.Path]:
    from fastinpaint.data import list_images

    return list_images(folder)


def match_pairs(images_dir: Union[str, os.PathLike], masks_dir: Union[str, os.PathLike]) -> List[Tuple[pathlib.Path, pathlib.Path]]:
    """Matches mask files to image files.

    With a ``manifest.csv`` in ``masks_dir`` that has ``image`` and ``mask`` columns (paths
    relative to the manifest's folder or its parent, as in ``shared/data/masks/manifest.csv``),
    its rows are the pairs; an image is found by that path or, failing that, by file name under
    ``images_dir``. Otherwise a mask matches the image with the same stem (``cat.png`` ↔
    ``cat.png``), or whose stem is the image stem followed by ``__`` and a suffix
    (``cat__irr_10_20.png``), so an image may have several masks. A mask whose name matches
    several images (``a/cat.png`` and ``b/cat.jpg``) is an error naming them, not a guess.

    Returns:
        Sorted ``(image_path, mask_path)`` list.

    Raises:
        FileNotFoundError / ValueError: missing or empty folders, masks that match no image or
        several (named in the message).
    """
    images_dir, masks_dir = pathlib.Path(images_dir), pathlib.Path(masks_dir)
    images = _index_folder(images_dir)
    by_name: Dict[str, List[pathlib.Path]] = {}
    by_stem: Dict[str, List[pathlib.Path]] = {}
    for p in images:
        by_name.setdefault(p.name, []).append(p)
        by_stem.setdefault(p.stem, []).append(p)

    def only(found: Optional[List[pathlib.Path]], mask: pathlib.Path) -> Optional[pathlib.Path]:
        # one image per name, or the pairing is a guess: it silently scored only the first
        if found and len(found) > 1:
            raise ValueError(f"mask {mask} matches {len(found)} images by name: {', '.join(map(str, found))}; "
                             f"give them distinct names, or pair them in a manifest.csv (image,mask columns)")
        return found[0] if found else None
    manifest = masks_dir / "manifest.csv"
    pairs: List[Tuple[pathlib.Path, pathlib.Path]] = []
    unmatched: List[str] = []
    if manifest.is_file():
        with open(manifest, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            rows = list(reader)
        if "image" in cols and "mask" in cols:
            bases = [masks_dir, masks_dir.parent]
            for row in rows:
                mask_path = next((b / row["mask"] for b in bases if (b / row["mask"]).is_file()), None)
                if mask_path is None:
                    raise FileNotFoundError(f"{manifest}: mask {row['mask']!r} not found next to the manifest")
                img_path = next((b / row["image"] for b in bases + [images_dir] if (b / row["image"]).is_file()), None)
                exact = images_dir / row["image"]
                cand = exact if exact.is_file() else only(by_name.get(pathlib.PurePath(row["image"]).name), mask_path)
                if cand is not None:  # prefer the copy under --images
                    img_path = cand
                if img_path is None:
                    unmatched.append(f"{row['mask']} (image {row['image']})")
                    continue
                pairs.append((img_path, mask_path))
            if unmatched:
                raise ValueError(f"{len(unmatched)} mask(s) in {manifest} have no image under {images_dir}: "
                                 + ", ".join(unmatched[:5]) + (" …" if len(unmatched) > 5 else ""))
            return sorted(pairs)
    masks = _index_folder(masks_dir)
    for m in masks:
        img = only(by_stem.get(m.stem), m)
        if img is None and "__" in m.stem:
            img = only(by_stem.get(m.stem.split("__", 1)[0]), m)
        if img is None:
            unmatched.append(m.name)
        else:
            pairs.append((img, m))
    if unmatched:
        raise ValueError(f"{len(unmatched)} mask(s) in {masks_dir} match no image in {images_dir} by file name "
                         f"(expected IMAGE.png or IMAGE__suffix.png, or a manifest.csv with image,mask columns): "
                         + ", ".join(unmatched[:5]) + (" …" if len(unmatched) > 5 else ""))
    return sorted(pairs)


def images_without_masks(images_dir: Union[str, os.PathLike], masks_dir: Union[str, os.PathLike]) -> List[pathlib.Path]:
    """The images of ``images_dir`` that no mask of ``masks_dir`` is paired with by
    :func:`match_pairs` (so not scored), sorted."""
    paired = {img for img, _ in match_pairs(images_dir, masks_dir)}
    return [p for p in _index_folder(pathlib.Path(images_dir)) if p not in paired]


def load_pairs(images_dir, masks_dir=None, generate: int = 0,
               buckets: Sequence[Sequence[float]] = BUCKETS, seed: int = 0, border: bool = False,
               max_size: Optional[int] = None, limit: Optional[int] = None) -> List[Pair]:
    """Loads evaluation pairs from an image folder and a mask folder, or generates the masks.

    Args:
        images_dir: folder of images (recursive).
        masks_dir: folder of masks (see :func:`match_pairs`), or None to generate.
        generate: without ``masks_dir``, the number of masks generated per image, with the
            buckets used in turn (mask ``j`` of image ``i`` is seeded by ``(seed, i·generate+j)``).
        buckets: buckets for generated masks.
        seed: base seed for generated masks.
        border: border constraint for generated masks.
        max_size: area-downscale images whose longer side exceeds this (masks follow, nearest).
        limit: keep the first ``limit`` pairs (at least 1; None: all).

    Returns:
        List of :class:`Pair`.

    Raises:
        ValueError: see :func:`match_pairs`; an unreadable file, a mask of the wrong size, or a
        mask file with no hole pixel (each named).
    """
    # 0 meant "all" (falsy) and -1 "all but the last" (a slice): both silently, so refused
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int (None: every pair), got {limit!r}")
    pairs: List[Pair] = []
    if masks_dir is not None:
        matched = match_pairs(images_dir, masks_dir)
        if limit is not None:
            matched = matched[:limit]
        cache: Dict[pathlib.Path, np.ndarray] = {}
        for img_path, mask_path in matched:
            if img_path not in cache:
                cache[img_path] = read_image(img_path, max_size)
            image = cache[img_path]
            raw = require_hole(read_mask(mask_path), mask_path)  # a 0/1 mask file reads as empty
            if max_size is None and raw.shape != image.shape[:2]:
                raise ValueError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but image {img_path} is "
                                 f"{image.shape[1]}x{image.shape[0]}")
            mask = read_mask(mask_path, image.shape[:2])
            pairs.append(Pair(f"{img_path.stem}/{mask_path.stem}", image, mask))
        return pairs
    if generate < 1:
        raise ValueError("give a mask folder, or generate >= 1 masks per image")
    buckets = list(buckets)
    for i, img_path in enumerate(_index_folder(pathlib.Path(images_dir))):
        image = read_image(img_path, max_size)
        for j in range(generate):
            b = buckets[j % len(buckets)]
            mask = generate_mask(image.shape[:2], b, seed=mask_seed(seed, i * generate + j), border=border)
            pairs.append(Pair(f"{img_path.stem}/gen_{bucket_label(b)}_{j}", image, mask))
            if limit is not None and len(pairs) >= limit:
                return pairs
    return pairs


# --- scoring ------------------------------------------------------------------------------------

#: Hole-ratio buckets reported by :func:`evaluate` (the protocol's six, plus one above 0.6).
REPORT_BUCKETS: Tuple[Tuple[float, float], ...] = BUCKETS + ((0.6, 1.0),)


def ratio_bucket(ratio: float, buckets: Sequence[Sequence[float]] = REPORT_BUCKETS) -> str:
    """The label of the ``(lo, hi]`` bucket holding ``ratio`` (``"0-0.01"`` below the first)."""
    for lo, hi in buckets:
        if lo < ratio <= hi:
            return bucket_label((lo, hi))
    return f"0-{buckets[0][0]:g}" if ratio <= buckets[0][0] else "other"


def _output_to_float(out, image: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(out)
    if out.ndim == 2 and image.ndim == 3:
        out = out[..., None]
    if out.shape != image.shape:
        raise ValueError(f"method {name!r} returned shape {out.shape} for an image of shape {image.shape}")
    if out.dtype == np.uint8:
        return out.astype(np.float64) / 255.0
    if np.issubdtype(out.dtype, np.floating):
        # same scale as the input: the input is uint8, so floats are read as 0..255 unless
        # they all lie in [0, 1] (a method that returns [0, 1] floats).
        out = out.astype(np.float64)
        return np.clip(out if out.max(initial=0.0) <= 1.0 else out / 255.0, 0.0, 1.0)
    raise TypeError(f"method {name!r} returned dtype {out.dtype}; expected uint8 or float")


@dataclasses.dataclass
class EvalResult:
    """Per-pair rows and the summary (overall ``"all"`` and per-bucket) rows of :func:`evaluate`."""

    rows: List[dict]
    summary: List[dict]

    def table(self) -> str:
        """The summary as a fixed-width text table."""
        return format_table(self.summary)


#: The scores of each row (``swd`` raw; the printed table shows it ×1000). ``offset_r/g/b``: the
#: fill's colour cast, :func:`fastinpaint.metrics.fill_mean_offset` in 8-bit grey levels (signed;
#: a bucket's mean is the method's average cast there).
OFFSETS = ("offset_r", "offset_g", "offset_b")
SCORES = ("psnr", "ssim", "l1", "sharpness", "swd", "seconds") + OFFSETS
SUMMARY_FIELDS = ("method", "bucket", "count") + SCORES
PER_IMAGE_FIELDS = ("method", "pair", "hole_ratio", "bucket") + SCORES
#: CSV formats other than ``{:.6f}`` (SWD is ~1e-3: keep its significant digits).
_CSV_FORMATS = {"swd": "{:.9f}"}


def _mean(values: Sequence[float]) -> float:
    """The mean of the values that are not nan (sharpness is nan where the photo is flat in the
    hole); nan if there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _summarise(rows: List[dict], bucket_order: List[str]) -> List[dict]:
    out = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        groups = [("all", mine)] + [(b, [r for r in mine if r["bucket"] == b]) for b in bucket_order]
        for label, group in groups:
            if not group:
                continue
            out.append({"method": method, "bucket": label, "count": len(group),
                        **{k: _mean([r[k] for r in group]) for k in SCORES}})
    return out


def format_table(summary: Sequence[Mapping]) -> str:
    """Formats summary rows as ``method  bucket  n  PSNR  SSIM  L1  dR  dG  dB  sharp  SWDx1000  s/img``
    (dR/dG/dB: the fill-mean offsets in grey levels; SWD multiplied by 1000 for display, the rows
    and CSVs hold the raw value)."""
    head = (f"{'method':<12} {'hole ratio':<10} {'n':>4} {'PSNR dB':>8} {'SSIM':>7} {'L1':>8} "
            f"{'dR':>6} {'dG':>6} {'dB':>6} {'sharp':>6} {'SWDx1000':>8} {'s/img':>7}")
    lines = [head, "-" * len(head)]
    for r in summary:
        lines.append(f"{r['method']:<12} {r['bucket']:<10} {r['count']:>4} {r['psnr']:>8.3f} {r['ssim']:>7.4f} "
                     f"{r['l1']:>8.5f} {r['offset_r']:>+6.2f} {r['offset_g']:>+6.2f} {r['offset_b']:>+6.2f} "
                     f"{r['sharpness']:>6.3f} {r['swd'] * 1000:>8.3f} {r['seconds']:>7.3f}")
    return "\n".join(lines)


class ReportWriteError(OSError):
    """A report (CSV) could not be written; its message names the file and why, in one line."""


def write_csv(path: Union[str, os.PathLike], rows: Sequence[Mapping], fields: Sequence[str]) -> None:
    """Writes rows as CSV (atomically: a temporary file, then a rename); a failure is a
    :class:`ReportWriteError` (told apart from an OSError met while scoring)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (_CSV_FORMATS.get(k, "{:.6f}").format(v) if isinstance(v, float) else v)
                            for k, v in r.items()})
        os.replace(tmp, path)
    except OSError as exc:
        raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def evaluate(method_fn: Union[InpaintFn, Mapping[str, InpaintFn]], pairs: Iterable, *,
             csv_path: Optional[Union[str, os.PathLike]] = None, per_image_csv: Optional[Union[str, os.PathLike]] = None,
             print_table: bool = True, progress: bool = False) -> EvalResult:
    """Scores one or more inpainting callables on (image, mask) pairs.

    Each method is called as ``fn(image, mask)`` with ``image`` a uint8 ``(H, W, 3)`` copy whose
    hole pixels are set to 0 and ``mask`` a bool ``(H, W)`` array, **True = hole**. It must
    return an image of the same shape, uint8 (0..255) or float (0..255, or [0, 1]). The
    composite (output inside the hole, original outside) is scored against the original on
    [0, 1]: PSNR (dB, data range 1), SSIM (Gaussian window, as scikit-image), L1 (mean
    absolute error over the whole image, in [0, 1]) and, inside the hole, the texture scores
    :func:`fastinpaint.metrics.sharpness` (1 = as much detail as the photo, < 1 = blurrier) and
    :func:`fastinpaint.metrics.swd` (raw; lower is better; the printed table shows it ×1000), and the
    fill's colour cast per channel, ``offset_r/g/b`` (:func:`fastinpaint.metrics.fill_mean_offset`
    in 8-bit grey levels: the mean of the fill over the hole minus the ground truth's, signed);
    also the seconds per call.

    Args:
        method_fn: a callable, or ``{name: callable}`` to compare several on the same pairs.
        pairs: :class:`Pair` objects, or ``(image, mask)`` / ``(name, image, mask)`` tuples.
            Images uint8, or float in [0, 1]; masks non-zero = hole.
        csv_path: write the summary (``method, bucket, count, psnr, ssim, l1, sharpness, swd,
            seconds, offset_r, offset_g, offset_b``) here; each score is the mean over the bucket's
            pairs (sharpness leaves out the nan of a pair whose photo is flat in the hole).
        per_image_csv: write one row per (method, pair) here.
        print_table: print the summary table.
        progress: show a tqdm bar.

    Returns:
        :class:`EvalResult` with ``rows`` (per pair) and ``summary`` (``"all"`` then each
        hole-ratio bucket present, per method).

    Raises:
        ValueError: no pairs, a mask/image shape mismatch, an empty mask, or a method returning
        the wrong shape.

    Example:
        >>> import functools, os, tempfile, numpy as np, fastinpaint
        >>> from PIL import Image
        >>> from fastinpaint.evaluate import evaluate, load_pairs, telea
        >>> photos, masks = tempfile.mkdtemp(), tempfile.mkdtemp()   # e.g. "photos", "masks": same file names
        >>> y, x = np.mgrid[0:64, 0:96]
        >>> Image.fromarray(np.dstack([x * 2, y * 3, x + y]).astype(np.uint8)).save(f"{photos}/ramp.png")
        >>> hole = np.zeros((64, 96), np.uint8); hole[20:40, 30:60] = 255
        >>> Image.fromarray(hole).save(f"{masks}/ramp.png")
        >>> pairs = load_pairs(photos, masks, max_size=256)
        >>> res = evaluate({"telea": telea, "patchmatch": functools.partial(fastinpaint.inpaint, method="patchmatch")},
        ...                pairs, csv_path=os.path.join(photos, "scores.csv"), print_table=False)
        >>> [(row["method"], row["bucket"], row["count"]) for row in res.summary]
        [('telea', 'all', 1), ('telea', '0.01-0.1', 1), ('patchmatch', 'all', 1), ('patchmatch', '0.01-0.1', 1)]
    """
    methods = dict(method_fn) if isinstance(method_fn, Mapping) else {getattr(method_fn, "__name__", "method"): method_fn}
    norm: List[Pair] = []
    for k, p in enumerate(pairs):
        if isinstance(p, Pair):
            norm.append(p)
        elif len(p) == 2:
            norm.append(Pair(f"pair_{k}", p[0], p[1]))
        elif len(p) == 3:
            norm.append(Pair(str(p[0]), p[1], p[2]))
        else:
            raise ValueError(f"pair {k}: expected (image, mask) or (name, image, mask)")
    if not norm:
        raise ValueError("evaluate: no (image, mask) pairs to score")
    rows: List[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(norm) * len(methods), desc="eval", unit="img")
    for p in norm:
        image, _ = _as_uint8(p.image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        hole = np.asarray(p.mask)
        if hole.ndim == 3:
            hole = hole.any(axis=-1)
        hole = hole != 0
        if hole.shape != image.shape[:2]:
            raise ValueError(f"{p.name}: mask {hole.shape} does not match image {image.shape[:2]}")
        if not hole.any():
            raise ValueError(f"{p.name}: the mask has no hole pixels")
        ratio = float(hole.mean())
        gt = image.astype(np.float64) / 255.0
        for name, fn in methods.items():
            given = image.copy()
            given[hole] = 0
            t0 = time.perf_counter()
            out = fn(given, hole.copy())
            dt = time.perf_counter() - t0
            comp = metrics.composite(gt, _output_to_float(out, image, name), hole)
            rows.append({"method": name, "pair": p.name, "hole_ratio": ratio, "bucket": ratio_bucket(ratio),
                         "psnr": float(metrics.psnr(gt, comp, data_range=1.0)),
                         "ssim": float(metrics.ssim(gt, comp, data_range=1.0)),
                         "l1": float(metrics.l1(gt, comp, data_range=1.0)),
                         "sharpness": float(metrics.sharpness(comp, gt, hole, data_range=1.0)),
                         "swd": float(metrics.swd(comp, gt, hole, data_range=1.0)), "seconds": dt,
                         **dict(zip(OFFSETS, 255.0 * metrics.fill_mean_offset(comp, gt, hole, data_range=1.0)))})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    order = [bucket_label(b) for b in REPORT_BUCKETS]
    order = [f"0-{REPORT_BUCKETS[0][0]:g}"] + order + ["other"]
    result = EvalResult(rows, _summarise(rows, order))
    if csv_path:
        write_csv(csv_path, result.summary, SUMMARY_FIELDS)
    if per_image_csv:
        write_csv(per_image_csv, rows, PER_IMAGE_FIELDS)
    if print_table:
        print(result.table())
    return result


if __name__ == "__main__":  # `python -m fastinpaint.evaluate`: the CLI's eval command
    from fastinpaint.cli.eval import main

    sys.exit(main())
