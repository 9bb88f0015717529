"""High-resolution strategies on a 12 MP photo (issue 15's target): every method with
``hd_strategy="auto"`` on a 4000×3000 synthetic photo with a ~5 % hole (three blobs, or strokes
scattered over the whole photo), against the
same method on the same photo downscaled to a 1024 px long side (its hole too), each with its
defaults. The two run alternately in one process, ``ROUNDS`` times each (the minimum is kept, so a
busy moment on a shared machine counts against neither), and the ratio is printed with the wall
and CPU seconds and the peak RSS of the 12 MP calls (the process's high-water mark, reset
before them: /proc/self/clear_refs; where that cannot be reset, the process's peak so far).

    .venv/bin/python -m pytest benchmarks/bench_hd.py -s -k patchmatch

PatchMatch's ``"resize"`` to 1024 px is measured as well. "original" (the whole 12 MP image) is left
out: before the strategies PatchMatch took 85 s and 2.2 GB at 4000 px.
"""

from __future__ import annotations

import pathlib
import resource
import time

import numpy as np
import pytest
import torch

import fastinpaint

H, W = 3000, 4000


def _photo(layout="blobs"):
    """The 12 MP photo and a ~5 % hole: three round blobs, or 70 strokes 32 px wide scattered over
    the whole photo (as a user scribbles over wires and specks: the hole's regions then merge
    into one box, the whole photo)."""
    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[0:H, 0:W]  # broadcast: the inputs alone stay ~100 MB of the peak RSS
    img = np.empty((H, W, 3), np.uint8)
    for c, plane in enumerate(((xx // 7) % 256 + 0 * yy, (yy // 5) % 256 + 0 * xx, ((xx + yy) // 9) % 256)):
        img[..., c] = np.clip(plane + rng.integers(-10, 11, (H, W), dtype=np.int16), 0, 255)
    if layout == "blobs":
        hole = np.zeros((H, W), bool)
        for cy, cx, r in ((800, 900, 300), (2000, 2800, 250), (2500, 700, 150)):  # ~5 % of 12 MP
            hole |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    else:
        from PIL import Image, ImageDraw

        m = Image.new("L", (W, H))
        draw = ImageDraw.Draw(m)
        for _ in range(70):
            x0, y0 = rng.integers(0, W), rng.integers(0, H)
            x1, y1 = x0 + rng.integers(-400, 401), y0 + rng.integers(-400, 401)
            draw.line([(int(x0), int(y0)), (int(x1), int(y1))], fill=255, width=32)
        hole = np.asarray(m) > 127
    return img, hole


def _downscaled(img, hole, long_side=1024):
    from PIL import Image

    size = (long_side, round(H * long_side / W))
    small = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
    small_hole = np.asarray(Image.fromarray(hole).resize(size, Image.Resampling.NEAREST))
    return small, small_hole


ROUNDS = 3


def _reset_peak_rss() -> bool:
    """Resets the process's RSS high-water mark (Linux: writing 5 to clear_refs), so that the next
    reading is the peak of what runs after; False where that is not possible."""
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


@pytest.mark.parametrize("layout", ["blobs", "strokes"])
@pytest.mark.parametrize("method", ["patchmatch", "biharmonic", "pconv", "glcic"])
def test_bench_hd_12mp_vs_1024(benchmark, method, layout):
    img, hole = _photo(layout)
    small, small_hole = _downscaled(img, hole)
    fastinpaint.inpaint(img[:64, :64], hole[:64, :64] | (np.arange(64) < 8)[:, None], method=method)  # warm-up
    benchmark.group = f"12 MP, {100 * hole.mean():.1f} % hole ({layout}): {method}"
    big_t, small_t = [], []
    reset = _reset_peak_rss()  # the inputs stay in the peak (~0.1 GB); _photo's temporaries do not
    for r in range(ROUNDS):
        small_t.append(_timed(fastinpaint.inpaint, small, small_hole, method=method)[1:])
        if r == 0:  # one round through pytest-benchmark, for its table
            out, w, c = benchmark.pedantic(_timed, args=(fastinpaint.inpaint, img, hole), kwargs={"method": method},
                                           rounds=1, iterations=1)
        else:
            out, w, c = _timed(fastinpaint.inpaint, img, hole, method=method)
        big_t.append((w, c))
        assert np.array_equal(out[~hole], img[~hole])
    bw, sw = min(t[0] for t in big_t), min(t[0] for t in small_t)
    bc, sc = min(t[1] for t in big_t), min(t[1] for t in small_t)
    print(f"\n{method}, {layout} ({100 * hole.mean():.1f} % hole): 12 MP auto {bw:.2f} s wall / {bc:.2f} s CPU; "
          f"1024 px {sw:.2f} s / {sc:.2f} s; "
          f"ratio {bw / sw:.2f}x wall, {bc / sc:.2f}x CPU; {torch.get_num_threads()} torch threads; "
          f"peak RSS {_peak_rss_mb():.0f} MB{'' if reset else ' (process peak)'}")


def test_bench_hd_patchmatch_resize(benchmark):
    img, hole = _photo()
    benchmark.group = "12 MP, 5 % hole: patchmatch"
    out = benchmark.pedantic(fastinpaint.inpaint, args=(img, hole), rounds=1, iterations=1,
                             kwargs={"method": "patchmatch", "hd_strategy": "resize", "hd_size": 1024})
    assert np.array_equal(out[~hole], img[~hole])
