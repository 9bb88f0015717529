"""The corrections the learned methods apply to their networks' fills (issue 18): the blend toward
the biharmonic fill near the hole border (both networks) and GLCIC's colour-offset correction.

Each test compares against a reference that does not come from the code under test: a flat
colour (what any fill of a flat image must give), scikit-image's biharmonic inpainting, the raw
network output, and the ground truth of the held-out development photos.
"""

import numpy as np
import pytest
import torch
from PIL import Image

import fastinpaint
from fastinpaint.methods.glcic import inpaint_glcic
from fastinpaint.methods.pconv import inpaint_pconv
from fastinpaint.nn import GLCIC, PConvUNet

HELD_OUT = ("astronaut", "cold_pier", "dahlia", "moss")


def _flat_with_lines(colour, widths, size=128):
    img = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1).expand(3, size, size).clone()
    hole = torch.zeros(size, size, dtype=torch.bool)
    for k, w in enumerate(widths):
        top = 12 + 24 * k
        hole[top : top + w, 16 : size - 16] = True
    return img, hole


@pytest.mark.parametrize("method", [inpaint_pconv, inpaint_glcic])
@pytest.mark.parametrize("colour", [(0.6, 0.8, 0.95), (0.2, 0.3, 0.2), (0.8, 0.45, 0.2)])
def test_bundled_networks_fill_thin_holes_of_a_flat_image_with_its_colour(method, colour):
    # Holes 1-4 px wide vanish from the mask after the first strided layer: the raw bundled
    # PConvUNet filled them up to 47 grey levels towards its normalisation's zero (mean grey), the
    # raw GLCIC up to 85 levels off. Any sound fill of a flat image is that flat colour.
    img, hole = _flat_with_lines(colour, (1, 2, 3, 4))
    out = method(img * ~hole, hole)
    err = (out[:, hole] - img[:, hole]).abs().mean(1) * 255
    assert float(err.max()) <= 2.0, err


def _tiny_pconv():
    torch.manual_seed(0)
    return PConvUNet(layers=4, base_channels=8, max_channels=16).eval()


def _hole(h, w):
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[10:40, 12:50] = True
    hole[50:53, 5:60] = True
    return hole


@pytest.mark.parametrize("method,net", [(inpaint_pconv, _tiny_pconv), (inpaint_glcic, lambda: GLCIC(width=4).eval())])
def test_border_blend_is_the_biharmonic_fill_on_the_first_ring_and_off_at_zero(method, net):
    skimage_restoration = pytest.importorskip("skimage.restoration")
    from scipy.ndimage import distance_transform_edt

    torch.manual_seed(1)
    h, w = 64, 70
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.2 + 0.6 * yy, 0.5 + 0.3 * xx * yy, 0.9 - 0.5 * xx]) + 0.02 * torch.rand(3, h, w)
    hole = _hole(h, w)
    network = net()
    kw = {"correct_offset": False} if method is inpaint_glcic else {"blend_floor": 0.0}
    raw = method(img * ~hole, hole, weights=network, border_blend=0.0, **kw)
    blended = method(img * ~hole, hole, weights=network, border_blend=4.0, **kw)
    ref = skimage_restoration.inpaint_biharmonic(img.permute(1, 2, 0).double().numpy(), hole.numpy(), channel_axis=-1)
    ref = torch.from_numpy(ref).permute(2, 0, 1).float()
    d = torch.from_numpy(distance_transform_edt(hole.numpy())).float()
    ring = d == 1
    assert torch.allclose(blended[:, ring], ref[:, ring], atol=2e-3)
    # further in, the network's own fill takes over: weight exp(-(d-1)/4) of the smooth fill
    a = torch.exp(-(d - 1) / 4)
    inner = d >= 3
    want = a[inner] * ref[:, inner] + (1 - a[inner]) * raw[:, inner]
    assert torch.allclose(blended[:, inner], want, atol=2e-3)
    # known pixels exact in both, and the raw fill is not the smooth one (the test can fail)
    assert torch.equal(raw[:, ~hole], img[:, ~hole]) and torch.equal(blended[:, ~hole], img[:, ~hole])
    assert (raw[:, ring] - ref[:, ring]).abs().max() > 0.05
    if method is inpaint_pconv:  # the floor: never less than that share of the smooth fill
        floored = method(img * ~hole, hole, weights=network, border_blend=4.0, blend_floor=0.5)
        a = a.clamp_min(0.5)
        want = a[inner] * ref[:, inner] + (1 - a[inner]) * raw[:, inner]
        assert torch.allclose(floored[:, inner], want, atol=2e-3)


def test_pconv_runs_the_network_at_net_size_and_blends_at_full_size():
    # independent reference: the same network run by hand on the area-downscaled image
    import torch.nn.functional as F

    net = _tiny_pconv()
    torch.manual_seed(2)
    img = torch.rand(3, 96, 128)
    hole = torch.zeros(96, 128, dtype=torch.bool)
    hole[30:70, 40:100] = True
    out = inpaint_pconv(img * ~hole, hole, weights=net, border_blend=0.0, net_size=64)
    small = F.interpolate((img * ~hole)[None], size=(48, 64), mode="area")
    small_hole = F.max_pool2d(hole[None, None].float(), 2) > 0
    mean = torch.tensor(net.normalization["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(net.normalization["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = (net((small * ~small_hole - mean) / std, (~small_hole).float()) * std + mean).clamp(0, 1)
    want = F.interpolate(pred, size=(96, 128), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(out[:, hole], want[:, hole], atol=1e-4)
    assert torch.equal(out[:, ~hole], img[:, ~hole])
    full = inpaint_pconv(img * ~hole, hole, weights=net, border_blend=0.0, net_size=0)
    assert (full[:, hole] - out[:, hole]).abs().max() > 0.01  # the size reaches the network


def test_offset_correction_removes_a_constant_colour_offset_whatever_the_known_pixels_predictions():
    # A smooth image (a ramp is biharmonic: the smooth fill is exact) and a prediction right up to a
    # constant offset in the hole, with different errors on the known pixels: a completion network
    # is trained on the hole only, so its known-pixel outputs say nothing about its hole (the
    # bundled GLCIC's were 30 grey levels too red there; the first version of the correction used
    # them and turned a -2.6 red cast into -9.5). The hole must come back as the image itself.
    from fastinpaint.methods.learned import offset_correct

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 50), indexing="ij")
    img = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.8 - 0.3 * xx - 0.2 * yy])[None]
    hole = torch.zeros(1, 1, 40, 50, dtype=torch.bool)
    hole[..., 10:30, 15:35] = True  # 400 px: the exact (direct) biharmonic solve
    offset = torch.tensor([0.1, -0.05, 0.2]).view(1, 3, 1, 1)
    wrong_outside = torch.tensor([-0.3, 0.25, 0.1]).view(1, 3, 1, 1) * torch.rand(1, 1, 40, 50)
    pred = torch.where(hole, img + offset, img + wrong_outside)
    out = offset_correct(img, hole, pred)
    assert torch.allclose(out[:, :, 10:30, 15:35], img[:, :, 10:30, 15:35], atol=1e-4)
    assert torch.equal(out[~hole.expand_as(out)], pred[~hole.expand_as(pred)])  # known pixels as predicted


@pytest.mark.parametrize("method", ["pconv", "glcic"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), "4"])
def test_bad_border_blend_is_a_clear_error(method, bad):
    img, hole = torch.rand(3, 16, 16), torch.zeros(16, 16, dtype=torch.bool)
    hole[4:8, 4:8] = True
    with pytest.raises(ValueError, match="border_blend must be a finite number of pixels >= 0"):
        fastinpaint.inpaint(img, hole, method=method, border_blend=bad)


@pytest.mark.parametrize("kw,match", [({"blend_floor": 1.5}, "blend_floor must be a number in"),
                                      ({"net_size": 8}, "net_size must be 0"), ({"net_size": 256.0}, "net_size must be 0")])
def test_bad_pconv_options_are_clear_errors(kw, match):
    img, hole = torch.rand(3, 16, 16), torch.zeros(16, 16, dtype=torch.bool)
    hole[4:8, 4:8] = True
    with pytest.raises(ValueError, match=match):
        fastinpaint.inpaint(img, hole, method="pconv", **kw)


def _held_out(shared_data, kinds):
    for name in HELD_OUT:
        img = np.asarray(Image.open(shared_data / "photos" / f"{name}.png").convert("RGB"))
        for kind in kinds:
            yield img, np.asarray(Image.open(shared_data / "masks" / f"{name}__{kind}.png")) > 0


def test_bundled_glcic_colour_cast_on_held_out_photos(shared_data):
    # Issue 18's figure: the mean fill colour minus the ground truth's (grey levels, R / G / B),
    # averaged over the held-out photos' 28 pairs at 512 px (fastinpaint eval's dR dG dB). It was
    # (-4.1, 0.0, +2.6) with the offset measured on the network's untrained known-pixel outputs,
    # (-1.5, +1.4, +2.6) measured on the hole's first rings, and is (-1.9, +0.6, +0.6) with the
    # network fine-tuned on a push-pull prefill: within the 2 levels in every channel
    # (docs/model_card_glcic.md).
    from fastinpaint.metrics import fill_mean_offset

    kinds = ("irr_01_10", "irr_10_20", "irr_20_30", "irr_30_40", "irr_40_50", "irr_50_60", "center25")
    cast = [255 * fill_mean_offset(fastinpaint.inpaint(np.where(mask[..., None], 0, img), mask, method="glcic"),
                                   img, mask) for img, mask in _held_out(shared_data, kinds)]
    mean_cast = np.mean(cast, 0)
    assert np.abs(mean_cast).max() <= 2.0, mean_cast
    raw = []
    for img, mask in _held_out(shared_data, ("center25",)):
        out = fastinpaint.inpaint(img, mask, method="glcic", border_blend=0, correct_offset=False, net_size=0)
        raw.append(255 * fill_mean_offset(out, img, mask))
    # the raw network at 512 px is far off on centre squares (it was trained on 128-px crops):
    # what the corrections remove, so the bound above says something
    assert np.abs(np.mean(raw, 0)).max() > 10, np.mean(raw, 0)


@pytest.mark.parametrize("method,net", [(inpaint_pconv, _tiny_pconv), (inpaint_glcic, lambda: GLCIC(width=4).eval())])
def test_corrections_default_on_for_the_bundled_weights_only(method, net):
    from fastinpaint.weights import bundled_weights

    img = torch.rand(3, 40, 48)
    hole = torch.zeros(40, 48, dtype=torch.bool)
    hole[10:30, 12:40] = True
    off = {"border_blend": 0.0, "blend_floor": 0.0, "net_size": 0}
    if method is inpaint_glcic:
        off["correct_offset"] = False
    network = net()
    assert torch.equal(method(img, hole, weights=network), method(img, hole, weights=network, **off))
    name = "pconv" if method is inpaint_pconv else "glcic"
    bundled = method(img, hole)
    assert torch.equal(method(img, hole, weights=str(bundled_weights(name))), bundled)
    assert not torch.equal(method(img, hole, **off), bundled)
