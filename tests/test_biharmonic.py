"""fastinpaint.methods.biharmonic.inpaint_biharmonic against scikit-image's inpaint_biharmonic
(the independent reference): random small images and the team's photos, holes touching the image
border, several separate holes, grayscale and RGB, float32 and float64; known pixels unchanged
bit for bit; torch front end; bad inputs."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch

from fastinpaint.methods.biharmonic import inpaint_biharmonic

skimage_restoration = pytest.importorskip("skimage.restoration")
Image = pytest.importorskip("PIL.Image")

TOL = 1e-3  # on [0, 1] images


def reference(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scikit-image, always in float64 (its float32 path solves in single precision)."""
    channel_axis = -1 if image.ndim == 3 else None
    return skimage_restoration.inpaint_biharmonic(image.astype(np.float64), mask, channel_axis=channel_axis)


def random_mask(rng, shape, n_blobs):
    """Several separate rectangular holes, one of them on the image border."""
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n_blobs):
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        mask[y : y + rng.integers(1, max(2, h // 4)), x : x + rng.integers(1, max(2, w // 4))] = True
    mask[: rng.integers(1, 4), rng.integers(0, w - 3) :][:, :3] = True  # touches the top edge
    mask[rng.integers(0, h - 3) :, -2:][:3] = True  # touches the right edge (near a corner)
    return mask


def assert_matches(out, image, mask, tol=TOL, same_dtype_reference=False):
    assert out.shape == image.shape and out.dtype == image.dtype
    # Known pixels: bit for bit.
    assert np.array_equal(out[~mask].view(np.uint8), image[~mask].view(np.uint8))
    diff = np.abs(out.astype(np.float64) - reference(image, mask)).max()
    assert diff < tol, f"max abs difference to scikit-image {diff:.3g} >= {tol}"
    if same_dtype_reference:
        # scikit-image run on the input's own dtype too (float32 solved in float32): fine on small
        # systems; on photo-sized ones its single-precision LU drifts by ~1e-2, hence float64 above.
        channel_axis = -1 if image.ndim == 3 else None
        ref = skimage_restoration.inpaint_biharmonic(image, mask, channel_axis=channel_axis)
        assert ref.dtype == out.dtype
        assert np.abs(out.astype(np.float64) - ref).max() < tol


# ------------------------------------------------------------------------------------------------
# random small images
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("shape", [(16, 21), (5, 7), (40, 31)])
@pytest.mark.parametrize("split", [True, False])
def test_random_images(dtype, channels, shape, split):
    rng = np.random.default_rng(hash((shape, channels, split)) % 2**32)
    full = shape if channels is None else shape + (channels,)
    image = rng.random(full).astype(dtype)
    mask = random_mask(rng, shape, n_blobs=4)
    image[mask] = np.nan  # hole values must not matter
    out = inpaint_biharmonic(image, mask, split_into_regions=split)
    assert not np.isnan(out).any()
    image[mask] = 0.0
    assert_matches(out, image, mask, same_dtype_reference=True)


@pytest.mark.parametrize("shape", [(1, 10), (10, 1), (2, 2), (3, 7), (4, 4)])
def test_images_smaller_than_the_stencil(shape):
    """Every border-stencil class, including windows cut on both sides."""
    rng = np.random.default_rng(sum(shape))
    for _ in range(10):
        image = rng.random(shape)
        mask = rng.random(shape) < 0.4
        if mask.any() and not mask.all():
            assert_matches(inpaint_biharmonic(image, mask), image, mask, tol=1e-9)


def test_separate_holes_and_split_agree():
    rng = np.random.default_rng(1)
    image = rng.random((48, 64, 3))
    mask = np.zeros((48, 64), dtype=bool)
    mask[5:12, 5:15] = mask[30:40, 40:60] = mask[0:6, 50:64] = mask[44:48, 0:3] = True  # 4 regions, 2 on edges
    joint = inpaint_biharmonic(image, mask, split_into_regions=False)
    split = inpaint_biharmonic(image, mask, split_into_regions=True)
    assert np.abs(joint - split).max() < 1e-9
    assert_matches(split, image, mask)


def test_any_range_and_clipping():
    """Values in any range; filled values clipped to the known range per channel, as scikit-image."""
    rng = np.random.default_rng(2)
    image = rng.random((30, 30, 2)) * np.array([255.0, -3.0]) + np.array([0.0, 10.0])
    mask = np.zeros((30, 30), dtype=bool)
    mask[8:20, 5:25] = True
    out = inpaint_biharmonic(image, mask)
    ref = skimage_restoration.inpaint_biharmonic(image, mask, channel_axis=-1)
    assert np.abs(out - ref).max() < 1e-9 * 255
    known = image[~mask]
    assert np.all(out[mask] >= known.min(0)) and np.all(out[mask] <= known.max(0))


def test_docstring_example():
    import doctest

    import fastinpaint.methods.biharmonic as module

    assert doctest.testmod(module, raise_on_error=True).attempted > 0


def test_smooth_functions_reproduced():
    """Affine images are biharmonic (Δ² = 0): away from the border the fill is exact."""
    y, x = np.mgrid[0:20, 0:24].astype(np.float64)
    image = 0.3 + 0.01 * x - 0.02 * y
    mask = np.zeros(image.shape, dtype=bool)
    mask[6:14, 7:17] = True
    assert np.abs(inpaint_biharmonic(image, mask) - image).max() < 1e-12


# ------------------------------------------------------------------------------------------------
# development photos
# ------------------------------------------------------------------------------------------------
def photo_cases(shared_data, kinds):
    rows = list(csv.DictReader(open(shared_data / "masks" / "manifest.csv")))
    return [r for r in rows if r["kind"] in kinds]


@pytest.mark.parametrize("kind", ["irr_10_20", "center25"])
def test_photos(shared_data, kind):
    """Two photos, downscaled 2× for speed; grayscale float64 and RGB float32."""
    cases = [r for r in photo_cases(shared_data, {kind}) if r["image"].endswith(("aqua_drop.png", "dahlia.png"))]
    assert cases, "manifest has no such photos"
    for row, dtype, gray in zip(cases, [np.float32, np.float64], [False, True]):
        photo = Image.open(shared_data / row["image"]).convert("RGB")
        size = (photo.width // 2, photo.height // 2)
        image = np.asarray(photo.resize(size, Image.BILINEAR), dtype=np.float64) / 255.0
        if gray:
            image = image.mean(axis=2)
        mask = np.asarray(Image.open(shared_data / row["mask"]).resize(size, Image.NEAREST)) > 127
        assert mask.any() and not mask.all()
        assert_matches(inpaint_biharmonic(image.astype(dtype), mask), image.astype(dtype), mask)


def test_photo_full_size_rgb(shared_data):
    """One full-size photo with a 10–20 % free-form mask that touches the border."""
    row = photo_cases(shared_data, {"irr_10_20"})[0]
    image = np.asarray(Image.open(shared_data / row["image"]).convert("RGB"), dtype=np.float64) / 255.0
    mask = np.asarray(Image.open(shared_data / row["mask"])) > 0
    assert_matches(inpaint_biharmonic(image, mask), image, mask)


# ------------------------------------------------------------------------------------------------
# torch front end
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_torch_chw(dtype):
    rng = np.random.default_rng(3)
    hwc = rng.random((18, 22, 3))
    mask = random_mask(rng, (18, 22), n_blobs=3)
    image = torch.from_numpy(hwc).permute(2, 0, 1).to(dtype)
    out = inpaint_biharmonic(image, torch.from_numpy(mask))
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == image.shape
    assert out.device == image.device
    m = torch.from_numpy(mask)
    assert torch.equal(out[:, ~m], image[:, ~m])
    ref = reference(image.float().permute(1, 2, 0).numpy(), mask)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, TOL)  # rounding of the output dtype
    assert np.abs(out.float().permute(1, 2, 0).numpy() - ref).max() < tol


def test_torch_hw_and_1hw_mask():
    rng = np.random.default_rng(4)
    image = torch.from_numpy(rng.random((15, 17)))
    mask = torch.zeros(1, 15, 17, dtype=torch.bool)
    mask[0, 4:9, 3:10] = True
    out = inpaint_biharmonic(image, mask)
    assert out.shape == (15, 17) and out.dtype == torch.float64
    assert np.abs(out.numpy() - reference(image.numpy(), mask[0].numpy())).max() < TOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_roundtrip():
    image = torch.rand(3, 12, 12, device="cuda")
    mask = torch.zeros(12, 12, dtype=torch.bool, device="cuda")
    mask[3:7, 4:8] = True
    out = inpaint_biharmonic(image, mask)
    assert out.device == image.device and torch.equal(out[:, ~mask], image[:, ~mask])


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"mask shape \(8, 9\) does not match .*\(8, 8\)"):
        inpaint_biharmonic(np.zeros((8, 8, 3)), np.zeros((8, 9), dtype=bool))
    with pytest.raises(ValueError, match="does not match"):
        inpaint_biharmonic(torch.zeros(3, 8, 8), torch.zeros(8, 9))


def test_mask_not_2d():
    with pytest.raises(ValueError, match="mask must be 2-D"):
        inpaint_biharmonic(np.zeros((8, 8)), np.zeros((8, 8, 1), dtype=bool))


def test_image_rank_and_dtype():
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        inpaint_biharmonic(np.zeros((2, 8, 8, 3)), np.zeros((8, 8)))
    with pytest.raises(TypeError, match="floating point"):
        inpaint_biharmonic(np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8)))
    with pytest.raises(TypeError, match="NumPy array or a torch tensor"):
        inpaint_biharmonic([[0.0]], [[0]])


def test_empty_mask_warns_and_copies():
    image = np.random.default_rng(5).random((6, 6))
    with pytest.warns(UserWarning, match="no hole"):
        out = inpaint_biharmonic(image, np.zeros((6, 6)))
    assert np.array_equal(out, image) and out is not image


def test_full_mask():
    with pytest.raises(ValueError, match="nothing to copy from"):
        inpaint_biharmonic(np.zeros((6, 6)), np.ones((6, 6)))


def test_non_finite_known_pixels():
    image = np.zeros((6, 6))
    image[0, 0] = np.inf
    mask = np.zeros((6, 6), dtype=bool)
    mask[2:4, 2:4] = True
    with pytest.raises(ValueError, match="non-finite"):
        inpaint_biharmonic(image, mask)


def test_no_warning_on_normal_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = np.zeros((6, 6), dtype=bool)
        mask[2, 2] = True
        inpaint_biharmonic(np.ones((6, 6)), mask)


# ------------------------------------------------------------------------------------------------
# the multigrid solver (large holes; forced onto small ones here)
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def multigrid_only(monkeypatch):
    """Every region through the C++ multigrid solver, however small."""
    import fastinpaint.methods.biharmonic as module

    monkeypatch.setattr(module, "_DIRECT_MAX", 0)
    calls = []
    solve = module._multigrid_fill

    def counted(*args):
        calls.append(args[1].sum())
        return solve(*args)

    monkeypatch.setattr(module, "_multigrid_fill", counted)
    return calls


def fresh_seed() -> int:
    return int.from_bytes(__import__("os").urandom(4), "little")


@pytest.mark.parametrize("channels", [None, 3, 5])
@pytest.mark.parametrize("shape", [(40, 31), (64, 80)])
def test_multigrid_random_images(multigrid_only, channels, shape):
    """Fresh random images and masks (several holes, two on the border) each run."""
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    full = shape if channels is None else shape + (channels,)
    image = rng.random(full)
    mask = random_mask(rng, shape, n_blobs=5)
    out = inpaint_biharmonic(image, mask)
    assert multigrid_only, "the multigrid solver did not run"
    diff = np.abs(out - reference(image, mask)).max()
    assert diff < TOL, f"seed {seed}: max abs difference to scikit-image {diff:.3g}"
    assert np.array_equal(out[~mask], image[~mask])


def test_multigrid_photo_holes_on_the_border(shared_data, multigrid_only):
    """A photo (downscaled 2x) with a 30-40 % free-form mask: many regions, some on the border;
    the joint system too."""
    row = photo_cases(shared_data, {"irr_30_40"})[0]
    photo = Image.open(shared_data / row["image"]).convert("RGB")
    size = (photo.width // 2, photo.height // 2)
    image = np.asarray(photo.resize(size, Image.BILINEAR), dtype=np.float64) / 255.0
    mask = np.asarray(Image.open(shared_data / row["mask"]).resize(size, Image.NEAREST)) > 127
    assert mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    ref = reference(image, mask)
    for split in (True, False):
        out = inpaint_biharmonic(image, mask, split_into_regions=split)
        assert np.abs(out - ref).max() < TOL
    assert len(multigrid_only) == 2


def test_multigrid_read_only_input(multigrid_only):
    """A read-only image and mask (np.asarray of a PIL image is one) are only read: no warning,
    the same result as from writable copies, and the input untouched."""
    rng = np.random.default_rng(fresh_seed())
    image = rng.random((40, 50, 3))
    mask = random_mask(rng, (40, 50), n_blobs=4)
    expected = inpaint_biharmonic(image.copy(), mask.copy())
    frozen, frozen_mask = image.copy(), mask.copy()
    frozen.setflags(write=False)
    frozen_mask.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = inpaint_biharmonic(frozen, frozen_mask)
    assert multigrid_only
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(frozen, image)


def test_multigrid_solver_against_direct_solve():
    """The C++ solver alone, on fresh random data, against SciPy's direct solve of the same system."""
    from fastinpaint import _C
    from fastinpaint.methods import biharmonic as module

    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    image = rng.random((50, 70, 2))
    mask = random_mask(rng, (50, 70), n_blobs=6)
    mask[10:40, 20:45] = True  # enough unknowns for several levels
    holes = np.flatnonzero(mask)
    a, b = module._assemble(image.reshape(-1, 2), mask, holes)
    exact = scipy_sparse_linalg().spsolve(a.tocsc(), b)
    x, lo, hi, iterations, last_change, levels, _isa = torch.ops.fastinpaint.biharmonic_solve(
        torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), 1e-10, 200
    )
    assert last_change <= 1e-10 and 1 <= iterations < 200 and levels >= 2
    assert np.abs(x.numpy() - exact).max() < 1e-8, f"seed {seed}"
    known = image[~mask]
    np.testing.assert_array_equal(lo.numpy(), known.min(axis=0))
    np.testing.assert_array_equal(hi.numpy(), known.max(axis=0))
    # The loose default tolerance: each iteration divides the error by ~5, so the error left is
    # well below the tolerance on the last change.
    x_loose, *_ = torch.ops.fastinpaint.biharmonic_solve(
        torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), module._TOL, 200
    )
    assert np.abs(x_loose.numpy() - exact).max() < module._TOL, f"seed {seed}"
    # fill=True: the same solution, clipped to the known range, written with the known pixels
    # into out instead of returned.
    filled = np.full_like(image, np.nan)
    x_none, *_ = torch.ops.fastinpaint.biharmonic_solve(
        torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), module._TOL, 200, fill=True,
        out=torch.from_numpy(filled),
    )
    assert x_none.shape == (0, 2)
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    np.testing.assert_array_equal(filled[mask], np.clip(x_loose.numpy(), lo.numpy(), hi.numpy()))


def thin_mask(pattern, shape=(120, 130)):
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    if pattern == "diagonal lines":  # 1-pixel lines: bilinear coarsening keeps nearly every point
        for offset in range(-w, w, 6):
            ys = np.arange(h)
            xs = ys + offset
            keep = (xs >= 0) & (xs < w)
            mask[ys[keep], xs[keep]] = True
    elif pattern == "dots":  # every other pixel of every other row
        mask[::2, ::2] = True
    else:  # horizontal lines, 1 pixel wide
        mask[1::3, 2:-2] = True
    mask[0, 0] = False
    return mask


@pytest.mark.parametrize("pattern", ["diagonal lines", "dots", "horizontal lines"])
def test_multigrid_solver_thin_holes(pattern):
    """Thin holes, where coarsening stalls (the coarsest level is then smoothed, not factored),
    against SciPy's direct solve on a fresh random image."""
    from fastinpaint import _C
    from fastinpaint.methods import biharmonic as module

    seed = fresh_seed()
    image = np.random.default_rng(seed).random((120, 130, 2))
    mask = thin_mask(pattern)
    a, b = module._assemble(image.reshape(-1, 2), mask, np.flatnonzero(mask))
    exact = scipy_sparse_linalg().spsolve(a.tocsc(), b)
    x, _, _, iterations, last_change, levels, _ = torch.ops.fastinpaint.biharmonic_solve(
        torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), 1e-6, 100
    )
    assert last_change <= 1e-6 and iterations < 100
    if pattern != "horizontal lines":
        assert levels == 1  # coarsening stalled at once
    assert np.abs(x.numpy() - exact).max() < 1e-5, f"{pattern}, seed {seed}"


@pytest.mark.parametrize("into", ["image", "out"])
@pytest.mark.parametrize("threads", [1, 2])
def test_multigrid_solver_threads_and_channel_groups(threads, into):
    """A system big enough for a team of threads (each works on its share of every level's runs),
    with 5 channels (solved as groups of 4 and 1), written into the image's holes (out= the image
    itself), or the whole filled image into a separate buffer (out=, which starts as NaN: every
    pixel must be written): against SciPy's direct solve, with 1 and 2 intra-op threads."""
    from fastinpaint import _C
    from fastinpaint.methods import biharmonic as module

    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    image = rng.random((100, 300, 5))
    mask = random_mask(rng, (100, 300), n_blobs=10)
    # ~15k unknowns: two threads' worth (the solver splits from 4096 slots); rows of 280 hole
    # pixels: longer than the prolongation's 256-pixel chunks
    mask[30:85, 10:290] = True
    a, b = module._assemble(image.reshape(-1, 5), mask, np.flatnonzero(mask))
    exact = scipy_sparse_linalg().spsolve(a.tocsc(), b)
    known = image[~mask]
    source = image.copy()
    filled = source if into == "image" else np.full_like(image, np.nan)
    out = torch.from_numpy(filled)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _, lo, hi, iterations, last_change, levels, _ = torch.ops.fastinpaint.biharmonic_solve(
            torch.from_numpy(source), torch.from_numpy(mask), module._diamond_table(), 1e-9, 200, fill=True, out=out
        )
    finally:
        torch.set_num_threads(before)
    if into == "out":
        np.testing.assert_array_equal(source, image)  # the input is only read
    # The preconditioner's quality, not only convergence: 14-21 iterations to 1e-9 over 150
    # seeds; a fault in a transfer leaves a solver that still converges, in ~55.
    assert last_change <= 1e-9 and iterations <= 30 and levels >= 4
    np.testing.assert_array_equal(lo.numpy(), known.min(axis=0))
    np.testing.assert_array_equal(hi.numpy(), known.max(axis=0))
    np.testing.assert_array_equal(filled[~mask], known)
    expected = np.clip(exact, known.min(axis=0), known.max(axis=0))
    assert np.abs(filled[mask] - expected).max() < 1e-7, f"threads {threads}, seed {seed}"


def test_multigrid_solver_every_instruction_set():
    """Each compiled copy of the solver this CPU runs (SSE2 baseline, AVX2, AVX-512: the same source
    with vectors of each register width) against SciPy's direct solve, and they agree."""
    from fastinpaint import _C
    from fastinpaint.methods import biharmonic as module

    isas = _C.biharmonic_isas()
    assert isas[0] == "baseline"
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    image = rng.random((45, 83, 3))
    mask = random_mask(rng, (45, 83), n_blobs=8)
    a, b = module._assemble(image.reshape(-1, 3), mask, np.flatnonzero(mask))
    exact = scipy_sparse_linalg().spsolve(a.tocsc(), b)
    for isa in isas:
        x, *_, ran = torch.ops.fastinpaint.biharmonic_solve(
            torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), 1e-9, 200, isa=isa
        )
        assert ran == isa
        assert np.abs(x.numpy() - exact).max() < 1e-7, f"{isa}, seed {seed}"
    with pytest.raises(ValueError, match="instruction set"):
        torch.ops.fastinpaint.biharmonic_solve(
            torch.from_numpy(image), torch.from_numpy(mask), module._diamond_table(), 1e-3, 10, isa="sse9"
        )


def scipy_sparse_linalg():
    import scipy.sparse.linalg

    return scipy.sparse.linalg


def test_multigrid_falls_back_to_the_direct_solve(monkeypatch, multigrid_only):
    import fastinpaint.methods.biharmonic as module

    monkeypatch.setattr(module, "_MAX_ITER", 1)
    monkeypatch.setattr(module, "_TOL", 1e-14)
    rng = np.random.default_rng(7)
    image = rng.random((30, 40))
    mask = random_mask(rng, (30, 40), n_blobs=3)
    out = inpaint_biharmonic(image, mask)
    assert multigrid_only
    assert np.abs(out - reference(image, mask)).max() < 1e-9  # the direct solve's accuracy


def test_multigrid_solver_checks_its_inputs():
    from fastinpaint import _C
    from fastinpaint.methods import biharmonic as module

    table = module._diamond_table()
    image = torch.zeros(8, 9, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"hole must be \(8, 9\)"):
        torch.ops.fastinpaint.biharmonic_solve(image, torch.zeros(8, 8, dtype=torch.bool), table, 1e-6, 10)
    with pytest.raises(ValueError, match="float64"):
        torch.ops.fastinpaint.biharmonic_solve(image.float(), torch.zeros(8, 9, dtype=torch.bool), table, 1e-6, 10)
    with pytest.raises(ValueError, match="at least one hole pixel"):
        torch.ops.fastinpaint.biharmonic_solve(image, torch.zeros(8, 9, dtype=torch.bool), table, 1e-6, 10)
    with pytest.raises(ValueError, match="table"):
        torch.ops.fastinpaint.biharmonic_solve(image, torch.ones(8, 9, dtype=torch.bool), table[:80], 1e-6, 10)
    hole = torch.zeros(8, 9, dtype=torch.bool)
    hole[3:5, 3:5] = True
    bad = image.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        torch.ops.fastinpaint.biharmonic_solve(bad, hole, table, 1e-6, 10)
    with pytest.raises(ValueError, match="tol"):
        torch.ops.fastinpaint.biharmonic_solve(image, hole, table, 0.0, 10)
    with pytest.raises(ValueError, match="pass both or neither"):
        torch.ops.fastinpaint.biharmonic_solve(image, hole, table, 1e-6, 10, fill=True)
    with pytest.raises(ValueError, match=r"out must be a contiguous float64 CPU tensor of the image's shape \[8, 9, 1\]"):
        torch.ops.fastinpaint.biharmonic_solve(image, hole, table, 1e-6, 10, fill=True, out=torch.zeros(8, 9, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="out must be"):
        torch.ops.fastinpaint.biharmonic_solve(image, hole, table, 1e-6, 10, fill=True, out=torch.zeros(8, 9, 1))
    with pytest.raises(ValueError, match="pass both or neither"):
        torch.ops.fastinpaint.biharmonic_solve(image, hole, table, 1e-6, 10, out=torch.zeros(8, 9, 1, dtype=torch.float64))


def test_solver_op_schema_is_honest():
    """torch.library.opcheck's schema test: the op mutates `out` (declared Tensor(a!)) and nothing
    else. (No fake kernel: the solve is host work whose result depends on the data, not traced.)"""
    from fastinpaint.methods import biharmonic as module

    rng = np.random.default_rng(fresh_seed())
    image = torch.from_numpy(rng.random((40, 50, 3)))
    hole = torch.zeros(40, 50, dtype=torch.bool)
    hole[10:30, 12:40] = True
    table = module._diamond_table()
    torch.library.opcheck(torch.ops.fastinpaint.biharmonic_solve.default, (image, hole, table, 1e-6, 50),
                          test_utils=("test_schema",))
    torch.library.opcheck(torch.ops.fastinpaint.biharmonic_solve.default, (image, hole, table, 1e-6, 50),
                          {"fill": True, "out": torch.empty_like(image)}, test_utils=("test_schema",))


def test_multigrid_solver_runs_on_the_free_threads(monkeypatch, multigrid_only):
    """Called directly (not through fastinpaint.inpaint), the solve still runs on the threads
    other processes leave free: its thread team waits at every barrier for a descheduled
    thread. A busy machine is simulated (one free thread); the op sees torch set to 1 thread,
    and torch's setting is restored afterwards."""
    import fastinpaint._cpu_load as cpu_load
    import fastinpaint.methods.biharmonic as module

    seen = []

    class SpyOps:
        def __getattr__(self, name):
            op = getattr(torch.ops.fastinpaint, name)

            def spy(*args, **kwargs):
                seen.append(torch.get_num_threads())
                return op(*args, **kwargs)

            return spy

    class SpyTorch:
        ops = type("Ops", (), {"fastinpaint": SpyOps()})()

        def __getattr__(self, name):
            return getattr(torch, name)

    monkeypatch.setattr(cpu_load, "free_cpu_threads", lambda wanted=None: 1)
    monkeypatch.setattr(module, "torch", SpyTorch())
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(fresh_seed())
        image, mask = rng.random((48, 56, 3)), random_mask(rng, (48, 56), n_blobs=3)
        inpaint_biharmonic(image, mask)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert multigrid_only and seen and all(n == 1 for n in seen), seen


def test_bad_input_errors_name_the_function():
    """As the other methods' errors do: the message starts with the function called (a caller
    three functions deep saw 'image must be ...' with no hint of which image)."""
    img = np.zeros((8, 9, 3), np.float32)
    hole = np.zeros((8, 9), bool)
    hole[2:5, 3:6] = True
    cases = [
        (lambda: inpaint_biharmonic(img.tolist(), hole), TypeError, "image must be a NumPy array"),
        (lambda: inpaint_biharmonic(img.astype(np.uint8), hole), TypeError, "image must be floating point"),
        (lambda: inpaint_biharmonic(img[None, None], hole), ValueError, r"image must be \(H, W\) or \(H, W, C\)"),
        (lambda: inpaint_biharmonic(img, hole[None, None]), ValueError, "mask must be 2-D"),
        (lambda: inpaint_biharmonic(img, hole[:4]), ValueError, "mask shape"),
        (lambda: inpaint_biharmonic(torch.zeros(8, 9, dtype=torch.int32), hole), TypeError, "image must be a floating-point tensor"),
        (lambda: inpaint_biharmonic(torch.zeros(1, 1, 8, 9), hole), ValueError, r"image tensor must be \(H, W\)"),
        (lambda: inpaint_biharmonic(torch.zeros(3, 8, 9), hole[:4]), ValueError, "mask shape"),
        (lambda: inpaint_biharmonic(img, hole, source_mask=~hole), ValueError, "source_mask does not apply"),
    ]
    for call, kind, what in cases:
        with pytest.raises(kind, match=f"^inpaint_biharmonic: {what}"):
            call()
