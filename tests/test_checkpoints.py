"""Checkpoints: the reimplementation's format (converted exactly) and fastinpaint's own."""

import os
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastinpaint.models import load_pconv_checkpoint
from fastinpaint.nn import PConvUNet


# ------------------------------------------------------------------------------------------------
# A pure-PyTorch model with the naoto0804 reimplementation's math and key names: the mask is
# convolved with an all-ones kernel (full channel count), the image convolution is divided by
# that valid count (no sum(1) factor), holes are zeroed; masks are concatenated at full width.
# ------------------------------------------------------------------------------------------------
class ReimplPartialConv(nn.Module):
    def __init__(self, cin, cout, k, s, p, bias):
        super().__init__()
        self.input_conv = nn.Conv2d(cin, cout, k, s, p, bias=bias)
        self.mask_conv = nn.Conv2d(cin, cout, k, s, p, bias=False)
        nn.init.constant_(self.mask_conv.weight, 1.0)
        self.mask_conv.weight.requires_grad_(False)

    def forward(self, x, mask):
        out = self.input_conv(x * mask)
        b = self.input_conv.bias.view(1, -1, 1, 1) if self.input_conv.bias is not None else torch.zeros_like(out)
        with torch.no_grad():
            count = self.mask_conv(mask)
        holes = count == 0
        out = ((out - b) / count.masked_fill(holes, 1.0) + b).masked_fill(holes, 0.0)
        return out, torch.ones_like(out).masked_fill(holes, 0.0)


class ReimplBlock(nn.Module):
    def __init__(self, cin, cout, k, s, bn=True, activ="relu", bias=False):
        super().__init__()
        self.conv = ReimplPartialConv(cin, cout, k, s, k // 2, bias)
        if bn:
            self.bn = nn.BatchNorm2d(cout)
        self.activ = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), None: None}[activ]

    def forward(self, x, mask):
        x, mask = self.conv(x, mask)
        if hasattr(self, "bn"):
            x = self.bn(x)
        if self.activ is not None:
            x = self.activ(x)
        return x, mask


class ReimplUNet(nn.Module):
    def __init__(self, layers=7, cin=3, base=64, cap=512):
        super().__init__()
        self.layers = layers
        w = [cin] + [min(base * 2 ** i, cap) for i in range(layers)]
        kernels = [7, 5, 5] + [3] * (layers - 3)
        for i in range(1, layers + 1):
            setattr(self, f"enc_{i}", ReimplBlock(w[i - 1], w[i], kernels[i - 1], 2, bn=i > 1))
        for i in range(layers, 0, -1):
            if i == 1:
                setattr(self, "dec_1", ReimplBlock(w[1] + cin, cin, 3, 1, bn=False, activ=None, bias=True))
            else:
                setattr(self, f"dec_{i}", ReimplBlock(w[i] + w[i - 1], w[i - 1], 3, 1, activ="leaky"))

    def forward(self, x, mask):
        hs, ms = [x], [mask]
        for i in range(1, self.layers + 1):
            x, mask = getattr(self, f"enc_{i}")(x, mask)
            hs.append(x)
            ms.append(mask)
        for i in range(self.layers, 0, -1):
            x = torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), hs[i - 1]], 1)
            mask = torch.cat([F.interpolate(mask, scale_factor=2, mode="nearest"), ms[i - 1]], 1)
            x, mask = getattr(self, f"dec_{i}")(x, mask)
        return x


def _randomize(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "mask_conv" in name:
                continue
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 1 else 1.0) + (1.0 if name.endswith("bn.weight") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def _masks(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(n, 1, h, w)
    for i in range(n):
        for _ in range(3):
            y, x = torch.randint(0, h - 8, (2,), generator=g).tolist()
            hh, ww = torch.randint(4, h // 2, (2,), generator=g).tolist()
            valid[i, :, y:y + hh, x:x + ww] = 0
        valid[i] *= (torch.rand(1, h, w, generator=g) > 0.1).float()
    return valid


def _save_reimpl(model, path, drop=(), extra=None, with_optimizer=True):
    state = {k: v for k, v in model.state_dict().items() if not any(d in k for d in drop)}
    if extra:
        state.update(extra)
    ckpt = {"n_iter": 1234, "model": state}
    if with_optimizer:
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        ckpt["optimizer"] = opt.state_dict()
    torch.save(ckpt, path)


@pytest.mark.parametrize("layers,size", [(7, 128), (8, 256)])
def test_reimplementation_checkpoint_gives_same_outputs(tmp_path, layers, size):
    torch.manual_seed(0)
    ref = ReimplUNet(layers=layers, base=8, cap=32)
    _randomize(ref)
    path = tmp_path / "reimpl.pth"
    _save_reimpl(ref, path, drop=("num_batches_tracked",))  # tolerated when missing
    net = load_pconv_checkpoint(path)
    assert not net.training and net.layers == layers and net.widths[1:] == [min(8 * 2 ** i, 32) for i in range(layers)]

    x = torch.randn(3, 3, size, size)
    valid = _masks(3, size, size)
    ref.eval()
    with torch.no_grad():
        expected = ref(x, valid.expand(-1, 3, -1, -1))
        ours = net(x, valid)
        ours_per_channel = net(x, valid.expand(-1, 3, -1, -1).contiguous())
    assert (ours - expected).abs().max().item() < 1e-4
    assert (ours_per_channel - expected).abs().max().item() < 1e-4


def test_reimplementation_checkpoint_per_channel_masks_and_train_mode(tmp_path):
    torch.manual_seed(1)
    ref = ReimplUNet(layers=7, base=8, cap=16)
    _randomize(ref, seed=3)
    path = tmp_path / "reimpl.pth"
    _save_reimpl(ref, path)
    net = load_pconv_checkpoint(path)
    x = torch.randn(2, 3, 128, 128)
    valid = (torch.rand(2, 3, 128, 128) > 0.3).float()  # channels differ
    ref.train()
    net.train()
    with torch.no_grad():
        diff = (net(x, valid) - ref(x, valid)).abs().max().item()
    assert diff < 1e-4


def test_full_size_reimplementation_keys_load():
    ref = ReimplUNet(layers=7)
    assert sum(p.numel() for p in ref.parameters() if p.requires_grad) == 25779796
    net = PConvUNet(layers=7)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 25779796
    from fastinpaint.models import convert_reimplementation_state_dict

    state = convert_reimplementation_state_dict(ref.state_dict(), net)
    w = ref.state_dict()["dec_4.conv.input_conv.weight"]
    assert torch.allclose(state["dec_4.conv.weight"], w / (768 * 9))
    net.load_state_dict(state)


def test_reference_model_has_the_published_keys_and_shapes():
    """The test's stand-in for the reimplementation has exactly its state-dict keys and shapes."""
    listing = os.path.join(os.path.dirname(__file__), "data", "naoto_pconvunet_state_dict_keys.txt")
    expected = {}
    for line in open(listing):
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1].startswith("["):
            expected[parts[0]] = [int(v) for v in parts[1].strip()[1:-1].split(",") if v.strip()]
    got = {k: list(v.shape) for k, v in ReimplUNet(layers=7).state_dict().items()}
    assert got == expected


def test_unknown_missing_and_bad_keys_are_named(tmp_path):
    ref = ReimplUNet(layers=7, base=4, cap=8)
    path = tmp_path / "bad.pth"
    _save_reimpl(ref, path, drop=("dec_3.bn.running_var",), extra={"enc_2.attention.weight": torch.ones(1)},
                 with_optimizer=False)
    with pytest.raises(ValueError) as e:
        load_pconv_checkpoint(path)
    assert "enc_2.attention.weight" in str(e.value) and "dec_3.bn.running_var" in str(e.value)

    state = ref.state_dict()
    state["enc_3.conv.mask_conv.weight"] = state["enc_3.conv.mask_conv.weight"] * 2
    torch.save({"n_iter": 0, "model": state}, path)
    with pytest.raises(ValueError, match="enc_3.conv.mask_conv.weight is not all ones"):
        load_pconv_checkpoint(path)


def test_bare_and_dataparallel_state_dicts(tmp_path):
    ref = ReimplUNet(layers=7, base=4, cap=8)
    _randomize(ref)
    path = tmp_path / "bare.pth"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, path)
    net = load_pconv_checkpoint(path)
    x, valid = torch.randn(1, 3, 128, 128), _masks(1, 128, 128)
    with torch.no_grad():
        assert (net(x, valid) - ref.eval()(x, valid.expand(-1, 3, -1, -1))).abs().max() < 1e-4


def test_own_format_roundtrip_and_header(tmp_path):
    net = PConvUNet(layers=7, base_channels=4, max_channels=8, normalization={"mean": [0.5] * 3, "std": [0.25] * 3})
    _randomize(net, seed=5)
    net.freeze_encoder_bn()
    path = tmp_path / "own.pt"
    net.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "fastinpaint.PConvUNet" and raw["version"] == 1
    assert raw["architecture"] == {"layers": 7, "in_channels": 3, "out_channels": 3, "base_channels": 4, "max_channels": 8}
    assert raw["renormalization"] == "paper" and raw["normalization"]["std"] == [0.25] * 3

    for loaded in (PConvUNet.load(path), load_pconv_checkpoint(path)):
        assert not loaded.training and loaded.encoder_bn_frozen
        assert loaded.normalization == {"mean": [0.5] * 3, "std": [0.25] * 3}
        x, valid = torch.randn(2, 3, 100, 90), _masks(2, 100, 90)
        with torch.no_grad():
            assert torch.equal(loaded(x, valid), net.eval()(x, valid))


def test_wrong_kind_of_file_fails_clearly(tmp_path):
    ref = ReimplUNet(layers=7, base=4, cap=8)
    reimpl = tmp_path / "reimpl.pth"
    _save_reimpl(ref, reimpl, with_optimizer=False)
    with pytest.raises(ValueError, match="load_pconv_checkpoint"):
        PConvUNet.load(reimpl)

    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a PConvUNet checkpoint"):
        load_pconv_checkpoint(other)
    with pytest.raises(ValueError, match="not a fastinpaint PConvUNet checkpoint"):
        PConvUNet.load(other)

    tagged = tmp_path / "tagged.pt"
    torch.save({"format": "fastinpaint.GLCIC", "version": 1}, tagged)
    with pytest.raises(ValueError, match="fastinpaint.GLCIC"):
        load_pconv_checkpoint(tagged)
    # another network's file: its format named, without "no format=... header" before it
    with pytest.raises(ValueError, match=r"tagged.pt' is not a fastinpaint PConvUNet checkpoint: its format is "
                                         r"'fastinpaint.GLCIC', not 'fastinpaint.PConvUNet'$"):
        PConvUNet.load(tagged)

    newer = tmp_path / "newer.pt"
    ck = PConvUNet(layers=4, base_channels=2, max_channels=2).checkpoint()
    ck["version"] = 99
    torch.save(ck, newer)
    with pytest.raises(ValueError, match="version 99"):
        PConvUNet.load(newer)

    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a fastinpaint weights file"):
        load_pconv_checkpoint(text)
    with pytest.raises(FileNotFoundError):
        load_pconv_checkpoint(tmp_path / "absent.pth")

    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="holds a Tensor"):
        load_pconv_checkpoint(tensor_file)


def test_shape_mismatch_is_named(tmp_path):
    ref = ReimplUNet(layers=7, base=4, cap=8)
    state = ref.state_dict()
    state["dec_2.conv.input_conv.weight"] = torch.zeros(4, 11, 3, 3)
    path = tmp_path / "shape.pth"
    torch.save({"n_iter": 0, "model": state}, path)
    with pytest.raises(ValueError, match=r"dec_2.conv.input_conv.weight has shape \(4, 11, 3, 3\)"):
        load_pconv_checkpoint(path)


def test_inpaint_pconv_with_reimplementation_file(tmp_path):
    from fastinpaint.methods.pconv import inpaint_pconv

    ref = ReimplUNet(layers=7, base=4, cap=8)
    _randomize(ref, seed=2)
    path = tmp_path / "published.pth"
    _save_reimpl(ref, path)
    image = torch.rand(2, 3, 130, 200)
    hole = torch.zeros(2, 1, 130, 200)
    hole[0, :, 10:60, 20:90] = 1
    hole[1, :, 70:120, 100:190] = 1
    out = inpaint_pconv(image, hole, weights=path)
    assert out.shape == image.shape
    assert torch.equal(out[hole.expand_as(out) == 0], image[hole.expand_as(image) == 0])
    # holes get the reimplementation's prediction, un-normalised from ImageNet statistics
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    valid = 1 - hole
    padded = F.pad((image - mean) / std, (0, 56, 0, 126)), F.pad(valid, (0, 56, 0, 126)).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = (ref.eval()(*padded)[..., :130, :200] * std + mean).clamp(0, 1)
    holes = hole.expand_as(out) == 1
    assert (out[holes] - expected[holes]).abs().max() < 1e-4


def test_network_of_names_a_training_checkpoint_a_folder_and_a_text_file(tmp_path):
    """What the serve, inpaint and eval commands report for --weights (network_of and the loaders):
    a trainer checkpoint points to its run's model.pt; a text file is one line, without torch's
    advice to load it unsafely."""
    from fastinpaint.nn._checkpoint import network_of

    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.pt"
    torch.save({"format": "fastinpaint.trainer/1"}, last)
    PConvUNet(layers=4, base_channels=2, max_channels=2).save(tmp_path / "model.pt")
    for fmt in ("fastinpaint.trainer/1", "fastinpaint.glcic-trainer/2"):
        torch.save({"format": fmt}, last)
        for load in (network_of, load_pconv_checkpoint, PConvUNet.load):
            with pytest.raises(ValueError, match=r"training checkpoint .*exported, " + re.escape(str(tmp_path / "model.pt"))):
                load(last)
    with pytest.raises(ValueError, match=r"is a folder, not a weights file; it holds a run's exported weights"):
        network_of(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"is not a fastinpaint weights file \(not a readable PyTorch checkpoint\)$"):
        network_of(text)
