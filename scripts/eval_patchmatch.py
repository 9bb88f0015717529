#!/usr/bin/env python3
"""Developer tool: fastinpaint's PatchMatch against pypatchmatch on the development pairs, for tuning.

    .venv/bin/python scripts/eval_patchmatch.py                      # all 112 pairs
    .venv/bin/python scripts/eval_patchmatch.py --pairs 21           # 3 per mask kind
    .venv/bin/python scripts/eval_patchmatch.py --pairs 21 --option sigma_quantile=0.5 \\
        --contact-sheet /tmp/sheet.png --csv /tmp/rows.csv
    .venv/bin/python scripts/eval_patchmatch.py --exclude-photos dahlia,moss   # tune without them

For each pair (``../shared/data/masks/manifest.csv`` relative to the repository root; ``--pairs N``
picks N spread over the 7 mask kinds and the photos, see ``benchmarks/patchmatch_reference.py``)
it runs ``fastinpaint.inpaint(img, mask, method="patchmatch", seed=0, **options)`` on the image
with its hole zeroed (``--option KEY=VALUE``, repeatable, becomes one of ``options``; the value is
read as a Python literal when it is one, else kept as a string) and takes pypatchmatch's output at
equal patches (``patch_size=3``, a radius: 7×7 patches; seed 0) from the cache folder
(``--cache``, default /tmp/pypm_cache: ``NAME__r3.png`` and ``NAME__r3.json`` with the wall and
CPU seconds it took, computed on first use — about 2–4 s per 512-px pair).

It prints, per mask kind and overall, PSNR inside the hole, SSIM, sharpness and SWD×1000 (means;
see fastinpaint.metrics) and wall and CPU seconds (sums; CPU = ``time.process_time``, all
threads) of ours and pypatchmatch, with the ratios. pypatchmatch's seconds are those recorded when
its output was cached (possibly under another load than ours now). ``--contact-sheet PATH``
writes a PNG: one row per pair, columns masked input (hole in magenta), ours, pypatchmatch,
ground truth (256-px tiles). Sequential; nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import ast
import csv
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import patchmatch_reference as ref  # noqa: E402


def _parse_option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        val = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        val = value
    return key.strip(), val


def _names(text):
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=None, metavar="N", help="N pairs spread over the kinds (default: all)")
    p.add_argument("--photos", default=None, metavar="A,B,...",
                   help="only the pairs of these photos (file stems), e.g. a tuning set")
    p.add_argument("--exclude-photos", default=None, metavar="A,B,...",
                   help="leave out the pairs of these photos, e.g. held out while tuning")
    p.add_argument("--data", type=pathlib.Path, default=ref.DATA, help=f"development data (default {ref.DATA})")
    p.add_argument("--cache", type=pathlib.Path, default=ref.DEFAULT_CACHE, help="pypatchmatch output cache")
    p.add_argument("--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the patchmatch method (repeatable)")
    p.add_argument("--contact-sheet", type=pathlib.Path, default=None, metavar="PATH", help="write a PNG contact sheet")
    p.add_argument("--csv", type=pathlib.Path, default=None, metavar="PATH", help="write one row per pair here")
    p.add_argument("--quiet", action="store_true", help="no per-pair lines")
    args = p.parse_args(argv)

    import torch

    import fastinpaint

    options = dict(args.option)
    try:
        pairs = ref.select_pairs(args.pairs, args.data, photos=_names(args.photos),
                                 exclude_photos=_names(args.exclude_photos))
    except FileNotFoundError as err:
        print(f"eval_patchmatch: {err}", file=sys.stderr)
        return 2
    # first-call costs (imports, thread pools) are not what we time
    warm = np.zeros((64, 64), bool)
    warm[20:40, 20:40] = True
    fastinpaint.inpaint(np.zeros((64, 64, 3), np.uint8), warm, method="patchmatch", seed=0, **options)

    print(f"{len(pairs)} pairs; ours: patchmatch, seed 0, options {options or '{}'}, "
          f"{torch.get_num_threads()} torch threads; pypatchmatch: patch_size={ref.PYPM_PATCH_RADIUS} (7x7), "
          f"seed {ref.PYPM_SEED}, 1 thread, cache {args.cache}")
    rows, sheet = [], []
    t_start = time.perf_counter()
    for k, pair in enumerate(pairs):
        img, hole = ref.load_pair(pair)
        given = ref.masked_input(img, hole)
        ours, wall, cpu = ref.timed(fastinpaint.inpaint, given, hole, method="patchmatch", seed=0, **options)
        theirs, info = ref.pypatchmatch_cached(pair, img, hole, args.cache)
        row = {"pair": pair.name, "kind": pair.kind, "hole_ratio": float(hole.mean()),
               "ours": {**ref.score(img, ours, hole), "wall": wall, "cpu": cpu},
               "pypm": {**ref.score(img, theirs, hole), "wall": info["wall_s"], "cpu": info["cpu_s"]}}
        rows.append(row)
        if not args.quiet:
            o, t = row["ours"], row["pypm"]
            print(f"[{k + 1:>3}/{len(pairs)}] {pair.name:<28} PSNR {o['psnr']:6.2f} / {t['psnr']:6.2f}  "
                  f"SSIM {o['ssim']:.4f} / {t['ssim']:.4f}  sharp {o['sharpness']:.3f} / {t['sharpness']:.3f}  "
                  f"SWDx1e3 {o['swd'] * 1e3:6.3f} / {t['swd'] * 1e3:6.3f}  "
                  f"wall {o['wall']:5.2f} / {t['wall']:5.2f} s  CPU {o['cpu']:5.2f} / {t['cpu']:5.2f} s", flush=True)
        if args.contact_sheet:
            shown = given.copy()
            shown[hole] = (255, 0, 255)  # the hole in magenta: black would pass for dark content
            sheet.append((pair.name, [shown, ours, theirs, img]))
    print(f"\nours / pypatchmatch ({time.perf_counter() - t_start:.0f} s in all)")
    print(ref.format_table(rows))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            keys = ("psnr", "ssim", "sharpness", "swd", "wall", "cpu")
            w.writerow(["pair", "kind", "hole_ratio"] + [f"{s}_{k}" for s in ref.SIDES for k in keys])
            for r in rows:
                w.writerow([r["pair"], r["kind"], f"{r['hole_ratio']:.4f}"]
                           + [f"{r[s][k]:.6g}" for s in ref.SIDES for k in keys])
        print(f"rows written to {args.csv}")
    if args.contact_sheet:
        ref.contact_sheet(sheet, args.contact_sheet)
        print(f"contact sheet written to {args.contact_sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
