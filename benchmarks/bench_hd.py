"""High-resolution strategies on a 12 MP photo (issue 15's target): every method with
``hd_strategy="auto"`` on a 4000×3000 synthetic photo with a ~5 % hole (three blobs), against the
same method on the same photo downscaled to a 1024 px long side (its hole too) — wall time, and the
process's peak RSS after each (ru_maxrss only grows, so run one test per process for a clean figure,
e.g. ``-k "patchmatch and auto"``). PatchMatch's ``"resize"`` to 1024 px is measured as well.

    .venv/bin/python -m pytest benchmarks/bench_hd.py -s -k "patchmatch and auto"

Few rounds: a call takes seconds. "original" (the whole 12 MP image) is left out: PatchMatch took
85 s and 2.2 GB at 4000 px.
"""

from __future__ import annotations

import resource

import numpy as np
import pytest

import fastinpaint

H, W = 3000, 4000


def _photo():
    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[0:H, 0:W]  # broadcast: the inputs alone stay ~100 MB of the peak RSS
    img = np.empty((H, W, 3), np.uint8)
    for c, plane in enumerate(((xx // 7) % 256 + 0 * yy, (yy // 5) % 256 + 0 * xx, ((xx + yy) // 9) % 256)):
        img[..., c] = np.clip(plane + rng.integers(-10, 11, (H, W), dtype=np.int16), 0, 255)
    hole = np.zeros((H, W), bool)
    for cy, cx, r in ((800, 900, 300), (2000, 2800, 250), (2500, 700, 150)):  # ~5 % of 12 MP
        hole |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    return img, hole


def _downscaled(img, hole, long_side=1024):
    from PIL import Image

    size = (long_side, round(H * long_side / W))
    small = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
    small_hole = np.asarray(Image.fromarray(hole).resize(size, Image.Resampling.NEAREST))
    return small, small_hole


CASES = [(m, "auto", None) for m in ("patchmatch", "biharmonic", "pconv", "glcic")]
CASES += [(m, "at 1024 px", None) for m in ("patchmatch", "biharmonic", "pconv", "glcic")]
CASES += [("patchmatch", "resize", 1024)]


@pytest.mark.parametrize("method, strategy, size", CASES, ids=lambda v: str(v))
def test_bench_hd(benchmark, method, strategy, size):
    img, hole = _photo()
    if strategy == "at 1024 px":
        img, hole = _downscaled(img, hole)
        kwargs = {"method": method}
    else:
        kwargs = {"method": method, "hd_strategy": strategy, "hd_size": size}
    fastinpaint.inpaint(img[:64, :64], hole[:64, :64] | (np.arange(64) < 8)[:, None], method=method)  # warm-up
    benchmark.group = f"12 MP, 5 % hole: {method}"
    out = benchmark.pedantic(fastinpaint.inpaint, args=(img, hole), rounds=1, iterations=1, kwargs=kwargs)
    assert np.array_equal(out[~hole], img[~hole])
    print(f"\n{method} {strategy}: {img.shape[1]}x{img.shape[0]}, hole {hole.mean():.1%}, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
