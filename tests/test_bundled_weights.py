"""The weights that ship in the package: size, format, and that they actually inpaint.

The quality checks use the held-out development photos (never seen in training, see
docs/model_card_pconv.md) with the team's masks, and compare against the mean-colour fill and
OpenCV's Telea, so a corrupted, mis-normalised or untrained file fails them.
"""

import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

import fastinpaint
from fastinpaint import cli
from fastinpaint.metrics import psnr
from fastinpaint.models import load_pconv_checkpoint
from fastinpaint.nn import GLCIC, PConvUNet
from fastinpaint.weights import BUNDLED, bundled_weights

HELD_OUT = ("astronaut", "cold_pier", "dahlia", "moss")


@pytest.mark.parametrize("method", sorted(BUNDLED))
def test_bundled_file_is_compact_and_safe_to_load(method):
    path = bundled_weights(method)
    assert path.stat().st_size <= 10 * 2 ** 20
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # plain types and tensors only
    net_cls = PConvUNet if method == "pconv" else GLCIC
    params = {name for name, _ in net_cls.from_checkpoint(ckpt).named_parameters()}
    dtypes = {v.dtype for k, v in ckpt["state_dict"].items() if k in params}
    assert dtypes == {torch.float16}


def test_missing_bundled_file_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(BUNDLED, "pconv", "no_such_file.pt")
    with pytest.raises(FileNotFoundError, match="missing from this installation"):
        fastinpaint.inpaint(np.zeros((8, 8, 3), np.uint8), np.eye(8, dtype=bool), method="pconv")
    with pytest.raises(ValueError, match="no bundled weights"):
        bundled_weights("patchmatch")


def _held_out_pairs(shared_data, buckets=("irr_01_10", "irr_10_20", "irr_20_30")):
    for name in HELD_OUT:
        img = np.asarray(Image.open(shared_data / "photos" / f"{name}.png").convert("RGB"))
        for bucket in buckets:
            mask = np.asarray(Image.open(shared_data / "masks" / f"{name}__{bucket}.png")) > 0
            yield name, bucket, img, mask


def _mean_fill(img, mask):
    out = img.copy()
    out[mask] = img[~mask].mean(0).round().astype(np.uint8)
    return out


@pytest.mark.parametrize("method", sorted(BUNDLED))
def test_bundled_networks_beat_the_mean_fill_on_held_out_photos(shared_data, method):
    ours, mean = [], []
    for _, _, img, mask in _held_out_pairs(shared_data):
        out = fastinpaint.inpaint(img, mask, method=method)  # no weights: the bundled ones
        assert out.dtype == np.uint8 and np.array_equal(out[~mask], img[~mask])
        ours.append(psnr(out, img))
        mean.append(psnr(_mean_fill(img, mask), img))
    assert np.mean(ours) > np.mean(mean) + 3.0, (np.mean(ours), np.mean(mean))


def test_bundled_pconv_beats_telea_r5_on_small_held_out_holes(shared_data):
    cv2 = pytest.importorskip("cv2")
    ours, telea = [], []
    for _, _, img, mask in _held_out_pairs(shared_data):
        ours.append(psnr(fastinpaint.inpaint(img, mask, method="pconv"), img))
        ref = cv2.inpaint(img, mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        telea.append(psnr(ref, img))
    # measured (docs/model_card_pconv.md): 30.12 vs 29.60 dB; the raw network (no border blend)
    # was 0.5 dB below Telea here, so this guards the correction
    assert np.mean(ours) >= np.mean(telea) + 0.25, (np.mean(ours), np.mean(telea))


def test_cli_uses_the_bundled_weights(tmp_path, shared_data):
    name, _, img, mask = next(_held_out_pairs(shared_data, ("irr_10_20",)))
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    for method in sorted(BUNDLED):
        out = tmp_path / f"{method}.png"
        assert cli.main(["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o", str(out),
                         "--method", method]) == 0
        expected = fastinpaint.inpaint(img, mask, method=method, weights=str(bundled_weights(method)))
        assert np.array_equal(np.asarray(Image.open(out)), expected)


@pytest.mark.parametrize("net_cls,kwargs", [(PConvUNet, dict(layers=4, base_channels=16, max_channels=32)),
                                            (GLCIC, dict(width=8))])
def test_half_checkpoint_round_trip(tmp_path, net_cls, kwargs):
    torch.manual_seed(0)
    net = net_cls(**kwargs)
    for m in net.modules():  # non-trivial BatchNorm statistics, some below float16's normal range
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(1e-6, 1e-5)
    net.save(tmp_path / "full.pt")
    net.save(tmp_path / "half.pt", half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.65 * (tmp_path / "full.pt").stat().st_size
    loaded = net_cls.load(tmp_path / "half.pt")
    params = dict(net.named_parameters())
    for name, value in loaded.state_dict().items():
        want = net.state_dict()[name]
        assert value.dtype == want.dtype
        if name in params:  # parameters: rounded to float16 once
            assert torch.equal(value, want.half().to(want.dtype))
        else:  # buffers (BatchNorm statistics): exact
            assert torch.equal(value, want)
