#!/usr/bin/env python3
"""Developer tool: where in the hole does PatchMatch lose or win against pypatchmatch?

    .venv/bin/python scripts/patchmatch_by_depth.py                          # all 112 pairs
    .venv/bin/python scripts/patchmatch_by_depth.py --option seam_correction=False

For each development pair (``../shared/data/masks/manifest.csv``) it runs
``fastinpaint.inpaint(photo with its hole zeroed, mask, method="patchmatch", seed=0, **options)``
and reads pypatchmatch's output at equal 7x7 patches from the cache that
``scripts/eval_patchmatch.py`` fills (``--cache``, default /tmp/pypm_cache: run that script once
first). It sums both methods' squared errors (8-bit, mean over RGB) over the hole pixels by their
Euclidean distance to the nearest known pixel (bins up to 1, 2, 3, 5, 8, 13, 21 px and beyond) and
prints, per mask kind and bin, 10 log10(pypatchmatch's error / ours): positive where ours is the
closer to the photo, with the pixel count in thousands. It showed the hole's first ring as our
worst pixels in every kind, which the seam correction (PatchMatchOptions.seam_correction) fixed.
Nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import patchmatch_reference as ref  # noqa: E402
from eval_patchmatch import _parse_option  # noqa: E402  (one KEY=VALUE rule for the tuning scripts)

BINS = (1, 2, 3, 5, 8, 13, 21, np.inf)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=pathlib.Path, default=ref.DATA, help=f"development data (default {ref.DATA})")
    p.add_argument("--cache", type=pathlib.Path, default=ref.DEFAULT_CACHE, help="pypatchmatch output cache")
    p.add_argument("--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the patchmatch method (repeatable)")
    args = p.parse_args(argv)

    import fastinpaint

    sums = {}  # (kind, bin) -> [our error, pypatchmatch's error, pixels]
    for row in csv.DictReader(open(args.data / "masks" / "manifest.csv")):
        name = pathlib.Path(row["mask"]).stem
        cached = args.cache / f"{name}__r3.png"
        if not cached.exists():
            raise SystemExit(f"patchmatch_by_depth: {cached} is missing: run scripts/eval_patchmatch.py once to fill "
                             f"the cache")
        photo = np.asarray(Image.open(args.data / row["image"]).convert("RGB"))
        hole = np.asarray(Image.open(args.data / row["mask"]).convert("L")) > 127
        ours = fastinpaint.inpaint(np.where(hole[..., None], 0, photo).astype(np.uint8), hole, method="patchmatch",
                                   seed=0, **dict(args.option))
        theirs = np.asarray(Image.open(cached).convert("RGB"))
        truth = photo.astype(np.float64)
        err_ours = ((ours - truth) ** 2).mean(-1)
        err_theirs = ((theirs - truth) ** 2).mean(-1)
        depth = distance_transform_edt(hole)
        lo = 0.0
        for i, hi in enumerate(BINS):
            sel = hole & (depth > lo) & (depth <= hi)
            acc = sums.setdefault((row["kind"], i), [0.0, 0.0, 0])
            acc[0] += err_ours[sel].sum()
            acc[1] += err_theirs[sel].sum()
            acc[2] += int(sel.sum())
            lo = hi
    print("10 log10(pypatchmatch's squared error / ours) by depth into the hole (px); + = ours closer; "
          "(thousands of pixels)")
    print(f"{'kind':10s} " + " ".join(f"{'<=' + format(b, 'g') if np.isfinite(b) else '>21':>11s}" for b in BINS))
    for kind in sorted({k for k, _ in sums}):
        cells = []
        for i in range(len(BINS)):
            ours_e, theirs_e, n = sums[(kind, i)]
            ratio = f"{10 * np.log10(theirs_e / ours_e):+6.2f}({n // 1000:>3d}k)" if n and ours_e > 0 else None
            cells.append(ratio or f"{'-':>11s}")
        print(f"{kind:10s} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
