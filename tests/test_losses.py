"""InpaintingLoss against values computed by hand on tiny tensors; VGG16 extractor loading."""

import pytest
import torch
from torch import nn

from fastinpaint.losses import (DEFAULT_LOSS_WEIGHTS, InpaintingLoss, VGG16Features, gram_matrix,
                                total_variation)


class Identity(nn.Module):
    """Feature extractor returning the image itself, so every term is computable by hand."""

    def forward(self, x):
        return [x]


def tiny():
    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    gt = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(1, 1, 2, 2)  # hole at (0, 1)
    return out, gt, mask


def test_terms_by_hand():
    out, gt, mask = tiny()
    terms = InpaintingLoss(extractor=Identity(), tv_region="image")(out, gt, mask)
    # valid: |1|+|3|+|4| over 4 elements; hole: |2| over 4
    assert terms["valid"].item() == pytest.approx(2.0)
    assert terms["hole"].item() == pytest.approx(0.5)
    # I_comp = [[0, 2], [0, 0]]; perceptual = mean|out| + mean|comp| = 2.5 + 0.5
    assert terms["perceptual"].item() == pytest.approx(3.0)
    # Gram (1 channel) = sum(x^2) / (C*H*W): out 30/4, comp 4/4, gt 0
    assert terms["style_out"].item() == pytest.approx(7.5)
    assert terms["style_comp"].item() == pytest.approx(1.0)
    # TV over the whole composite: mean |dx| = (2 + 0)/2, mean |dy| = (0 + 2)/2
    assert terms["tv"].item() == pytest.approx(2.0)
    expected = 1 * 2.0 + 6 * 0.5 + 0.05 * 3.0 + 120 * (7.5 + 1.0) + 0.1 * 2.0
    assert terms["total"].item() == pytest.approx(expected)
    assert set(terms) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"}


def test_tv_over_the_dilated_hole_by_hand():
    gt = torch.arange(16.0).view(1, 1, 4, 4)
    out = torch.full((1, 1, 4, 4), 100.0)
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 0, 0] = 0  # hole (0,0); its 1-pixel dilation is the 2x2 corner
    paper = InpaintingLoss(extractor=Identity(), tv_region="hole")(out, gt, mask)["tv"]
    # pairs inside the corner: |1-100| + |5-4| (horizontal) + |4-100| + |5-1| (vertical) = 200, / 16 elements
    assert paper.item() == pytest.approx(200 / 16)
    whole = InpaintingLoss(extractor=Identity(), tv_region="image")(out, gt, mask)["tv"]
    # dx: 99 + 1 + 1 + 3 rows * 3; dy: 96 + 4 + 4 + 3 columns * 12; each / 12 pairs
    assert whole.item() == pytest.approx((99 + 2 + 9) / 12 + (96 + 8 + 36) / 12)
    region = torch.zeros(1, 1, 4, 4)
    region[..., :2, :2] = 1
    assert total_variation(torch.where(mask.bool(), gt, out), region).item() == pytest.approx(200 / 16)


def test_gram_matrix_values_and_float32_under_autocast():
    f = torch.tensor([[1.0, 2.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # 2 channels, 2 pixels
    g = gram_matrix(f)
    assert torch.allclose(g, torch.tensor([[[5.0, 2.0], [2.0, 1.0]]]) / 4)
    x = torch.randn(2, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g_auto = gram_matrix(x)  # autocast would run bmm in bfloat16
        g_half_input = gram_matrix(x.bfloat16())
        terms = InpaintingLoss(extractor=nn.Sequential(nn.Conv2d(3, 8, 3), _AsList()))(
            torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    assert g_auto.dtype == torch.float32 and g_half_input.dtype == torch.float32
    ref = torch.einsum("ncp,ndp->ncd", x.double().flatten(2), x.double().flatten(2)) / (8 * 256)
    assert torch.allclose(g_auto.double(), ref, atol=1e-5)
    assert terms["style_out"].dtype == torch.float32 and terms["total"].dtype == torch.float32


class _AsList(nn.Module):
    def forward(self, x):
        return [x]


def test_weights_override_and_gradient():
    out, gt, mask = tiny()
    out.requires_grad_(True)
    loss = InpaintingLoss(extractor=Identity(), weights={"style": 0.0, "tv": 0.0})
    terms = loss(out, gt, mask)
    assert terms["total"].item() == pytest.approx(2.0 + 6 * 0.5 + 0.05 * 3.0)
    terms["total"].backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert DEFAULT_LOSS_WEIGHTS == {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style": 120.0, "tv": 0.1}


def test_bad_arguments():
    with pytest.raises(ValueError, match="tv_region"):
        InpaintingLoss(extractor=Identity(), tv_region="border")
    with pytest.raises(ValueError, match="unknown loss weights"):
        InpaintingLoss(extractor=Identity(), weights={"adversarial": 1.0})
    loss = InpaintingLoss(extractor=Identity())
    with pytest.raises(ValueError, match="mask shape"):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), torch.ones(1, 1, 4, 4))


def test_vgg16_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth") as e:
        InpaintingLoss()
    assert str(tmp_path) in str(e.value) and "TORCH_HOME" in str(e.value)


def test_vgg16_loads_torchvision_layout_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    donor = VGG16Features(pretrained=False)
    state = dict(donor.state_dict())
    # a torchvision file also holds the deeper layers and the classifier
    state["features.28.weight"] = torch.zeros(512, 512, 3, 3)
    state["classifier.0.weight"] = torch.zeros(8, 8)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth")

    vgg = VGG16Features()
    assert torch.equal(vgg.features[14].weight, donor.features[14].weight)
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    feats = vgg(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]
    assert [tuple(f.shape) for f in vgg(torch.randn(1, 1, 32, 32))][0] == (1, 64, 16, 16)

    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not torchvision's VGG16"):
        VGG16Features(weights=tmp_path / "bad.pth")
