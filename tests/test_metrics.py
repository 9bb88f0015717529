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


# --- texture scores: sharpness and SWD ------------------------------------------------------------

ndi = pytest.importorskip("scipy.ndimage")


def _texture(h=40, w=48, seed=0):
    """A textured RGB image in [0, 1]: smooth shading plus fine random texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 + 0 * xx], -1) * 0.6
    return np.clip(base + 0.4 * ndi.gaussian_filter(rng.random((h, w, 3)), (0.7, 0.7, 0)), 0, 1)


def _hole(h=40, w=48):
    m = np.zeros((h, w), bool)
    m[12:30, 10:34] = True
    m[5:9, 40:46] = True  # a second hole near the border
    return m


def _blur(img, sigma=1.5):
    return ndi.gaussian_filter(img, (sigma, sigma, 0))


def ref_sharpness(out, gt, hole):
    """Independent reference: BT.601 luma, scipy's Sobel (edge repeated), ratio of hole means."""

    def grad(img):
        lum = img[..., :3] @ np.array([0.299, 0.587, 0.114]) if img.ndim == 3 else img
        return np.hypot(ndi.sobel(lum, axis=0, mode="nearest"), ndi.sobel(lum, axis=1, mode="nearest"))

    return grad(out)[hole].mean() / grad(gt)[hole].mean()


def ref_swd(out, gt, hole, dirs, idx):
    """Independent reference: scipy Gaussians (mirror border, truncate 4), NumPy patches with
    np.pad(reflect), then for every direction a sorted-projection loop."""

    def bands(x):
        g1 = ndi.gaussian_filter(x, (1, 1, 0), mode="mirror", truncate=4.0)
        g2 = ndi.gaussian_filter(x, (2, 2, 0), mode="mirror", truncate=4.0)
        return [x - g1, g1 - g2]

    w = gt.shape[1]
    ys, xs = idx // w, idx % w
    total = []
    for bo, bg in zip(bands(out), bands(gt)):
        pats = []
        for b in (bo, bg):
            p = np.pad(b, ((3, 3), (3, 3), (0, 0)), mode="reflect")
            # channel, row, column order
            pats.append(np.stack([p[y:y + 7, x:x + 7].transpose(2, 0, 1).ravel() for y, x in zip(ys, xs)]))
        d = []
        for k in range(dirs.shape[1]):
            a = np.sort(pats[0] @ dirs[:, k])
            b = np.sort(pats[1] @ dirs[:, k])
            d.append(np.abs(a - b).mean())
        total.append(np.mean(d))
    return np.mean(total)


def test_sharpness_against_scipy():
    gt, hole = _texture(), _hole()
    rng = np.random.default_rng(3)
    for out in (_blur(gt), np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1), gt[::-1].copy()):
        assert metrics.sharpness(out, gt, hole) == pytest.approx(ref_sharpness(out, gt, hole), rel=1e-12)
    g = gt.mean(-1)  # gray: the channel itself
    assert metrics.sharpness(_blur(gt).mean(-1), g, hole) == pytest.approx(
        ref_sharpness(_blur(gt).mean(-1), g, hole), rel=1e-12)


def test_sharpness_properties():
    gt, hole = _texture(), _hole()
    assert metrics.sharpness(gt, gt, hole) == 1.0
    blurred = metrics.sharpness(_blur(gt), gt, hole)
    assert blurred < 0.8
    assert metrics.sharpness(_blur(gt, 3.0), gt, hole) < blurred  # more blur, less detail
    # only the hole (and its one-pixel ring, through the Sobel stencil) counts
    far = gt.copy()
    far[~ndi.binary_dilation(hole, iterations=2)] = 0.0
    assert metrics.sharpness(far, gt, hole) == 1.0
    # uint8 vs float, NumPy vs torch, batch vs per image, per-image masks
    u8 = (gt * 255).round().astype(np.uint8)
    b8 = (_blur(gt) * 255).round().astype(np.uint8)
    assert metrics.sharpness(b8, u8, hole) == pytest.approx(metrics.sharpness(b8 / 255.0, u8 / 255.0, hole), rel=1e-12)
    t = metrics.sharpness(torch.from_numpy(_blur(gt)).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1),
                          torch.from_numpy(hole))
    assert t.dim() == 0 and t.dtype == torch.float64 and float(t) == pytest.approx(blurred, rel=1e-12)
    gt2, hole2 = _texture(seed=1), ~_hole()
    outs, gts = np.stack([_blur(gt), gt2]), np.stack([gt, _blur(gt2)])
    batch = metrics.sharpness(outs, gts, np.stack([hole, hole2]))
    assert batch.shape == (2,)
    assert batch[0] == pytest.approx(blurred, rel=1e-12)
    assert batch[1] == pytest.approx(metrics.sharpness(gt2, _blur(gt2), hole2), rel=1e-12) and batch[1] > 1
    tb = metrics.sharpness(torch.from_numpy(outs).permute(0, 3, 1, 2), torch.from_numpy(gts).permute(0, 3, 1, 2),
                           torch.from_numpy(np.stack([hole, hole2])))
    assert np.allclose(tb.numpy(), batch, rtol=1e-12)
    one_mask = metrics.sharpness(outs, gts, hole)  # one (H, W) mask for the whole batch
    assert one_mask[1] == pytest.approx(metrics.sharpness(gt2, _blur(gt2), hole), rel=1e-12)
    # RGBA: alpha is ignored
    rgba_gt = np.concatenate([gt, np.ones(gt.shape[:2] + (1,))], -1)
    rgba_out = np.concatenate([_blur(gt), np.random.default_rng(0).random(gt.shape[:2] + (1,))], -1)
    assert metrics.sharpness(rgba_out, rgba_gt, hole) == pytest.approx(blurred, rel=1e-12)
    # a flat ground truth, or an empty hole: nan
    assert np.isnan(metrics.sharpness(gt, np.full_like(gt, 0.5), hole))
    assert np.isnan(metrics.sharpness(gt, gt, np.zeros_like(hole)))
    with pytest.raises(ValueError, match="hole"):
        metrics.sharpness(gt, gt, hole[:10])
    with pytest.raises(ValueError, match="hole"):
        metrics.sharpness(outs, gts, np.stack([hole] * 3))


def test_swd_against_numpy_reference():
    gt, hole = _texture(), _hole()
    out = _blur(gt)
    dirs = metrics.swd_directions(3 * 49, 16, seed=5).numpy()
    assert np.allclose(np.linalg.norm(dirs, axis=0), 1.0)
    idx = metrics.swd_sample(torch.from_numpy(hole), 4000, seed=5).numpy()
    assert np.array_equal(idx, np.flatnonzero(hole))  # fewer hole pixels than max_samples: all of them
    got = metrics.swd(out, gt, hole, projections=16, seed=5)
    assert got == pytest.approx(ref_swd(out, gt, hole, dirs, idx), rel=1e-9)
    # subsampled: at most max_samples hole pixels, the same for both images
    idx = metrics.swd_sample(torch.from_numpy(hole), 100, seed=5).numpy()
    assert len(idx) == 100 and len(set(idx)) == 100 and hole.ravel()[idx].all()
    got = metrics.swd(out, gt, hole, projections=16, max_samples=100, seed=5)
    assert got == pytest.approx(ref_swd(out, gt, hole, dirs, idx), rel=1e-9)


def test_swd_properties():
    gt, hole = _texture(), _hole()
    assert metrics.swd(gt, gt, hole) == 0.0
    noisy = np.clip(gt + np.random.default_rng(1).normal(0, 0.01, gt.shape), 0, 1)
    s_noise, s_blur = metrics.swd(noisy, gt, hole), metrics.swd(_blur(gt), gt, hole)
    assert 0 < s_noise < s_blur
    assert metrics.swd(_blur(gt, 3.0), gt, hole) > s_blur
    # pixels further than 3 (patch) + 8 (σ = 2 kernel) from the hole do not matter; inside ones do
    gt, hole = _texture(80, 96), np.zeros((80, 96), bool)
    hole[20:40, 25:50] = True
    s_blur = metrics.swd(_blur(gt), gt, hole)
    far = ~ndi.binary_dilation(hole, np.ones((3, 3), bool), iterations=12)
    assert far.sum() > 1000
    changed = _blur(gt).copy()
    changed[far] = np.random.default_rng(2).random((far.sum(), 3))
    assert metrics.swd(changed, gt, hole) == pytest.approx(s_blur, rel=1e-12)
    changed_gt = gt.copy()
    changed_gt[far] = 0.0
    assert metrics.swd(_blur(gt), changed_gt, hole) == pytest.approx(s_blur, rel=1e-12)
    inside = _blur(gt).copy()
    inside[hole] = gt[hole]
    assert metrics.swd(inside, gt, hole) != pytest.approx(s_blur, rel=1e-3)
    gt, hole = _texture(), _hole()
    s_blur = metrics.swd(_blur(gt), gt, hole)
    # deterministic for a seed; uint8 = float / 255; NumPy = torch; batch = per image
    assert metrics.swd(_blur(gt), gt, hole, seed=0) == s_blur
    assert metrics.swd(_blur(gt), gt, hole, seed=1) != s_blur
    u8, b8 = (gt * 255).round().astype(np.uint8), (_blur(gt) * 255).round().astype(np.uint8)
    assert metrics.swd(b8, u8, hole) == pytest.approx(metrics.swd(b8 / 255.0, u8 / 255.0, hole), rel=1e-9)
    t = metrics.swd(torch.from_numpy(_blur(gt)).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1),
                    torch.from_numpy(hole))
    assert t.dim() == 0 and float(t) == pytest.approx(s_blur, rel=1e-12)
    gt2, hole2 = _texture(seed=1), ~_hole()
    batch = metrics.swd(np.stack([_blur(gt), noisy]), np.stack([gt, gt2]), np.stack([hole, hole2]), max_samples=500)
    assert batch.shape == (2,)
    assert batch[0] == pytest.approx(metrics.swd(_blur(gt), gt, hole, max_samples=500), rel=1e-12)
    assert batch[1] == pytest.approx(metrics.swd(noisy, gt2, hole2, max_samples=500), rel=1e-12)
    assert np.isnan(metrics.swd(gt, gt, np.zeros_like(hole)))


def test_texture_scores_on_a_photo(shared_data):
    """On a development photo: a blurred fill loses detail and texture, a fine-noise one barely does."""
    from PIL import Image

    gt = np.asarray(Image.open(shared_data / "photos" / "aqua_drop.png").convert("RGB"))
    hole = np.asarray(Image.open(shared_data / "masks" / "aqua_drop__irr_30_40.png")) > 127
    blurred = np.clip(_blur(gt.astype(np.float64), 2.0).round(), 0, 255).astype(np.uint8)
    comp = metrics.composite(gt, blurred, hole)
    noisy = metrics.composite(gt, np.clip(gt + np.random.default_rng(0).integers(-3, 4, gt.shape), 0, 255)
                              .astype(np.uint8), hole)
    assert metrics.sharpness(comp, gt, hole) < 0.8
    assert metrics.swd(noisy, gt, hole) < metrics.swd(comp, gt, hole)


def test_fill_mean_offset_against_numpy():
    # the reference: NumPy means over the hole, written out here
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    hole = np.zeros((40, 50), bool)
    hole[5:30, 10:20] = True
    want = (out[hole].astype(np.float64).mean(0) - gt[hole].astype(np.float64).mean(0)) / 255
    got = metrics.fill_mean_offset(out, gt, hole)
    assert got.shape == (3,) and np.allclose(got, want, atol=1e-12)
    # pixels outside the hole do not count; a constant tint is found exactly, per channel and signed
    tinted = gt.astype(np.float64) / 255
    tinted[hole] += (0.02, 0.0, -0.03)
    tinted[~hole] = 0.9
    assert np.allclose(metrics.fill_mean_offset(tinted, gt / 255.0, hole), (0.02, 0.0, -0.03), atol=1e-12)
    # torch batches, channel-first, RGBA alpha left out; an empty hole is nan
    t_gt = torch.from_numpy(gt).permute(2, 0, 1).double()[None].repeat(2, 1, 1, 1) / 255
    t_out = torch.cat([t_gt, torch.ones(2, 1, 40, 50, dtype=torch.float64)], 1)
    t_gt = torch.cat([t_gt, torch.zeros(2, 1, 40, 50, dtype=torch.float64)], 1)
    t_out[1, :3] += 0.1
    holes = torch.from_numpy(np.stack([hole, np.zeros_like(hole)]))
    res = metrics.fill_mean_offset(t_out, t_gt, holes)
    assert res.shape == (2, 3) and torch.allclose(res[0], torch.zeros(3, dtype=torch.float64))
    assert torch.isnan(res[1]).all()
