"""High-resolution strategies: PatchMatch on a 4000×3000 synthetic photo with a ~5 % hole (three
blobs), ``hd_strategy="auto"`` (each hole's crop at full resolution) vs. ``"resize"`` to a 1024 px
long side — wall time, and the process's peak RSS after each (ru_maxrss only grows, so run one
test per process for a clean figure, e.g. ``-k auto``).

    .venv/bin/python -m pytest benchmarks/bench_hd.py -s -k auto

Few rounds: a call takes seconds. "original" (the whole 12 MP image) is left out: it took 85 s and
2.2 GB at 4000 px.
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


@pytest.mark.parametrize("strategy, size", [("auto", None), ("resize", 1024)])
def test_bench_hd(benchmark, strategy, size):
    img, hole = _photo()
    out = benchmark.pedantic(fastinpaint.inpaint, args=(img, hole), rounds=1, iterations=1,
                             kwargs={"method": "patchmatch", "hd_strategy": strategy, "hd_size": size})
    assert np.array_equal(out[~hole], img[~hole])
    print(f"\n{strategy}: hole {hole.mean():.1%}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
