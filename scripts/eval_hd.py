#!/usr/bin/env python3
"""Developer tool: does ``hd_strategy="auto"`` keep each method's quality on large photos?

    .venv/bin/python scripts/eval_hd.py                                  # every method, 32 pairs
    .venv/bin/python scripts/eval_hd.py --methods pconv --photos astronaut,moss --csv /tmp/hd.csv

The development photos are 512 px; the large test images are those photos **upscaled** (Lanczos)
to a long side of 2048 and 4000 px (2048x1365 and 4000x2667 for a 3:2 photo), their masks with
them (nearest). For each photo and mask kind (default ``irr_20_30`` and ``center25``) and each
method, it runs ``fastinpaint.inpaint(photo, mask, method=m, seed=0)`` (``auto``; ``--strategy``
at the large sizes; ``--seeds N``: seeds 0..N-1, scores averaged per pair) at 512 px and at each
large size and reports, per method and size, the mean PSNR inside the hole and the mean sharpness
(:func:`fastinpaint.metrics.sharpness`, 1.0 = the photo's detail) against the photo at that size,
their differences to the 512 px scores (mean and worst pair), and the seconds per call. Issue
15's targets: PSNR within 1.5 dB of the 512 px score and sharpness no lower than it minus 0.1.
Nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time

import numpy as np
from PIL import Image

import fastinpaint
from fastinpaint.metrics import sharpness

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from eval_patchmatch import _parse_option  # noqa: E402  (one KEY=VALUE rule for the tuning scripts)

DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _hole_scores(out: np.ndarray, truth: np.ndarray, hole: np.ndarray):
    """PSNR inside the hole and sharpness, on the hole's box grown by 2 px (the Sobel reach)."""
    ys, xs = np.nonzero(hole)
    y0, y1 = max(0, ys.min() - 2), min(hole.shape[0], ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(hole.shape[1], xs.max() + 3)
    o, t, h = out[y0:y1, x0:x1], truth[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    err = (o[h].astype(np.float64) - t[h].astype(np.float64)) / 255.0
    psnr = 10 * np.log10(1.0 / max(np.mean(err ** 2), 1e-12))
    return psnr, float(sharpness(o, t, h))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=pathlib.Path, default=DATA, help=f"development data (default {DATA})")
    p.add_argument("--methods", default="patchmatch,biharmonic,pconv,glcic")
    p.add_argument("--kinds", default="irr_20_30,center25", help="mask kinds (default irr_20_30,center25)")
    p.add_argument("--photos", default=None, help="comma-separated photo names (default: all)")
    p.add_argument("--sizes", default="2048,4000", help="long sides of the upscaled photos")
    p.add_argument("--strategy", default="auto", help="hd_strategy at the large sizes (default auto; "
                   "'original' gives the exact full-resolution fill to compare with)")
    p.add_argument("--csv", type=pathlib.Path, default=None, help="write one row per pair and size here")
    p.add_argument("--seeds", type=int, default=1,
                   help="average each pair's scores over seeds 0..N-1 (default 1: seed 0). A PatchMatch "
                        "fill's PSNR varies by up to ~1 dB from seed to seed on one pair, at any size")
    p.add_argument("--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option passed to every method's call (repeatable; e.g. patchmatch's "
                        "PatchMatchOptions fields, with --methods patchmatch)")
    args = p.parse_args(argv)

    photos = sorted(q.stem for q in (args.data / "photos").glob("*.png"))
    if args.photos:
        photos = [n for n in photos if n in args.photos.split(",")]
    methods = args.methods.split(",")
    kinds = args.kinds.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if not photos:
        print(f"eval_hd: no photos in {args.data / 'photos'}", file=sys.stderr)
        return 1
    rows = []
    for name in photos:
        photo = Image.open(args.data / "photos" / f"{name}.png").convert("RGB")
        for kind in kinds:
            mask = Image.open(args.data / "masks" / f"{name}__{kind}.png").convert("L")
            for long_side in [max(photo.size)] + sizes:
                f = long_side / max(photo.size)
                size = (round(photo.width * f), round(photo.height * f))
                truth = np.asarray(photo.resize(size, Image.Resampling.LANCZOS) if f != 1 else photo)
                hole = np.asarray(mask.resize(size, Image.Resampling.NEAREST) if f != 1 else mask) > 127
                masked = truth.copy()
                masked[hole] = 0
                for m in methods:
                    strategy = args.strategy if f != 1 else "auto"
                    scores = []
                    for seed in range(args.seeds):
                        t = time.perf_counter()
                        out = fastinpaint.inpaint(masked, hole, method=m, seed=seed, hd_strategy=strategy,
                                                  **dict(args.option))
                        scores.append((*_hole_scores(out, truth, hole), time.perf_counter() - t))
                    psnr, sharp, sec = (float(np.mean(v)) for v in zip(*scores))
                    rows.append(dict(photo=name, kind=kind, method=m, long_side=long_side, size=f"{size[0]}x{size[1]}",
                                     psnr=psnr, sharpness=sharp, seconds=sec, seeds=args.seeds))
                    print(f"{name:14s} {kind:10s} {m:10s} {size[0]:5d}x{size[1]:<5d} PSNR {psnr:6.2f}  "
                          f"sharpness {sharp:5.3f}  {sec:6.2f} s", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    print("\nmethod      long side  pairs | PSNR   vs 512: mean  worst | sharpness  vs 512: mean  worst | s/call")
    base = {(r["photo"], r["kind"], r["method"]): r for r in rows if r["long_side"] == 512}
    for m in methods:
        for long_side in [512] + sizes:
            sel = [r for r in rows if r["method"] == m and r["long_side"] == long_side]
            if not sel:
                continue
            dp = [r["psnr"] - base[(r["photo"], r["kind"], m)]["psnr"] for r in sel]
            ds = [r["sharpness"] - base[(r["photo"], r["kind"], m)]["sharpness"] for r in sel]
            print(f"{m:11s} {long_side:9d} {len(sel):6d} | {np.mean([r['psnr'] for r in sel]):5.2f}  "
                  f"{np.mean(dp):+11.2f} {min(dp):+6.2f} | {np.nanmean([r['sharpness'] for r in sel]):9.3f}  "
                  f"{np.nanmean(ds):+11.3f} {np.nanmin(ds):+6.3f} | {np.mean([r['seconds'] for r in sel]):6.2f}")
    print("PSNR inside the hole (dB), sharpness in the hole; 'vs 512' = the same pair at 512 px; "
          "worst = the lowest difference over the pairs. Large sizes are Lanczos upscales of the 512 px photos.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
