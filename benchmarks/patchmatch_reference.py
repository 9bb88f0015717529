"""Shared pieces of ``scripts/eval_patchmatch.py`` and ``benchmarks/bench_patchmatch.py``: the
development pairs, pypatchmatch at patches equal to ours (with an on-disk cache), the scores and
the per-kind table.

* Pairs come from ``../shared/data/masks/manifest.csv`` (relative to the repository root).
  :func:`select_pairs` with ``n`` picks pair ``i`` as (photo ``i mod P``, kind ``i mod 7``) in
  the manifest's sorted photo order, so any ``n >= 7`` covers all seven kinds (``n = 21``: three
  per kind, on 21 different photo/kind combinations), and ``n = 112`` is every pair.
* Both methods get the image with the hole pixels zeroed (as ``fastinpaint eval`` does), so
  neither can read the ground truth; the scores are on the composite (output inside the hole,
  the photo elsewhere).
* pypatchmatch's ``patch_size`` is a radius: ``patch_size=3`` is 7×7 patches, fastinpaint's
  default ``patch_size=7``. It is single-threaded; ``patch_match.set_random_seed(0)`` precedes
  each call, so its output is deterministic.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
KINDS = ("irr_01_10", "irr_10_20", "irr_20_30", "irr_30_40", "irr_40_50", "irr_50_60", "center25")
#: pypatchmatch's patch radius equal to fastinpaint's default 7x7 patches.
PYPM_PATCH_RADIUS = 3
PYPM_SEED = 0
DEFAULT_CACHE = pathlib.Path("/tmp/pypm_cache")


@dataclasses.dataclass(frozen=True)
class DevPair:
    photo: str  # file stem, e.g. "sunset_hill"
    kind: str  # e.g. "irr_20_30"
    image_path: pathlib.Path
    mask_path: pathlib.Path

    @property
    def name(self) -> str:
        return f"{self.photo}__{self.kind}"


def manifest_pairs(data: pathlib.Path = DATA) -> List[DevPair]:
    """Every pair of ``data/masks/manifest.csv``, in its order."""
    manifest = data / "masks" / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"development data not found: {manifest}")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    return [DevPair(pathlib.PurePath(r["image"]).stem, r["kind"], data / r["image"], data / r["mask"]) for r in rows]


def select_pairs(n: Optional[int] = None, data: pathlib.Path = DATA, photos: Optional[Sequence[str]] = None,
                 exclude_photos: Optional[Sequence[str]] = None) -> List[DevPair]:
    """``n`` development pairs spread over the kinds and photos (all of them when ``n`` is None).

    Pair ``i`` is (photo ``i mod P``, kind ``i mod K``) over the sorted photos and the kinds in
    :data:`KINDS` order (kinds not in the manifest are dropped, ones not in :data:`KINDS` follow
    them); combinations the manifest lacks are skipped. ``photos`` keeps only those photos' pairs,
    ``exclude_photos`` drops those photos' pairs (e.g. photos held out while tuning), before the
    selection.
    """
    pairs = manifest_pairs(data)
    known = {p.photo for p in pairs}
    for names in (photos or ()), (exclude_photos or ()):
        unknown = sorted(set(names) - known)
        if unknown:
            raise FileNotFoundError(f"no development pairs for photo(s) {unknown}; photos: {sorted(known)}")
    if photos is not None:
        pairs = [p for p in pairs if p.photo in set(photos)]
    if exclude_photos is not None:
        pairs = [p for p in pairs if p.photo not in set(exclude_photos)]
    if n is None or n >= len(pairs):
        return pairs
    by_key: Dict[Tuple[str, str], DevPair] = {(p.photo, p.kind): p for p in pairs}
    photos = sorted({p.photo for p in pairs})
    present = {p.kind for p in pairs}
    kinds = [k for k in KINDS if k in present] + sorted(present - set(KINDS))
    out: List[DevPair] = []
    i = 0
    while len(out) < n:
        key = (photos[i % len(photos)], kinds[i % len(kinds)])
        if key in by_key and by_key[key] not in out:
            out.append(by_key[key])
        i += 1
    return out


def load_pair(pair: DevPair) -> Tuple[np.ndarray, np.ndarray]:
    """``(image uint8 (H, W, 3), hole bool (H, W))``."""
    from PIL import Image

    img = np.array(Image.open(pair.image_path).convert("RGB"))
    hole = np.array(Image.open(pair.mask_path).convert("L")) > 127
    if hole.shape != img.shape[:2]:
        raise ValueError(f"{pair.mask_path}: mask {hole.shape} does not match image {img.shape[:2]}")
    return img, hole


def masked_input(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The image with its hole pixels zeroed (what both methods are given)."""
    given = img.copy()
    given[hole] = 0
    return given


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process, all threads)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def import_pypatchmatch():
    """pypatchmatch's ``patch_match`` module, or an ImportError saying how to get it."""
    try:
        from patchmatch import patch_match
    except Exception as exc:  # ImportError, or its native library failing to build or load
        raise ImportError(f"pypatchmatch is not installed or does not load ({exc}); pip install pypatchmatch") from exc
    return patch_match


def run_pypatchmatch(img: np.ndarray, hole: np.ndarray, patch_radius: int = PYPM_PATCH_RADIUS):
    """pypatchmatch on the masked image: ``(output uint8, wall s, CPU s)``."""
    patch_match = import_pypatchmatch()
    mask = hole.astype(np.uint8) * 255
    given = masked_input(img, hole)
    patch_match.set_random_seed(PYPM_SEED)
    return timed(patch_match.inpaint, given, mask=mask, patch_size=patch_radius)


def pypatchmatch_cached(pair: DevPair, img: np.ndarray, hole: np.ndarray,
                        cache: pathlib.Path = DEFAULT_CACHE) -> Tuple[np.ndarray, dict]:
    """pypatchmatch's output for ``pair`` from ``cache`` (``NAME__r3.png`` + ``NAME__r3.json``
    with the wall and CPU seconds it took), computing and storing it on first use."""
    from PIL import Image

    stem = cache / f"{pair.name}__r{PYPM_PATCH_RADIUS}"
    png, meta = stem.with_suffix(".png"), stem.with_suffix(".json")
    if png.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        out = np.array(Image.open(png).convert("RGB"))
        if out.shape == img.shape:
            return out, info
    out, wall, cpu = run_pypatchmatch(img, hole)
    info = {"pair": pair.name, "patch_size_radius": PYPM_PATCH_RADIUS, "seed": PYPM_SEED, "wall_s": wall,
            "cpu_s": cpu, "width": img.shape[1], "height": img.shape[0], "input": "hole pixels zeroed",
            "computed_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        from importlib.metadata import version

        info["pypatchmatch"] = version("pypatchmatch")
    except Exception:
        pass
    cache.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp.png")
    Image.fromarray(out).save(tmp)
    os.replace(tmp, png)
    meta.write_text(json.dumps(info, indent=1) + "\n")
    return out, info


def score(img: np.ndarray, out: np.ndarray, hole: np.ndarray) -> Dict[str, float]:
    """Scores of the composite on [0, 1]: PSNR inside the hole (dB), SSIM of the whole image,
    sharpness and SWD (raw) in the hole (see :mod:`fastinpaint.metrics`)."""
    from fastinpaint import metrics

    gt = img.astype(np.float64) / 255.0
    comp = metrics.composite(gt, out.astype(np.float64) / 255.0, hole)
    mse = float(np.mean((comp[hole] - gt[hole]) ** 2))
    return {"psnr": 10.0 * np.log10(1.0 / max(mse, 1e-12)),
            "ssim": float(metrics.ssim(gt, comp, data_range=1.0)),
            "sharpness": float(metrics.sharpness(comp, gt, hole, data_range=1.0)),
            "swd": float(metrics.swd(comp, gt, hole, data_range=1.0))}


SIDES = ("ours", "pypm")


def _group_stats(rows: Sequence[dict]) -> dict:
    """Scores averaged (nan ignored), seconds summed, over ``rows`` (each with ``ours`` and
    ``pypm`` dicts of psnr, ssim, sharpness, swd, wall, cpu)."""
    g = {"n": len(rows)}
    for side in SIDES:
        for k in ("psnr", "ssim", "sharpness", "swd"):
            v = np.array([r[side][k] for r in rows], dtype=np.float64)
            g[f"{side}_{k}"] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        for k in ("wall", "cpu"):
            g[f"{side}_{k}"] = float(sum(r[side][k] for r in rows))
    return g


def summarise(rows: Sequence[dict]) -> List[Tuple[str, dict]]:
    """``[(kind, stats), ..., ("all", stats)]`` in :data:`KINDS` order."""
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    kinds += sorted({r["kind"] for r in rows} - set(kinds))
    out = [(k, _group_stats([r for r in rows if r["kind"] == k])) for k in kinds]
    return out + [("all", _group_stats(rows))]


def format_table(rows: Sequence[dict]) -> str:
    """Per kind and overall: n, PSNR (hole, dB), SSIM, sharpness, SWD×1000 of ours / pypatchmatch
    (means), wall and CPU seconds (sums), and the ratios pypatchmatch ÷ ours of the seconds
    (speed-ups) and ours − pypatchmatch of PSNR."""
    head = (f"{'kind':<10} {'n':>3} | {'PSNR ours':>9} {'pypm':>6} {'d':>5} | {'SSIM ours':>9} {'pypm':>6} | "
            f"{'sharp ours':>10} {'pypm':>5} | {'SWDx1e3 ours':>12} {'pypm':>6} | "
            f"{'wall ours':>9} {'pypm':>7} {'x':>5} | {'CPU ours':>8} {'pypm':>7} {'x':>5}")
    lines = [head, "-" * len(head)]
    for kind, g in summarise(rows):
        lines.append(
            f"{kind:<10} {g['n']:>3} | {g['ours_psnr']:>9.2f} {g['pypm_psnr']:>6.2f} {g['ours_psnr'] - g['pypm_psnr']:>+5.2f} | "
            f"{g['ours_ssim']:>9.4f} {g['pypm_ssim']:>6.4f} | {g['ours_sharpness']:>10.3f} {g['pypm_sharpness']:>5.3f} | "
            f"{g['ours_swd'] * 1e3:>12.3f} {g['pypm_swd'] * 1e3:>6.3f} | "
            f"{g['ours_wall']:>9.2f} {g['pypm_wall']:>7.2f} {g['pypm_wall'] / g['ours_wall']:>5.1f} | "
            f"{g['ours_cpu']:>8.2f} {g['pypm_cpu']:>7.2f} {g['pypm_cpu'] / g['ours_cpu']:>5.1f}")
    lines.append("PSNR inside the hole, SSIM whole image, sharpness and SWD in the hole (composites, [0, 1]); "
                 "scores are means, seconds sums; x = pypatchmatch / ours")
    return "\n".join(lines)


def contact_sheet(entries: Sequence[Tuple[str, Sequence[np.ndarray]]], path, tile_width: int = 256,
                  columns: Sequence[str] = ("masked input", "ours", "pypatchmatch", "ground truth")) -> None:
    """Writes a PNG grid: one row per ``(label, [images...])``, each image area-downscaled to
    ``tile_width`` px wide, with the column names on top and the label on each row."""
    from PIL import Image, ImageDraw

    pad, head = 4, 16
    tiles = []
    for label, images in entries:
        row = []
        for im in images:
            pil = Image.fromarray(np.asarray(im, dtype=np.uint8))
            h = max(1, round(pil.height * tile_width / pil.width))
            row.append(pil.resize((tile_width, h), Image.BOX))
        tiles.append((label, row))
    ncol = max(len(r) for _, r in tiles)
    heights = [max(t.height for t in r) + head for _, r in tiles]
    sheet = Image.new("RGB", (ncol * (tile_width + pad) + pad, head + sum(h + pad for h in heights) + pad), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns[:ncol]):
        draw.text((pad + c * (tile_width + pad) + 2, 2), name, fill=(255, 255, 255))
    y = head + pad
    for (label, row), h in zip(tiles, heights):
        draw.text((pad + 2, y + 2), label, fill=(255, 255, 160))
        for c, t in enumerate(row):
            sheet.paste(t, (pad + c * (tile_width + pad), y + head))
        y += h + pad
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
