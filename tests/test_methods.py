"""Every method through the one API and the one CLI: fastinpaint.inpaint(method=...) and
`fastinpaint inpaint --method ...`, against calling the method's own function directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import fastinpaint
from fastinpaint import cli
from fastinpaint.methods.biharmonic import inpaint_biharmonic
from fastinpaint.methods.pconv import inpaint_pconv
from fastinpaint.nn import PConvUNet


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 3, y * 4, (x + y) * 2], -1) + rng.integers(0, 20, (48, 64, 3))
    mask = np.zeros((48, 64), np.uint8)
    mask[14:30, 20:40] = 255
    return img.clip(0, 255).astype(np.uint8), mask


@pytest.fixture
def small_pconv(tmp_path):
    torch.manual_seed(0)
    net = PConvUNet(layers=4, base_channels=4, max_channels=8).eval()
    path = tmp_path / "pconv.pt"
    net.save(path)
    return net, path


def test_available_methods_lists_every_method():
    assert {"patchmatch", "biharmonic", "pconv", "glcic"} <= set(fastinpaint.available_methods())


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic", "pconv", "glcic"])
def test_each_method_is_one_function_on_chw_and_a_bool_hole(method):
    """The registered function is the method's one public function, it takes the dispatcher's
    (C, H, W) float32 + (H, W) bool call, and the old second names still work for a release, with
    a DeprecationWarning."""
    import importlib

    from fastinpaint.inpaint import _resolve_method

    fn = _resolve_method(method)
    module = importlib.import_module(f"fastinpaint.methods.{method}")
    assert fn is getattr(module, f"inpaint_{method}")
    torch.manual_seed(0)
    image = torch.rand(3, 24, 28)
    hole = torch.zeros(24, 28, dtype=torch.bool)
    hole[8:16, 9:20] = True
    out = fn(image, hole, seed=0, source_mask=None)
    assert out.shape == image.shape and torch.equal(out[:, ~hole], image[:, ~hole])
    assert not torch.equal(out[:, hole], image[:, hole])
    if method != "patchmatch":
        with pytest.warns(DeprecationWarning, match=f"inpaint_{method}_method is deprecated"):
            old = getattr(module, f"inpaint_{method}_method")(image, hole)
        assert torch.equal(old, out)
        with pytest.raises(ValueError, match="source_mask"):
            fn(image, hole, source_mask=~hole)


@pytest.mark.parametrize("who", ["inpaint", "inpaint_pconv", "inpaint_glcic"])
def test_a_device_torch_cannot_use_is_one_clear_error_from_the_api_and_the_learned_methods(who, monkeypatch):
    """The learned methods called directly check ``device`` where fastinpaint.inpaint checks its
    own: the same one-line errors, naming the function (inpaint_pconv(device='cuda') on a CPU-only
    torch raised a bare 'AssertionError: Torch not compiled with CUDA enabled'; inpaint_glcic took
    no device). CUDA is hidden, so that a GPU machine checks the message too."""
    from fastinpaint.methods.glcic import inpaint_glcic

    call = {"inpaint": lambda img, hole, device: fastinpaint.inpaint(img, hole, method="pconv", device=device),
            "inpaint_pconv": inpaint_pconv, "inpaint_glcic": inpaint_glcic}[who]
    img, hole = torch.rand(3, 20, 24), torch.zeros(20, 24, dtype=torch.bool)
    hole[5:12, 6:15] = True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(RuntimeError) as info:
            call(img, hole, device=device)
        assert str(info.value) == (f"{who}: device={str(device)!r} was requested but torch.cuda.is_available() "
                                   f"is False")
    with pytest.raises(ValueError, match=f"^{who}: device must be 'cpu', 'cuda' or 'cuda:N'.*got 'gpu'$"):
        call(img, hole, device="gpu")
    out = call(img, hole, device="cpu")
    assert out.shape == img.shape and torch.equal(out[:, ~hole], img[:, ~hole])


def test_cuda_without_fastinpaints_kernels_or_past_the_gpus_is_one_clear_error(monkeypatch):
    """A GPU torch can use, but a fastinpaint built without its CUDA kernels (the first op failed
    with a dispatcher error), or ``cuda:N`` past the GPUs there are: one line each, from the rule
    the command line's --device uses too."""
    import fastinpaint.backend
    from fastinpaint.inpaint import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(fastinpaint.backend, "built_with_cuda", lambda: False)
    with pytest.raises(RuntimeError, match=r"^inpaint: device='cuda' was requested but this fastinpaint was built "
                                           r"without its CUDA kernels \(build with FASTINPAINT_CUDA=ON\)$"):
        check_device("cuda")
    monkeypatch.setattr(fastinpaint.backend, "built_with_cuda", lambda: True)
    with pytest.raises(RuntimeError, match=r"^--device: device='cuda:2' was requested but there are 2 CUDA devices$"):
        check_device("cuda:2", who="--device")
    assert check_device("cuda:1") == torch.device("cuda:1")


def batch_and_holes(n=3, h=24, w=28):
    """A small (N, 3, H, W) float batch in [0, 1] and an (N, H, W) bool hole per image, each elsewhere."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
    batch = (torch.stack([x, y, (x + y) / 2]) * 0.8 + 0.2 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
    holes = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        holes[i, 4 + 3 * i:12 + 3 * i, 5 + 4 * i:16 + 4 * i] = True
    return batch, holes


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic", "pconv", "glcic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_a_tensor_batch_is_filled_image_by_image_as_single_calls(method, dtype):
    """inpaint takes (N, C, H, W) with (N, H, W) holes for every method (it refused 4-D tensors,
    (1, C, H, W) included, while inpaint_pconv took them): image i comes back as the single call on
    image i with the same seed gives it, bit for bit; (N, C, H, W) in the input's dtype; known
    pixels are the input's own bits."""
    batch, holes = batch_and_holes()
    if dtype == torch.uint8:
        batch = batch.mul(255).round().to(torch.uint8)
    out = fastinpaint.inpaint(batch, holes, method=method, seed=5)
    assert out.shape == batch.shape and out.dtype == dtype
    for i in range(batch.shape[0]):
        assert torch.equal(out[i], fastinpaint.inpaint(batch[i], holes[i], method=method, seed=5))
    known = ~holes[:, None].expand_as(batch)
    assert torch.equal(out[known], batch[known])
    assert not torch.equal(out[~known], batch[~known])


def test_a_batch_takes_one_mask_per_image_in_either_shape_or_one_for_all():
    """(N, H, W), (N, 1, H, W) (tensor or numpy) and a batch of 1 all give one mask per image; an
    (H, W) mask (tensor, numpy or PIL) or a (1, H, W) one serves the whole batch; source_mask
    takes the same shapes; a (1, C, H, W) batch comes back (1, C, H, W) in its memory format."""
    batch, holes = batch_and_holes()
    per_image = fastinpaint.inpaint(batch, holes, seed=1)
    for m in (holes[:, None], holes.numpy(), holes[:, None].numpy().astype(np.uint8) * 255):
        assert torch.equal(fastinpaint.inpaint(batch, m, seed=1), per_image)
    shared = fastinpaint.inpaint(batch, holes[0], seed=1)
    for m in (holes[:1], holes[0].numpy(), Image.fromarray(holes[0].numpy().astype(np.uint8) * 255)):
        assert torch.equal(fastinpaint.inpaint(batch, m, seed=1), shared)
    assert torch.equal(shared[1], fastinpaint.inpaint(batch[1], holes[0], seed=1))
    source = torch.ones_like(holes)
    source[:, :, 20:] = False
    with_source = fastinpaint.inpaint(batch, holes, seed=1, source_mask=source)
    assert torch.equal(with_source[2], fastinpaint.inpaint(batch[2], holes[2], seed=1, source_mask=source[2]))
    assert torch.equal(fastinpaint.inpaint(batch, holes, seed=1, source_mask=source[0]), with_source)
    one = batch[:1].contiguous(memory_format=torch.channels_last)
    out = fastinpaint.inpaint(one, holes[0], seed=1)
    assert out.shape == (1, 3, 24, 28) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, per_image[:1])


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic"])
def test_a_numpy_batch_is_filled_image_by_image_in_its_own_layout(method):
    """A numpy batch is (N, H, W, C), a stack of the (H, W, C) arrays inpaint takes, as a tensor
    batch is a stack of (C, H, W) tensors: it was refused ("image must have shape (H, W) or (H, W,
    C)") while the tensor batch was taken. It comes back as a numpy (N, H, W, C) array in its dtype,
    image i as the single call on image i gives it; masks (N, H, W), (N, H, W, 1) or one (H, W)."""
    batch, holes = batch_and_holes()
    arrays, hole_arrays = batch.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), holes.numpy()
    out = fastinpaint.inpaint(arrays, hole_arrays, method=method, seed=5)
    assert isinstance(out, np.ndarray) and out.shape == arrays.shape and out.dtype == np.uint8
    for i in range(len(arrays)):
        assert np.array_equal(out[i], fastinpaint.inpaint(arrays[i], hole_arrays[i], method=method, seed=5))
    assert np.array_equal(out[~hole_arrays], arrays[~hole_arrays]) and not np.array_equal(out, arrays)
    assert np.array_equal(fastinpaint.inpaint(arrays, hole_arrays[..., None], method=method, seed=5), out)
    shared = fastinpaint.inpaint(arrays, hole_arrays[0], method=method, seed=5)
    assert np.array_equal(shared[2], fastinpaint.inpaint(arrays[2], hole_arrays[0], method=method, seed=5))
    with pytest.raises(ValueError, match=r"^inpaint: an image batch must have shape \(N, H, W, C\) with C in 1..4, "
                                         r"got \(3, 3, 24, 28\)$"):
        fastinpaint.inpaint(batch.numpy(), hole_arrays)  # (N, C, H, W) is a tensor's layout


def test_a_batch_names_the_image_an_error_or_a_warning_is_about():
    batch, holes = batch_and_holes()
    with pytest.raises(ValueError, match=r"^inpaint: for an image batch of 3 the mask must be \(H, W\) "
                                         r"\(shared\), \(N, H, W\), \(N, 1, H, W\) or \(N, H, W, 1\) with N = 3 "
                                         r"\(or 1\), got shape \(2, 24, 28\)$"):
        fastinpaint.inpaint(batch, holes[:2])
    with pytest.raises(ValueError, match=r"source_mask must be .* got shape \(3, 1, 1, 24, 28\)$"):
        fastinpaint.inpaint(batch, holes, source_mask=holes[:, None, None])
    with pytest.raises(ValueError, match=r"^inpaint: an image batch must have shape \(N, C, H, W\) with C in 1..4"):
        fastinpaint.inpaint(torch.rand(2, 5, 8, 8), torch.ones(8, 8))
    full = holes.clone()
    full[1] = True
    with pytest.raises(ValueError, match=r"^inpaint: the mask covers the whole image.*\(image 1 of the batch\)$"):
        fastinpaint.inpaint(batch, full)
    empty = holes.clone()
    empty[2] = False
    with pytest.warns(UserWarning, match=r"^inpaint: image 2's mask is empty \(no hole pixel\); returning that "
                                         r"image unchanged$") as record:
        out = fastinpaint.inpaint(batch, empty, seed=1)
    assert record[0].filename == __file__  # (the warning points at the caller)
    assert torch.equal(out[2], batch[2]) and torch.equal(out[:2], fastinpaint.inpaint(batch[:2], holes[:2], seed=1))
    assert fastinpaint.inpaint(batch[:0], holes[:0]).shape == (0, 3, 24, 28)


def test_partial_conv2d_function_is_deprecated_and_same_as_the_op():
    x, w = torch.randn(1, 3, 9, 9), torch.randn(4, 3, 3, 3)
    mask = (torch.rand(1, 1, 9, 9) > 0.3).float()
    args = (x, mask, w, None, [1, 1], [1, 1], [1, 1], 1, [3], False, False)
    with pytest.warns(DeprecationWarning, match="PartialConv2dFunction is deprecated"):
        old = fastinpaint.ops.PartialConv2dFunction.apply(*args)
    assert len(old) == 4
    torch.testing.assert_close(old[0], fastinpaint.ops.partial_conv2d(x, mask, w, padding=1)[0])


def test_cli_glcic_with_poisson_blend(tmp_path, photo):
    from fastinpaint.nn import GLCIC

    img, mask = photo
    torch.manual_seed(0)
    GLCIC(width=4).save(tmp_path / "glcic.pt")
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    outs = {}
    for blend in ("none", "poisson"):
        out = tmp_path / f"out_{blend}.png"
        assert cli.main(["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o", str(out),
                         "--method", "glcic", "--weights", str(tmp_path / "glcic.pt"), "--blend", blend]) == 0
        outs[blend] = np.asarray(Image.open(out))
        assert np.array_equal(outs[blend][mask == 0], img[mask == 0])
    assert not np.array_equal(outs["none"], outs["poisson"])  # blending changed the filled region


def test_biharmonic_through_inpaint_matches_the_method(photo):
    img, mask = photo
    out = fastinpaint.inpaint(img, mask, method="biharmonic")
    hole = mask > 0
    ref = inpaint_biharmonic(img.astype(np.float64), hole)
    assert out.dtype == np.uint8 and np.array_equal(out[~hole], img[~hole])
    assert np.abs(out[hole].astype(float) - np.clip(np.round(ref[hole]), 0, 255)).max() <= 1


def test_pconv_through_inpaint_scales_integer_images_to_unit_range(photo, small_pconv):
    img, mask = photo
    net, path = small_pconv
    hole = mask > 0
    out = fastinpaint.inpaint(img, mask, method="pconv", weights=path)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    ref = inpaint_pconv(x, torch.from_numpy(hole), weights=net).permute(1, 2, 0).numpy() * 255
    assert np.array_equal(out[~hole], img[~hole])
    assert np.abs(out[hole].astype(float) - ref[hole]).max() <= 1.0
    # 16-bit input: same network, scaled by 65535
    out16 = fastinpaint.inpaint(img.astype(np.uint16) * 257, mask, method="pconv", weights=path)
    assert out16.dtype == np.uint16 and np.abs(out16[hole] / 257.0 - ref[hole]).max() <= 1.0


@pytest.mark.parametrize("method", ["biharmonic", "pconv"])
def test_cli_runs_every_method(tmp_path, photo, small_pconv, method, capsys):
    img, mask = photo
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    extra = ["--weights", str(small_pconv[1])] if method == "pconv" else []
    assert cli.main(["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o", str(out),
                     "--method", method, *extra]) == 0
    res = np.asarray(Image.open(out))
    assert np.array_equal(res[mask == 0], img[mask == 0])


def test_cli_pconv_with_missing_weights_fails_cleanly(tmp_path, photo, capsys):
    img, mask = photo
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code = cli.main(["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o",
                     str(tmp_path / "out.png"), "--method", "pconv", "--weights", str(tmp_path / "nope.pt")])
    assert code != 0 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("method", ["pconv", "glcic"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint32])
def test_learned_methods_refuse_integer_dtypes_of_ambiguous_scale(photo, method, dtype, monkeypatch):
    # a 0-255 photo as int64 was divided by 2**63 and came back as garbage; now a clear error,
    # before the network is even loaded
    import fastinpaint.methods.learned as learned

    monkeypatch.setattr(learned, "network", lambda *a, **k: pytest.fail("loaded a network for a refused image"))
    img, mask = photo
    with pytest.raises(TypeError, match=rf"{method}.*{np.dtype(dtype).name} images are ambiguous.*uint8, uint16"):
        fastinpaint.inpaint(img.astype(dtype), mask, method=method)
    with pytest.raises(TypeError, match="ambiguous"):  # tensors likewise
        fastinpaint.inpaint(torch.from_numpy(img.astype(np.int64)).permute(2, 0, 1), mask, method=method)


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic"])
@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint32])
def test_any_range_methods_fill_any_integer_dtype_as_the_uint8_photo(photo, method, dtype):
    img, mask = photo
    ref = fastinpaint.inpaint(img, mask, method=method, seed=3)
    out = fastinpaint.inpaint(img.astype(dtype), mask, method=method, seed=3)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, ref.astype(dtype))
    t = fastinpaint.inpaint(torch.from_numpy(img.astype(np.int64)).permute(2, 0, 1), mask, method=method, seed=3)
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), ref.astype(np.int64))


@pytest.mark.parametrize("method, option, listed", [
    ("biharmonic", {"patch_size": 9}, "split_into_regions"),
    ("biharmonic", {"weights": "x.pt"}, "split_into_regions"),
    ("pconv", {"blend": "poisson"}, "weights, half"),
    ("patchmatch", {"em_iterations": 3}, "patch_size, coarsest_size"),
])
def test_an_option_the_method_does_not_take_is_one_clear_error(photo, method, option, listed):
    img, mask = photo
    name = next(iter(option))
    expected = rf"^inpaint: method '{method}' takes no option '{name}' \(its options: {listed}"
    with pytest.raises(TypeError, match=expected):
        fastinpaint.inpaint(img, mask, method=method, **option)


def test_options_a_method_takes_pass_the_check(photo):
    img, mask = photo
    out = fastinpaint.inpaint(img, mask, method="biharmonic", split_into_regions=False)
    assert np.array_equal(out[mask == 0], img[mask == 0])
    fastinpaint.inpaint(img, mask, method="patchmatch", patch_size=5, em_finest=2)


def test_registered_method_with_var_keywords_checks_its_own_options(photo):
    from fastinpaint.inpaint import _REGISTERED

    seen = {}

    def fill(image, hole, *, seed, source_mask, **options):
        seen.update(options)
        return image

    fastinpaint.register_method("test_anything", fill)
    try:
        fastinpaint.inpaint(photo[0], photo[1], method="test_anything", whatever=1)
    finally:
        del _REGISTERED["test_anything"]
    assert seen == {"whatever": 1}


@pytest.mark.parametrize("argv, flag", [
    (["--method", "biharmonic", "--patch-size", "9"], "--patch-size"),
    (["--method", "pconv", "--blend", "poisson"], "--blend"),
    (["--method", "pconv", "--weights", "w.pt", "--blend", "poisson"], "--blend"),
    (["--method", "biharmonic", "--weights", "x.pt"], "--weights"),
])
def test_cli_option_for_another_method_is_one_usage_error_before_the_batch(tmp_path, photo, capsys, argv, flag):
    img, mask = photo
    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(img).save(tmp_path / "in" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    rc = cli.main(["inpaint", "--images", str(tmp_path / "in"), "--masks", str(tmp_path / "masks"),
                   "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"error: {flag} does not apply to --method" in lines[0], err
    assert not (tmp_path / "out").exists()  # refused before the batch started


def test_one_patch_size_limit_for_the_api_the_cli_and_the_server(photo, tmp_path, capsys):
    from fastinpaint.methods.patchmatch import PATCH_SIZES
    from fastinpaint.serve.app import _method_options
    from fastinpaint.serve.decode import RequestError, _int_field

    img, mask = photo
    assert PATCH_SIZES == (3, 31)  # the numbers the server always had; 51 ran > 2 minutes on 256x192
    for bad in (1, 33, 51, 99, 8):
        with pytest.raises(ValueError, match=r"^patchmatch: patch_size must be an odd int between 3 and 31"):
            fastinpaint.inpaint(img, mask, patch_size=bad)
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["inpaint", "a.png", "m.png", "-o", str(tmp_path / "o.png"), "--patch-size", str(bad)])
        assert exit_info.value.code == 2  # argparse's usage error, before any file is read
        assert "--patch-size: must be an odd integer between 3 and 31" in capsys.readouterr().err
    out = fastinpaint.inpaint(img, mask, patch_size=31, seed=0)  # the bounds themselves are taken
    assert np.array_equal(out[mask == 0], img[mask == 0])
    fastinpaint.inpaint(img, mask, patch_size=3, seed=0)
    with pytest.raises(RequestError, match="between 3 and 31"):
        _int_field({"patch_size": 33}, "patch_size", None, *PATCH_SIZES)
    shown = _method_options("patchmatch", [])["options"]["patch_size"]
    assert (shown["min"], shown["max"]) == PATCH_SIZES


def test_seed_range_is_stated_as_it_is_and_checked_before_reading_files(photo, tmp_path, capsys):
    from fastinpaint.inpaint import SEED_LIMIT

    img, mask = photo
    assert SEED_LIMIT == 2**62
    for bad in (2**62, -2**62 - 1, 2**63 - 1):
        with pytest.raises(ValueError, match=r"seed must be between -2\*\*62 and 2\*\*62 - 1 .*got " + str(bad)):
            fastinpaint.inpaint(img, mask, seed=bad)
        with pytest.raises(SystemExit) as exit_info:  # "a.png" does not exist: parsing fails first
            cli.main(["inpaint", "a.png", "m.png", "-o", str(tmp_path / "o.png"), "--seed", str(bad)])
        assert exit_info.value.code == 2
        assert f"--seed: must be between -2**62 and 2**62 - 1, got {bad}" in capsys.readouterr().err
    for good in (2**62 - 1, -2**62):  # the bounds run (the ops take the seed's low 63 bits)
        out = fastinpaint.inpaint(img, mask, seed=good)
        assert np.array_equal(out[mask == 0], img[mask == 0])


def test_pil_image_is_taken_as_stored_and_an_exif_rotated_size_mismatch_says_why(photo, tmp_path):
    from PIL import ImageOps

    img, mask = photo  # stored 48x64 (H, W); orientation 6 displays it 64x48
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "exif6.jpg", exif=exif, quality=95)
    pil = Image.open(tmp_path / "exif6.jpg")
    displayed_mask = np.ascontiguousarray(mask.T)  # drawn on the displayed (transposed) image
    with pytest.raises(ValueError, match=r"does not match the image size \(48, 64\); .*EXIF orientation.*"
                                         r"PIL.ImageOps.exif_transpose\(image\)"):
        fastinpaint.inpaint(pil, displayed_mask)
    out = fastinpaint.inpaint(ImageOps.exif_transpose(pil), displayed_mask)  # the hint's fix works
    assert out.size == (48, 64)
    out = fastinpaint.inpaint(pil, mask)  # as stored: the stored size
    assert out.size == pil.size == (64, 48)
    with pytest.raises(ValueError) as plain:  # no orientation: no hint
        fastinpaint.inpaint(Image.fromarray(img), displayed_mask)
    assert "exif_transpose" not in str(plain.value)


@pytest.mark.parametrize("method", ["patchmatch", "biharmonic"])
def test_tensor_with_requires_grad_gives_a_plain_result_without_warnings(photo, method):
    import warnings

    img, mask = photo
    t = torch.from_numpy(img).permute(2, 0, 1).float().div(255).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Converting a tensor with requires_grad=True to a scalar"
        out = fastinpaint.inpaint(t, torch.from_numpy(mask), method=method, seed=1)
    assert out.grad_fn is None and not out.requires_grad
    expected = fastinpaint.inpaint(t.detach(), torch.from_numpy(mask), method=method, seed=1)
    assert torch.equal(out, expected)


def test_demo_seed_out_of_range_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "-o", str(tmp_path / "d.png"), "--seed", str(2**62)])
    assert exit_info.value.code == 2
    assert "--seed: must be between -2**62 and 2**62 - 1" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()


def test_pil_lab_and_big_endian_16bit_inputs():
    """A LAB image is colour without alpha (its "A" band was taken for alpha), and a big-endian
    16-bit PIL image is filled with its known values kept (NumPy's byte-order error before)."""
    import fastinpaint
    from PIL import Image

    hole = np.zeros((32, 32), bool)
    hole[8:16, 8:16] = True
    bilevel = Image.fromarray(np.indices((32, 32)).sum(0) % 2 == 0).convert("1")
    assert fastinpaint.inpaint(bilevel, hole, method="biharmonic").mode == "L"  # grey, as the file reader has it
    lab = Image.new("RGB", (32, 32), (200, 100, 50)).convert("LAB")
    assert fastinpaint.inpaint(lab, hole, method="biharmonic").mode == "RGB"
    words = (np.arange(32 * 32).reshape(32, 32) * 50).astype(">u2")
    out = fastinpaint.inpaint(Image.frombytes("I;16B", (32, 32), words.tobytes()), hole, method="biharmonic")
    np.testing.assert_array_equal(np.asarray(out)[~hole], words.astype(np.uint16)[~hole])


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_pil_image_comes_back_in_its_own_mode(mode):
    """A premultiplied-alpha PIL image (RGBa came back as RGBA; La, which Pillow converts to LA
    only, failed with "conversion from La to L not supported") is filled on its colour itself and
    given back in its own mode: the known pixels its own bits, the fill premultiplied by the
    hole's alpha. One colour under alpha varying from 64 to 255: a fill of the premultiplied
    values (darker where alpha is low) would be darker than the colour."""
    import fastinpaint
    from PIL import Image

    rng = np.random.default_rng(3)
    colour = (200, 100, 50) if mode == "RGBa" else (200,)
    straight = np.empty((32, 32, len(colour) + 1), np.uint8)
    straight[..., :-1] = colour
    straight[..., -1] = rng.integers(64, 256, (32, 32))
    image = Image.fromarray(straight).convert(mode)
    stored = np.asarray(image)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 10:22] = True
    out = fastinpaint.inpaint(image, hole, method="biharmonic")
    assert out.mode == mode and out.size == image.size
    filled = np.asarray(out)
    np.testing.assert_array_equal(filled[~hole], stored[~hole])
    np.testing.assert_array_equal(filled[..., -1], stored[..., -1])  # alpha unchanged, in the hole too
    expected = stored[hole][:, :-1].astype(int)  # the colour times the hole's own alpha
    assert np.abs(filled[hole][:, :-1].astype(int) - expected).max() <= 2
    with pytest.warns(UserWarning, match="mask is empty"):
        assert fastinpaint.inpaint(image, np.zeros((32, 32), bool)).mode == mode
