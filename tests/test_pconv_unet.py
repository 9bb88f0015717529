"""PConvUNet: layout, channel-group masks, padding, fine-tune mode, gradients, inference API."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastinpaint.losses import InpaintingLoss
from fastinpaint.methods.pconv import inpaint_pconv
from fastinpaint.nn import PConvUNet


def small_net(layers=7, seed=0, **kw):
    torch.manual_seed(seed)
    return PConvUNet(layers=layers, base_channels=kw.pop("base_channels", 4), max_channels=kw.pop("max_channels", 8), **kw)


def hole_mask(n, h, w, seed=0):
    """Non-zero = hole (image-level convention), different per image."""
    g = torch.Generator().manual_seed(seed)
    hole = torch.zeros(n, 1, h, w)
    for i in range(n):
        y, x = torch.randint(0, h // 2, (2,), generator=g).tolist()
        hole[i, :, y:y + h // 3, x // 2:x // 2 + w // 3 + i] = 1
    return hole


def test_published_layout():
    net = PConvUNet(layers=7)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 25779796
    assert net.enc_1.bn is None and net.dec_1.bn is None and net.dec_1.conv.bias is not None
    assert all(getattr(net, f"enc_{i}").conv.bias is None for i in range(1, 8))
    assert [getattr(net, f"enc_{i}").conv.kernel_size[0] for i in range(1, 8)] == [7, 5, 5, 3, 3, 3, 3]
    assert [getattr(net, f"dec_{i}").conv.in_channels for i in range(1, 8)] == [67, 192, 384, 768, 1024, 1024, 1024]
    assert isinstance(net.enc_3.act, nn.ReLU)
    assert isinstance(net.dec_3.act, nn.LeakyReLU) and net.dec_3.act.negative_slope == 0.2
    assert net.dec_1.act is None
    net8 = PConvUNet(layers=8)
    assert net8.enc_8.conv.out_channels == 512 and net8.dec_8.conv.in_channels == 1024 and net8.size_multiple == 256


def test_decoder_uses_two_single_channel_masks():
    net = small_net().eval()
    seen = {}

    def record(name):
        def hook(module, args):
            x, mask, groups = args[0], args[1], (args[2] if len(args) > 2 else None)
            seen[name] = (x.shape[1], mask.shape[1], groups)
        return hook

    for i in range(1, 8):
        for kind in ("enc", "dec"):
            getattr(net, f"{kind}_{i}").conv.register_forward_pre_hook(record(f"{kind}_{i}"))
    net(torch.randn(1, 3, 128, 128), torch.ones(1, 1, 128, 128))
    for i in range(1, 8):
        assert seen[f"enc_{i}"][1] == 1
    for i in range(2, 8):
        c_in, mask_c, groups = seen[f"dec_{i}"]
        assert mask_c == 2 and groups == [net.widths[i], net.widths[i - 1]] and sum(groups) == c_in
    assert seen["dec_1"][1:] == (2, [net.widths[1], 3])


@pytest.mark.parametrize("h,w", [(341, 512), (250, 250)])
def test_any_size_keeps_size_and_known_pixels(h, w):
    net = small_net()
    image = torch.rand(2, 3, h, w)
    hole = hole_mask(2, h, w)
    out = inpaint_pconv(image, hole, weights=net)
    assert out.shape == image.shape and out.dtype == image.dtype
    known = hole.expand_as(image) == 0
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])
    assert out.min() >= 0 and out.max() <= 1
    raw = net.eval()(image, 1 - hole)
    assert raw.shape == image.shape


def test_padding_is_hole_and_cropped():
    """A non-multiple size runs as the hole-padded multiple, cropped back."""
    net = small_net().eval()
    x, valid = torch.randn(1, 3, 100, 130), 1 - hole_mask(1, 100, 130)
    with torch.no_grad():
        out = net(x, valid)
        padded = net(F.pad(x, (0, 126, 0, 28)), F.pad(valid, (0, 126, 0, 28)))
    assert torch.allclose(out, padded[..., :100, :130], atol=1e-6)


def test_per_image_masks_in_a_batch():
    net = small_net().eval()
    x, valid = torch.randn(3, 3, 128, 128), 1 - hole_mask(3, 128, 128)
    with torch.no_grad():
        batch = net(x, valid)
        single = torch.cat([net(x[i:i + 1], valid[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)


def test_freeze_encoder_bn():
    net = small_net().freeze_encoder_bn().train()
    assert all(not getattr(net, f"enc_{i}").bn.training for i in range(2, 8))
    assert all(getattr(net, f"dec_{i}").bn.training for i in range(2, 8))
    before_enc = net.enc_3.bn.running_mean.clone()
    before_dec = net.dec_3.bn.running_mean.clone()
    net(torch.randn(2, 3, 128, 128) + 3, torch.ones(2, 1, 128, 128))
    assert torch.equal(net.enc_3.bn.running_mean, before_enc)
    assert not torch.equal(net.dec_3.bn.running_mean, before_dec)
    net.freeze_encoder_bn(False)
    assert net.enc_3.bn.training


class TinyExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        a = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return [a, F.max_pool2d(F.relu(self.conv2(a)), 2)]


def test_gradients_reach_every_parameter():
    net = small_net(max_channels=8).train()
    loss_fn = InpaintingLoss(extractor=TinyExtractor())
    x = torch.randn(2, 3, 128, 128)
    valid = 1 - hole_mask(2, 128, 128)
    terms = loss_fn(net(x, valid), x, valid)
    terms["total"].backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bad_inputs_raise_clear_errors():
    net = small_net()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="does not match image shape"):
        net(x, torch.ones(1, 1, 64, 60))
    with pytest.raises(ValueError, match="mask has 2 channels"):
        net(x, torch.ones(1, 2, 64, 64))
    with pytest.raises(ValueError, match="image has 4 channels"):
        net(torch.randn(1, 4, 64, 64), torch.ones(1, 1, 64, 64))
    with pytest.raises(ValueError, match="layers must be an int >= 4"):
        PConvUNet(layers=2)

    img = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="differs from image size"):
        inpaint_pconv(img, torch.zeros(1, 1, 64, 63), weights=net)
    with pytest.raises(ValueError, match="must have 1 channel"):
        inpaint_pconv(img, torch.zeros(1, 3, 64, 64), weights=net)
    with pytest.raises(ValueError, match="mask batch 2 differs"):
        inpaint_pconv(img, torch.zeros(2, 1, 64, 64), weights=net)
    with pytest.raises(ValueError, match="image has 2 channels, the network takes 3"):
        inpaint_pconv(torch.rand(1, 2, 64, 64), torch.zeros(1, 1, 64, 64), weights=net)
    with pytest.raises(ValueError, match="half=True needs a CUDA device"):
        inpaint_pconv(img, torch.zeros(1, 1, 64, 64), weights=net, half=True)
    with pytest.raises(TypeError, match="float tensor"):
        inpaint_pconv((img * 255).to(torch.uint8), torch.zeros(1, 1, 64, 64), weights=net)
    with pytest.raises(TypeError, match="checkpoint path or a PConvUNet"):
        inpaint_pconv(img, torch.zeros(1, 1, 64, 64), weights=3)


def test_inpaint_pconv_from_file_single_image_and_mode(tmp_path):
    net = small_net().train()
    path = tmp_path / "net.pt"
    net.save(path)
    img = torch.rand(3, 90, 70)
    hole = torch.zeros(90, 70, dtype=torch.bool)
    hole[20:50, 10:40] = True
    from_file = inpaint_pconv(img, hole, weights=str(path))
    from_model = inpaint_pconv(img, hole, weights=net)
    assert net.training  # mode restored
    assert from_file.shape == img.shape and torch.allclose(from_file, from_model, atol=1e-6)
    assert torch.equal(from_file[:, ~hole], img[:, ~hole])
    assert not from_file.is_inference()

    # everything a hole still gives finite values in range
    out = inpaint_pconv(img, torch.ones(90, 70), weights=net)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_precision_on_cuda():
    net = small_net()
    img = torch.rand(2, 3, 200, 300, device="cuda")
    hole = hole_mask(2, 200, 300).cuda()
    full = inpaint_pconv(img, hole, weights=net, device="cuda")
    half = inpaint_pconv(img, hole, weights=net, device="cuda", half=True)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - full).abs().max() < 0.05
