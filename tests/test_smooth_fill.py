"""fastinpaint.smooth_fill: the push-pull fill and the distance to the known pixels shared by
PatchMatch, the learned methods' corrections and GLCIC's prefill."""

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from fastinpaint.smooth_fill import dilate, hole_distance, pushpull_fill, upsample, upsample_where


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (5, 200)])
def test_hole_distance_equals_the_whole_image_transform(shape):
    # hole_distance transforms only the hole's bounding box grown by a pixel; the reference is
    # scipy's transform of the whole plane, on fresh random holes (blobs and isolated pixels)
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        hole = rng.random(shape) < rng.uniform(0.05, 0.6)
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        hole[max(0, y - 4):y + 5, max(0, x - 6):x + 7] = True
        hole[0, :] = False  # something known
        got = hole_distance(torch.from_numpy(hole))
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), distance_transform_edt(hole), rtol=0, atol=1e-5)
    assert not hole_distance(torch.zeros(shape, dtype=torch.bool)).any()


def test_pushpull_fill_keeps_known_pixels_and_stays_within_their_range():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 41, 67, generator=g)
    known = torch.rand(41, 67, generator=g) > 0.7
    known[:, :5] = True
    out = pushpull_fill(img, known)
    assert torch.equal(out[:, known], img[:, known])
    lo = img[:, known].amin(1)[:, None]
    hi = img[:, known].amax(1)[:, None]
    fill = out[:, ~known]
    assert torch.isfinite(fill).all() and (fill >= lo - 1e-6).all() and (fill <= hi + 1e-6).all()


def test_pushpull_fill_of_a_flat_image_is_flat_and_ignores_hole_values():
    colour = torch.tensor([0.2, 0.5, 0.9])
    img = colour[:, None, None].expand(3, 30, 30).clone()
    known = torch.ones(30, 30, dtype=torch.bool)
    known[5:25, 8:22] = False
    img[:, ~known] = 1e6  # hole values must not reach the fill
    out = pushpull_fill(img, known)
    torch.testing.assert_close(out[:, ~known], colour[:, None].expand(3, int((~known).sum())), rtol=0, atol=1e-6)
    assert torch.equal(pushpull_fill(img, torch.zeros_like(known)), torch.zeros_like(img))
    assert pushpull_fill(img, torch.ones_like(known)) is img


@pytest.mark.parametrize("shape,size", [((3, 64, 64), (128, 128)), ((3, 33, 47), (65, 93)), ((1, 5, 7), (9, 14)),
                                        ((2, 1, 3), (2, 6))])
def test_upsample_is_bilinear_and_the_same_on_any_thread_count(shape, size):
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(sum(size))
    x = torch.rand(*shape, generator=g)
    want = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    previous = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(upsample(x, size))
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(outs[0], want, rtol=0, atol=1e-5)  # ATen's source coordinates are float32
    assert all(torch.equal(o, outs[0]) for o in outs)


@pytest.mark.parametrize("shape,size", [((3, 64, 64), (128, 128)), ((3, 33, 47), (65, 93)), ((4, 40, 30), (401, 299))])
def test_upsample_where_is_upsample_at_the_masked_pixels_only(shape, size):
    """The same floats as the dense upsample where asked, the base elsewhere (the hd seam
    correction and every PatchMatch level start rely on both)."""
    g = torch.Generator().manual_seed(sum(size) + 1)
    x = torch.rand(*shape, generator=g)
    where = torch.rand(*size, generator=g) > 0.8
    base = torch.rand(shape[0], *size, generator=g)
    got = upsample_where(x, where, base)
    assert torch.equal(got, torch.where(where[None], upsample(x, size), base))
    assert torch.equal(upsample_where(x, torch.zeros_like(where), base), base)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (5, 3), (37, 64), (120, 97)])
@pytest.mark.parametrize("radius", [1, 2, 3, 5, 16, 60])
def test_dilate_is_the_square_max_filter(shape, radius):
    """The boolean running-OR dilation against scipy's square maximum filter (zero outside),
    sparse and dense masks, windows longer than the image included."""
    from scipy.ndimage import maximum_filter

    g = torch.Generator().manual_seed(radius * 1000 + shape[0])
    for density in (0.01, 0.3):
        m = torch.rand(shape, generator=g) < density
        expected = maximum_filter(m.numpy(), size=2 * radius + 1, mode="constant", cval=False)
        got = dilate(m, radius)
        assert got.is_contiguous() and torch.equal(got, torch.from_numpy(expected))


@pytest.mark.parametrize("shape", [(37, 53), (128, 96), (300, 451)])
def test_pushpull_fill_where_gives_the_same_values_at_those_pixels(shape):
    """``where`` computes the fill at some pixels only (PatchMatch's seam correction: a ring known,
    the hole wanted): bit for bit what the whole fill gives there; the rest keeps the input."""
    h, w = shape
    g = torch.Generator().manual_seed(h)
    img = torch.rand(3, h, w, generator=g)
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[h // 5:h * 2 // 3, w // 5:w * 3 // 4] = True
    hole[::7] = True
    ring = dilate(hole, 1) & ~hole
    whole = pushpull_fill(img, ring)
    part = pushpull_fill(img, ring, where=hole)
    assert torch.equal(part[:, hole], whole[:, hole])
    assert torch.equal(part[:, ~hole], img[:, ~hole])
    # nothing known: zeros at those pixels only
    none = pushpull_fill(img, torch.zeros_like(hole), where=hole)
    assert torch.equal(none[:, hole], torch.zeros_like(img[:, hole])) and torch.equal(none[:, ~hole], img[:, ~hole])
