"""PSNR / SSIM / L1 against scikit-image (and NumPy) on random and photographic images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastinpaint import metrics

skm = pytest.importorskip("skimage.metrics")


def sk_ssim(a, b, data_range):
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=data_range, channel_axis=-1 if a.ndim == 3 else None)


def _pairs(shared_root):
    rng = np.random.default_rng(0)
    a = rng.random((37, 53, 3))
    yield "random float", a, np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1), 1.0
    g = rng.random((29, 31))
    yield "random gray", g, np.clip(g + rng.normal(0, 0.2, g.shape), 0, 1), 1.0
    u = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    yield "random uint8", u, rng.integers(0, 256, u.shape, dtype=np.uint8), 255
    photos = sorted((shared_root / "data" / "photos").glob("*.png")) if shared_root.is_dir() else []
    from PIL import Image

    for p in photos[:3]:
        im = np.asarray(Image.open(p).convert("RGB").reduce(2))
        noisy = np.clip(im.astype(int) + rng.integers(-25, 26, im.shape), 0, 255).astype(np.uint8)
        yield p.name, im, noisy, 255


@pytest.fixture
def cases(request):
    from conftest import SHARED

    if not (SHARED / "data" / "photos").is_dir():
        print(f"development photos not found under {SHARED}; random images only")
    return list(_pairs(SHARED))


def test_against_scikit_image(cases):
    for name, a, b, rng in cases:
        assert abs(metrics.psnr(a, b) - skm.peak_signal_noise_ratio(a, b, data_range=rng)) < 1e-6, name
        assert abs(metrics.ssim(a, b) - sk_ssim(a, b, rng)) < 1e-4, name
        ref_l1 = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / rng
        assert abs(metrics.l1(a, b) - ref_l1) < 1e-6, name


def test_float32_inputs_match_too(cases):
    name, a, b, rng = cases[0]
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert abs(metrics.ssim(a32, b32, data_range=1.0) - sk_ssim(a32, b32, 1.0)) < 1e-4


def test_torch_batches_match_numpy(cases):
    imgs = [(a, b) for _, a, b, _ in cases if a.ndim == 3 and a.dtype == np.float64]
    a, b = imgs[0]
    ta = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2)
    tb = torch.from_numpy(np.stack([b, a])).permute(0, 3, 1, 2)
    for fn in (metrics.psnr, metrics.ssim, metrics.l1):
        batch = fn(ta, tb, data_range=1.0)
        assert batch.shape == (2,)
        assert abs(float(batch[0]) - fn(a, b)) < 1e-9 and abs(float(batch[1]) - fn(b, a)) < 1e-9
        nb = fn(np.stack([a, b]), np.stack([b, a]))  # NumPy NHWC batch
        assert nb.shape == (2,) and np.allclose(nb, batch.numpy())
    assert fn(ta[0], tb[0], data_range=1.0).dim() == 0


def test_identical_and_errors():
    a = np.random.default_rng(1).random((16, 16, 3))
    assert metrics.psnr(a, a) == float("inf")
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(a, a[:8])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(a[:8, :8], a[:8, :8])
    with pytest.raises(TypeError):
        metrics.psnr(a, torch.from_numpy(a))


def test_composite():
    img = np.zeros((4, 4, 3), np.uint8)
    out = np.full((4, 4, 3), 200, np.uint8)
    hole = np.zeros((4, 4), bool)
    hole[1:3, 1:3] = True
    c = metrics.composite(img, out, hole)
    assert (c[hole] == 200).all() and (c[~hole] == 0).all()
    t = metrics.composite(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.from_numpy(hole)[None, None])
    assert t.sum() == 12
