"""Item 4 of issue 15: NaN in the hole is ignored, non-finite known pixels are an error, float
ranges for the learned methods, and the seed, for every built-in method."""

import numpy as np
import pytest

import fastinpaint

METHODS = ["patchmatch", "biharmonic", "pconv", "glcic"]
H, W = 32, 32


def _image():
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x / W, y / H, (x + y) / (W + H)], -1).astype(np.float32)


def _hole():
    m = np.zeros((H, W), bool)
    m[10:18, 12:20] = True
    return m


@pytest.mark.parametrize("method", METHODS)
def test_nan_in_hole_is_ignored(method):
    img, hole = _image(), _hole()
    clean = fastinpaint.inpaint(img, hole, method, seed=0)
    dirty = img.copy()
    dirty[hole] = np.nan
    dirty[11, 13] = np.inf
    out = fastinpaint.inpaint(dirty, hole, method, seed=0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[~hole], img[~hole])
    # what was under the hole does not matter: same result as with the mean colour there
    np.testing.assert_allclose(out[hole], clean[hole], atol=0.05 if method == "patchmatch" else 1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_non_finite_known_pixel_is_an_error(method):
    img = _image()
    img[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite values .* outside the hole"):
        fastinpaint.inpaint(img, _hole(), method)


@pytest.mark.parametrize("method", ["pconv", "glcic"])
def test_learned_methods_refuse_float_outside_unit_range(method):
    with pytest.raises(ValueError, match=r"\[0, 1\].*span \[0, 2\d\d"):
        fastinpaint.inpaint(_image() * 255, _hole(), method)
    # in range, and integer images of any depth, are fine
    fastinpaint.inpaint(_image(), _hole(), method)
    fastinpaint.inpaint((_image() * 65535).astype(np.uint16), _hole(), method)


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic"])
def test_classical_methods_take_any_float_range(method):
    img, hole = _image(), _hole()
    a = fastinpaint.inpaint(img, hole, method, seed=0)
    b = fastinpaint.inpaint(img * 255, hole, method, seed=0)
    assert np.isfinite(b).all()
    np.testing.assert_allclose(b[hole] / 255, a[hole], atol=0.05 if method == "patchmatch" else 1e-4)


def test_seed_int_or_none():
    img, hole = _image(), _hole()
    fastinpaint.inpaint(img, hole, "patchmatch", seed=None)
    fastinpaint.inpaint(img, hole, "patchmatch", seed=np.int64(3))
    for bad in (1.5, "3", True):
        with pytest.raises(TypeError, match="seed must be an int or None"):
            fastinpaint.inpaint(img, hole, "patchmatch", seed=bad)


@pytest.mark.parametrize("device", ["meta", "gpu", "mps", "xla"])
def test_a_device_the_methods_do_not_run_on_is_named(device):
    """Only the CPU and CUDA run the methods: any other device is one line naming the argument
    (torch's own errors named neither: 'meta' failed inside a kernel, 'gpu' listed device types)."""
    import fastinpaint

    img = np.zeros((16, 16, 3), np.uint8)
    hole = np.zeros((16, 16), bool)
    hole[4:8, 4:8] = True
    with pytest.raises(ValueError, match=f"inpaint: device must be 'cpu', 'cuda' or 'cuda:N'.*got '{device}'"):
        fastinpaint.inpaint(img, hole, device=device)
