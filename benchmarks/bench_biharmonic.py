"""Biharmonic inpainting: fastinpaint vs scikit-image's inpaint_biharmonic (the baseline), same
run, same machine — a 512×320 development photo (RGB, float64 in [0, 1]) with the 10–20 % and
30–40 % free-form hole masks of ../shared/data/masks.

    .venv/bin/python -m pytest benchmarks/bench_biharmonic.py -s

Rounds are few: scikit-image takes about half a second per call on a 30–40 % mask. At the end
the module prints fastinpaint's speed-up over scikit-image: the ratio of the two tests' medians,
and the median ratio of calls made in alternation (one of each, 7 times), which cancels a shared
machine's drift between tests. The alternation is run twice: fastinpaint's call right after
scikit-image's ("cold": torch's intra-op threads have idled through scikit-image's single-threaded
call, and waking idle threads is slow on some virtual machines), and the same with the threads
woken first by a trivial torch op ("warm"); the time that trivial op takes after 20 ms idle is
printed too. And the max abs difference to scikit-image.
"""

from __future__ import annotations

import csv
import pathlib
import time

import numpy as np
import pytest
import torch

from fastinpaint.methods.biharmonic import inpaint_biharmonic

DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
KINDS = ["irr_10_20", "irr_30_40"]
IMPLS = ["skimage", "fastinpaint"]
MEDIANS = {}  # (kind, impl) -> median seconds
OUTPUTS = {}  # (kind, impl) -> filled image
PAIRED = {}  # kind -> (cold, warm) medians of skimage / fastinpaint over alternating calls
_WAKE = torch.ones(1 << 20)  # big enough for torch to split an op on it across its threads


@pytest.fixture(scope="module", autouse=True)
def report_ratios():
    yield
    lines = []
    for kind in KINDS:
        base = MEDIANS.get((kind, "skimage"))
        for impl in IMPLS[1:]:
            t = MEDIANS.get((kind, impl))
            if base is None or t is None:
                continue
            diff = np.abs(OUTPUTS[(kind, impl)] - OUTPUTS[(kind, "skimage")]).max()
            paired = ""
            if kind in PAIRED:
                cold, warm = PAIRED[kind]
                paired = f", alternating calls {cold:5.1f}x cold / {warm:5.1f}x warm"
            lines.append(
                f"  {kind:10s} {impl:12s} {t * 1e3:7.1f} ms  vs scikit-image {base * 1e3:7.1f} ms:"
                f" {base / t:5.1f}x faster{paired}, max abs diff {diff:.1e}"
            )
    if lines:
        print("\nbiharmonic speed-up over scikit-image (medians, same run):\n" + "\n".join(lines))
        if PAIRED:
            print(f"  (waking torch's idle intra-op threads: a trivial op takes {idle_wake_ms():.2f} ms after 20 ms idle)")


def load_case(kind):
    """(image, mask) for the first ~512×320–342 photo of the manifest with a mask of ``kind``."""
    if not (DATA / "masks" / "manifest.csv").is_file():
        pytest.skip(f"development data not found at {DATA}")
    from PIL import Image

    rows = list(csv.DictReader(open(DATA / "masks" / "manifest.csv")))
    row = next(r for r in rows if r["kind"] == kind and r["width"] == "512" and 320 <= int(r["height"]) <= 342)
    image = np.asarray(Image.open(DATA / row["image"]).convert("RGB"), dtype=np.float64) / 255.0
    mask = np.asarray(Image.open(DATA / row["mask"])) > 0
    return row["image"], image, mask


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KINDS)
def test_biharmonic_speed(benchmark, kind, impl):
    name, image, mask = load_case(kind)
    if impl == "skimage":
        restoration = pytest.importorskip("skimage.restoration", reason="scikit-image is not installed")

        def run():
            return restoration.inpaint_biharmonic(image, mask, channel_axis=-1)

    else:

        def run():
            return inpaint_biharmonic(image, mask)

    benchmark.group = f"biharmonic {kind} ({mask.mean():.0%} hole, {image.shape[1]}x{image.shape[0]})"
    benchmark.extra_info.update(impl=impl, baseline=impl == "skimage", photo=name)
    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    assert np.array_equal(out[~mask], image[~mask])
    if benchmark.stats is not None:  # None under --benchmark-disable
        MEDIANS[(kind, impl)] = benchmark.stats.stats.median
        OUTPUTS[(kind, impl)] = out
        if impl != "skimage" and (kind, "skimage") in MEDIANS:
            PAIRED[kind] = alternating_ratio(image, mask)


def wake_threads():
    """A trivial op on torch's intra-op threads (the pool fastinpaint's solver uses): wakes them."""
    _WAKE.add_(0.0)


def idle_wake_ms(rounds=7):
    """Median time of wake_threads() after 20 ms idle, in ms."""
    times = []
    for _ in range(rounds):
        time.sleep(0.02)
        t0 = time.perf_counter()
        wake_threads()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def alternating_ratio(image, mask, pairs=7):
    """Medians of scikit-image's time over fastinpaint's, one call of each in turn: (cold, warm).
    Cold: fastinpaint's call right after scikit-image's. Warm: the threads woken just before it."""
    from skimage.restoration import inpaint_biharmonic as reference

    cold, warm = [], []
    for _ in range(pairs):
        for ratios, wake in ((cold, False), (warm, True)):
            t0 = time.perf_counter()
            reference(image, mask, channel_axis=-1)
            t1 = time.perf_counter()
            if wake:
                wake_threads()
            t2 = time.perf_counter()
            inpaint_biharmonic(image, mask)
            t3 = time.perf_counter()
            ratios.append((t1 - t0) / (t3 - t2))
    return float(np.median(cold)), float(np.median(warm))
