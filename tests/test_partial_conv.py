"""fastinpaint.ops.partial_conv2d and fastinpaint.nn.PartialConv2d against an independent
pure-PyTorch reference of the paper's per-channel definition (with the second, full convolution
for the mask sums that the fused op avoids)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinpaint
from fastinpaint.nn import PartialConv2d
from fastinpaint.ops import partial_conv2d
from conftest import requires_emulation


# ------------------------------------------------------------------------------------------------
# reference
# ------------------------------------------------------------------------------------------------
def reference_partial_conv2d(x, mask_full, w, b, stride, padding, dilation, groups):
    """out = W^T(X⊙M)·sum(1)/sum(M) + b where sum(M) > 0, else 0; per-channel mask (N, C_in, H, W)."""
    conv = F.conv2d(x * mask_full, w, None, stride, padding, dilation, groups)
    valid_count = F.conv2d(mask_full, torch.ones_like(w), None, stride, padding, dilation, groups)
    window = w.shape[1] * w.shape[2] * w.shape[3]
    has_valid = valid_count > 0
    ratio = torch.where(has_valid, window / valid_count.clamp_min(1e-30), torch.zeros_like(valid_count))
    out = conv * ratio
    if b is not None:
        out = out + b.view(1, -1, 1, 1)
    return torch.where(has_valid, out, torch.zeros_like(out)), has_valid.to(x.dtype)


def expand_mask(mask, counts):
    """(N, S, H, W) segment mask -> (N, C_in, H, W) per-channel mask."""
    return torch.cat([mask[:, s : s + 1].expand(-1, c, -1, -1) for s, c in enumerate(counts)], dim=1)


def expand_new_mask(new_mask, c_out):
    n, g, oh, ow = new_mask.shape
    return new_mask.unsqueeze(2).expand(n, g, c_out // g, oh, ow).reshape(n, c_out, oh, ow)


# ------------------------------------------------------------------------------------------------
# random cases
# ------------------------------------------------------------------------------------------------
MASK_KINDS = ["single", "per_channel", "groups", "zeros", "ones", "bool"]
LAYOUTS = ["contiguous", "channels_last", "noncontiguous"]


def make_case(seed: int, dtype=torch.float64, device="cpu", mask_kind=None, layout=None):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    groups = rng.choice([1, 1, 2, 3])
    c_in = groups * rng.randint(1, 4)
    c_out = groups * rng.randint(1, 3)
    k = (rng.randint(1, 7), rng.randint(1, 7))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 2), rng.randint(1, 2))
    padding = (rng.randint(0, 3), rng.randint(0, 3))
    n = rng.choice([1, 3])
    h = max(rng.randint(5, 20), dilation[0] * (k[0] - 1) + 1)
    w = max(rng.randint(5, 20), dilation[1] * (k[1] - 1) + 1)
    mask_kind = mask_kind or rng.choice(MASK_KINDS)
    layout = layout or rng.choice(LAYOUTS)

    x = torch.randn(n, c_in, h, w, generator=g, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "noncontiguous":
        x = torch.randn(n, c_in, h, 2 * w, generator=g, dtype=dtype)[..., ::2]
    weight = torch.randn(c_out, c_in // groups, *k, generator=g, dtype=dtype)
    bias = torch.randn(c_out, generator=g, dtype=dtype) if rng.random() < 0.7 else None

    rand_mask = lambda s: (torch.rand(n, s, h, w, generator=g) > rng.uniform(0.2, 0.8)).to(dtype)  # noqa: E731
    if mask_kind in ("single", "bool"):
        counts, mask = [c_in], rand_mask(1)
    elif mask_kind == "per_channel":
        counts, mask = [1] * c_in, rand_mask(c_in)
    elif mask_kind == "groups":
        split = rng.randint(1, c_in - 1) if c_in > 1 else None
        counts = [split, c_in - split] if split else [c_in]
        mask = rand_mask(len(counts))
    elif mask_kind == "zeros":
        counts, mask = [c_in], torch.zeros(n, 1, h, w, dtype=dtype)
    else:
        counts, mask = [c_in], torch.ones(n, 1, h, w, dtype=dtype)
    user_mask = mask.bool() if mask_kind == "bool" else mask
    mask_channels = counts if mask_kind == "groups" else None
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return dict(
        x=to(x), mask=to(user_mask), mask_full=to(expand_mask(mask, counts)), weight=to(weight), bias=to(bias),
        stride=stride, padding=padding, dilation=dilation, groups=groups, mask_channels=mask_channels,
    )


def run_ours(case, x=None, weight=None, bias=None):
    return partial_conv2d(
        case["x"] if x is None else x, case["mask"], case["weight"] if weight is None else weight,
        case["bias"] if bias is None else bias, case["stride"], case["padding"], case["dilation"],
        case["groups"], mask_channels=case["mask_channels"],
    )


def run_reference(case, x=None, weight=None, bias=None):
    return reference_partial_conv2d(
        case["x"] if x is None else x, case["mask_full"], case["weight"] if weight is None else weight,
        case["bias"] if bias is None else bias, case["stride"], case["padding"], case["dilation"], case["groups"],
    )


# ------------------------------------------------------------------------------------------------
# correctness
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_forward_backward_match_reference(backend, seed):
    case = make_case(seed, device=backend.device)
    x = case["x"].detach().requires_grad_()
    w = case["weight"].detach().requires_grad_()
    b = None if case["bias"] is None else case["bias"].detach().requires_grad_()
    with backend.context():
        out, new_mask = run_ours(case, x, w, b)
        grad = torch.randn_like(out)
        grads = torch.autograd.grad(out, [t for t in (x, w, b) if t is not None], grad)
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    br = None if b is None else b.detach().requires_grad_()
    ref_out, ref_mask = run_reference(case, xr, wr, br)
    ref_grads = torch.autograd.grad(ref_out, [t for t in (xr, wr, br) if t is not None], grad)

    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(expand_new_mask(new_mask, out.shape[1]), ref_mask, rtol=0, atol=0)
    for ours, ref in zip(grads, ref_grads):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    # The output keeps the caller's memory format (channels_last in, channels_last out).
    if case["x"].is_contiguous(memory_format=torch.channels_last) and not case["x"].is_contiguous():
        assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("seed", range(6))
def test_float32_matches_float64_reference(backend, seed):
    case = make_case(100 + seed, dtype=torch.float32, device=backend.device)
    with backend.context():
        out, _ = run_ours(case)
    case64 = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in case.items()}
    ref, _ = run_reference(case64)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mask_kind", ["single", "per_channel", "groups"])
def test_gradcheck(backend, mask_kind):
    case = make_case(7, device=backend.device, mask_kind=mask_kind)
    x = case["x"].detach().requires_grad_()
    w = case["weight"].detach().requires_grad_()
    b = torch.randn(w.shape[0], dtype=torch.float64, device=backend.device, requires_grad=True)
    with backend.context():
        assert torch.autograd.gradcheck(lambda x, w, b: run_ours(case, x, w, b)[0], (x, w, b))


def string_padding_case(kernel, dilation, padding, device, channels_last=False):
    """A float64 case (groups=2, bias, a hole on the bottom/right border, where an even kernel's
    'same' pads its odd row/column) with ``padding`` a string, as F.conv2d takes it."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 11, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mask = (torch.rand(2, 1, 9, 11, generator=g) > 0.4).double()
    mask[:, :, -2:, :] = mask[:, :, :, -3:] = 0
    w = torch.randn(6, 2, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    to = lambda t: t.to(device)  # noqa: E731
    return dict(x=to(x), mask=to(mask), mask_full=to(mask.expand(2, 4, 9, 11)), weight=to(w), bias=to(b), stride=1,
                padding=padding, dilation=dilation, groups=2, mask_channels=None)


# odd and even kernels, dilations that make the total padding odd or even
STRING_PADDINGS = [((3, 3), (1, 1)), ((2, 4), (1, 1)), ((4, 3), (2, 1)), ((2, 2), (3, 2)), ((1, 5), (1, 2))]


# (the reference's F.conv2d warns that an even kernel's 'same' copies the input, as ours does)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel, dilation", STRING_PADDINGS)
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding_matches_the_reference_as_f_conv2d_pads(backend, kernel, dilation, padding):
    """padding='same' / 'valid' as F.conv2d and nn.Conv2d take them: output, updated mask and
    gradients equal to the reference, which convolves with F.conv2d's own string padding (an even
    kernel's 'same' pads the odd row/column at the bottom/right, and that padding is a hole);
    'same' keeps the size and the input's memory format."""
    for channels_last in (False, True):
        case = string_padding_case(kernel, dilation, padding, backend.device, channels_last)
        x, w, b = (case[k].detach().requires_grad_() for k in ("x", "weight", "bias"))
        with backend.context():
            out, new_mask = run_ours(case, x, w, b)
            grad = torch.randn_like(out)
            grads = torch.autograd.grad(out, (x, w, b), grad)
        xr, wr, br = (t.detach().requires_grad_() for t in (x, w, b))
        ref_out, ref_mask = run_reference(case, xr, wr, br)
        ref_grads = torch.autograd.grad(ref_out, (xr, wr, br), grad)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(new_mask.expand_as(ref_mask), ref_mask, rtol=0, atol=0)
        for ours, ref in zip(grads, ref_grads):
            torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
        if padding == "same":
            assert out.shape[2:] == x.shape[2:]
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("kernel, dilation", [((2, 4), (1, 1)), ((4, 3), (2, 1))])
def test_gradcheck_same_padding_with_an_even_kernel(kernel, dilation):
    """On the CPU kernels only: the odd row/column is padded in Python, the same for every backend,
    and every backend's gradients are checked against the reference above (emulated, a gradcheck
    took 50 s)."""
    case = string_padding_case(kernel, dilation, "same", "cpu")
    x, w, b = (case[k].detach().requires_grad_() for k in ("x", "weight", "bias"))
    assert torch.autograd.gradcheck(lambda x, w, b: run_ours(case, x, w, b)[0], (x, w, b))


def test_channel_group_mask_equals_per_channel_mask():
    """Two single-channel segments ([upsampled | skip] in a UNet decoder) give exactly the result
    of the expanded per-channel mask."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 12, 16, 16, generator=g, dtype=torch.float64)
    seg = (torch.rand(2, 2, 16, 16, generator=g) > 0.5).double()
    w = torch.randn(5, 12, 3, 3, generator=g, dtype=torch.float64)
    out_groups, m_groups = partial_conv2d(x, seg, w, padding=1, mask_channels=[8, 4])
    out_full, m_full = partial_conv2d(x, expand_mask(seg, [8, 4]), w, padding=1)
    torch.testing.assert_close(out_groups, out_full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m_groups, m_full)


@requires_emulation
def test_cpu_and_emulated_cuda_kernels_agree_bitwise_in_float32():
    """Same math header, two compilers: the emulated CUDA kernels and the CPU loops agree to the
    last bit on the fused passes (the convolution itself is ATen's in both)."""
    case = make_case(11, dtype=torch.float32, mask_kind="groups")
    x = case["x"].detach().requires_grad_()
    out_cpu, m_cpu = run_ours(case, x)
    (gx_cpu,) = torch.autograd.grad(out_cpu.sum(), x)
    with fastinpaint.cuda_emulation():
        out_emu, m_emu = run_ours(case, x)
        (gx_emu,) = torch.autograd.grad(out_emu.sum(), x)
    assert torch.equal(out_cpu, out_emu) and torch.equal(m_cpu, m_emu) and torch.equal(gx_cpu, gx_emu)


def test_non_binary_mask_uses_valid_weight_sum():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    mask = torch.rand(1, 1, 6, 6, dtype=torch.float64) * (torch.rand(1, 1, 6, 6) > 0.3)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    out, _ = partial_conv2d(x, mask, w, padding=1)
    ref, _ = reference_partial_conv2d(x, mask.expand(-1, 2, -1, -1), w, None, 1, 1, 1, 1)
    torch.testing.assert_close(out, ref)


def test_empty_batch():
    x = torch.randn(0, 3, 8, 8)
    out, m = partial_conv2d(x, torch.ones(0, 1, 8, 8), torch.randn(4, 3, 3, 3), padding=1)
    assert out.shape == (0, 4, 8, 8) and m.shape == (0, 1, 8, 8)


# ------------------------------------------------------------------------------------------------
# torch.library / torch.compile
# ------------------------------------------------------------------------------------------------
def test_opcheck(backend):
    """Schema, fake kernel, autograd registration and AOT dispatch of the forward op and of the
    backward op, on every backend (the CPU kernels, the CUDA kernels emulated, a real GPU)."""
    case = make_case(5, mask_kind="groups")
    dev = backend.device
    counts = case["mask_channels"] or [case["x"].shape[1]]
    x, weight = case["x"].to(dev), case["weight"].to(dev)
    mask = case["mask"].to(device=dev, dtype=x.dtype)
    if mask.shape[1] == x.shape[1] and case["mask_channels"] is None:
        counts = [1] * x.shape[1]
    conv = (list(case["stride"]), list(case["padding"]), list(case["dilation"]), case["groups"])
    args = (x.requires_grad_(), mask, weight.requires_grad_(), None, *conv, counts)
    with backend.context():
        for conv_channels_last in (True, False):
            for input_masked in (True, False):
                torch.library.opcheck(torch.ops.fastinpaint.partial_conv2d.default,
                                      args + (conv_channels_last, input_masked))
        _, _, masked_input, ratio, layout = torch.ops.fastinpaint.partial_conv2d(
            x.detach(), mask, weight.detach(), None, *conv, counts, False, False)
        grad_out = torch.randn(ratio.shape[0], weight.shape[0], *ratio.shape[2:], dtype=x.dtype, device=dev)
        for output_mask in ([True, True, True], [True, False, False], [False, True, False]):
            torch.library.opcheck(torch.ops.fastinpaint.partial_conv2d_backward.default,
                                  (grad_out, masked_input, mask, layout, weight.detach(), ratio, *conv, False,
                                   output_mask))


@pytest.mark.parametrize("compile_backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_forward_and_backward(compile_backend):
    torch._dynamo.reset()
    layer = PartialConv2d(4, 6, 3, padding=1, return_mask=True)
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    mask = (torch.rand(2, 1, 12, 12) > 0.4).float()

    def step(x, mask):
        out, new_mask = layer(x, mask)
        return (out * new_mask).square().mean()

    compiled = torch.compile(step, fullgraph=True, backend=compile_backend)
    loss = compiled(x, mask)
    (gx,) = torch.autograd.grad(loss, x)
    loss_eager = step(x, mask)
    (gx_eager,) = torch.autograd.grad(loss_eager, x)
    torch.testing.assert_close(loss, loss_eager)
    torch.testing.assert_close(gx, gx_eager)


@pytest.mark.skipif(not torch.cuda.is_available() or not fastinpaint.built_with_cuda(),
                    reason="needs a CUDA device and fastinpaint's CUDA kernels")
def test_cuda_kernels_run_on_the_current_stream_and_device():
    """The op takes the device guard and torch's current stream in C++: work queued on a side
    stream (as torch.cuda.stream(...) selects it) equals work on the default stream."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 64, 64, device="cuda")
    mask = (torch.rand(2, 1, 64, 64, device="cuda") > 0.3).float()
    w = torch.randn(16, 8, 3, 3, device="cuda")
    expected = partial_conv2d(x, mask, w, padding=1)[0]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = partial_conv2d(x, mask, w, padding=1)[0]
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(out, expected)


def test_double_backward_raises_clear_error():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out, _ = partial_conv2d(x, torch.ones(1, 1, 6, 6, dtype=torch.float64), w, padding=1)
    (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gx.sum().backward()


# ------------------------------------------------------------------------------------------------
# PartialConv2d module
# ------------------------------------------------------------------------------------------------
def nvidia_partial_conv(layer: torch.nn.Conv2d, x, mask, multi_channel):
    """NVIDIA's published formulation (second conv with all-ones weights, +1e-8, clamp)."""
    ones = torch.ones(layer.out_channels if multi_channel else 1, x.shape[1] if multi_channel else 1,
                      *layer.kernel_size, dtype=x.dtype)
    window = ones.shape[1] * ones.shape[2] * ones.shape[3]
    update = F.conv2d(mask, ones, None, layer.stride, layer.padding, layer.dilation, 1)
    ratio = window / (update + 1e-8)
    update = update.clamp(0, 1)
    ratio = ratio * update
    raw = F.conv2d(x * mask, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    b = layer.bias.view(1, -1, 1, 1)
    return ((raw - b) * ratio + b) * update, update


@pytest.mark.parametrize("multi_channel", [False, True])
def test_module_matches_nvidia_formulation_and_survives_shape_changes(multi_channel):
    torch.manual_seed(0)
    layer = PartialConv2d(3, 5, 3, stride=2, padding=1, bias=True, multi_channel=multi_channel, return_mask=True)
    layer.double()
    for n, h, w in [(1, 16, 16), (4, 9, 13), (2, 32, 20)]:  # batch and size change between calls
        x = torch.randn(n, 3, h, w, dtype=torch.float64)
        mask = (torch.rand(n, 3 if multi_channel else 1, h, w) > 0.5).double()
        out, new_mask = layer(x, mask)
        ref, ref_mask = nvidia_partial_conv(layer, x, mask, multi_channel)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(new_mask, ref_mask.expand_as(new_mask) if multi_channel else ref_mask)


@pytest.mark.parametrize("multi_channel", [False, True])
def test_one_mask_is_shared_by_the_batch_as_nvidias(multi_channel):
    """A mask with a batch of 1 (NVIDIA's layer's own default shape) serves every sample, as
    NVIDIA's broadcasts it: equal to its formulation and to the mask repeated per sample; the
    gradients to input, weight and bias pass gradcheck through the shared mask."""
    torch.manual_seed(1)
    layer = PartialConv2d(3, 4, 3, padding=1, bias=True, multi_channel=multi_channel, return_mask=True).double()
    x = torch.randn(3, 3, 11, 9, dtype=torch.float64)
    mask = (torch.rand(1, 3 if multi_channel else 1, 11, 9) > 0.4).double()
    out, new_mask = layer(x, mask)
    ref, ref_mask = nvidia_partial_conv(layer, x, mask, multi_channel)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    repeated, _ = layer(x, mask.expand(3, -1, -1, -1))
    assert torch.equal(out, repeated) and new_mask.shape[0] == 3
    xg = x[:2].clone().requires_grad_()
    torch.autograd.gradcheck(lambda a, w, b: partial_conv2d(a, mask, w, b, padding=1)[0],
                             (xg, layer.weight.detach().clone().requires_grad_(),
                              layer.bias.detach().clone().requires_grad_()))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel, dilation", STRING_PADDINGS)
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_module_takes_string_padding_as_nvidias_layer_does(kernel, dilation, padding):
    """NVIDIA's layer subclasses nn.Conv2d and so takes padding='same' / 'valid'; ours refused them."""
    torch.manual_seed(2)
    layer = PartialConv2d(4, 6, kernel, padding=padding, dilation=dilation, groups=2, return_mask=True).double()
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    mask = (torch.rand(2, 1, 9, 11) > 0.4).double()
    out, new_mask = layer(x, mask)
    ref, ref_mask = nvidia_partial_conv(layer, x, mask, multi_channel=False)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(new_mask, ref_mask)
    assert out.shape == torch.nn.Conv2d(4, 6, kernel, padding=padding, dilation=dilation, groups=2)(x.float()).shape


def test_module_without_mask_and_without_return_mask():
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 10, 10)
    out = layer(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 10, 10)
    # all-valid mask: the interior equals a plain convolution
    plain = F.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], plain[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-5)


def test_no_mask_is_all_valid_in_the_op_as_in_the_module():
    """``mask=None`` is the op's (the module's ``mask_in=None`` passes it on): one all-valid
    channel, the same result as an explicit mask of ones, also with groups and multi_channel."""
    x, w = torch.randn(2, 4, 9, 9), torch.randn(6, 2, 3, 3)
    out, new_mask = partial_conv2d(x, None, w, padding=1, groups=2)
    ref, ref_mask = partial_conv2d(x, torch.ones(2, 1, 9, 9), w, padding=1, groups=2)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert torch.equal(new_mask, ref_mask)
    layer = PartialConv2d(4, 6, 3, padding=1, groups=2, multi_channel=True, return_mask=True)
    out, new_mask = layer(x)
    ref, ref_mask = layer(x, torch.ones(2, 4, 9, 9))
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert torch.equal(new_mask, ref_mask) and new_mask.shape == (2, 6, 9, 9)


@pytest.mark.parametrize("bad, error, match", [
    (torch.randn(3, 10, 10), ValueError, r"^partial_conv2d: input must be 4-D, got shape \(3, 10, 10\)$"),
    (np.zeros((1, 3, 10, 10), np.float32), TypeError, "^partial_conv2d: input must be a torch.Tensor, got ndarray$"),
])
def test_module_without_mask_names_a_bad_input(bad, error, match):
    """Without a mask the layer built one from ``input.shape`` first: a 3-D input failed with
    'not enough values to unpack', a NumPy array with an error about torch.ones' dtype."""
    with pytest.raises(error, match=match):
        PartialConv2d(3, 4, 3, padding=1)(bad)


def test_module_rejects_unsupported_padding_mode_and_says_why():
    with pytest.raises(ValueError, match=r"^PartialConv2d: padding_mode must be 'zeros', got 'reflect': the partial "
                                         r"convolution counts the padding as holes \(mask 0\), so a padded pixel "
                                         r"must add nothing; .*pad the input and the mask yourself and use padding=0$"):
        PartialConv2d(3, 4, 3, padding=1, padding_mode="reflect")


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
X, M, W = torch.randn(2, 4, 8, 8), torch.ones(2, 1, 8, 8), torch.randn(3, 4, 3, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(input=torch.randn(4, 8, 8)), ValueError, "input must be 4-D"),
        (dict(mask=torch.ones(2, 8, 8)), ValueError, "mask must be 4-D"),
        (dict(weight=torch.randn(3, 4, 3)), ValueError, "weight must be 4-D"),
        (dict(mask=torch.ones(2, 1, 8, 9)), ValueError, "does not match input shape"),
        (dict(mask=torch.ones(3, 1, 8, 8)), ValueError, "does not match input shape"),
        (dict(mask=torch.ones(2, 3, 8, 8)), ValueError, "mask has 3 channels but the input has 4"),
        (dict(mask=torch.ones(2, 2, 8, 8), mask_channels=[1, 2]), ValueError, "add up to the input's 4"),
        (dict(mask=torch.ones(2, 2, 8, 8), mask_channels=[4]), ValueError, "lists 1 groups but the mask has 2"),
        (dict(weight=torch.randn(3, 2, 3, 3)), ValueError, "expects 2 input channels"),
        (dict(groups=3), ValueError, "groups=3"),
        (dict(input=X.double()), TypeError, "weight dtype"),
        (dict(input=X.half(), weight=W.half()), TypeError, "float32 or float64"),
        (dict(input=X.long()), TypeError, "floating-point"),
        (dict(bias=torch.randn(4)), ValueError, "bias must have shape"),
        (dict(stride=0), ValueError, "stride must be >= 1"),
        (dict(padding=(1, 2, 3)), ValueError, "padding must be an int or a pair"),
        (dict(padding="full"), ValueError, "padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
        (dict(padding="same", stride=2), ValueError, r"padding='same' needs stride 1 .* got stride=\[2, 2\]"),
        (dict(weight=torch.randn(3, 4, 11, 11)), ValueError, "smaller than the dilated kernel"),
        (dict(mask="hole"), TypeError, "mask must be a torch.Tensor"),
        (dict(mask=None, mask_channels=[2, 2]), ValueError,
         r"mask_channels=\[2, 2\] describes the mask's channels, but mask is None"),
        (dict(mask=torch.ones(2, 1, 8, 8, device="meta")), ValueError, "mask is on meta"),
    ],
)
def test_bad_input_is_named(kwargs, error, match):
    args = dict(input=X, mask=M, weight=W)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        partial_conv2d(**args)


@pytest.mark.parametrize("channels_last", [False, True])
def test_input_masked_promise_gives_same_result_without_copy(backend, channels_last):
    """A caller that masked its input itself (the UNet decoder) gets the same values and gradients."""
    case = make_case(21, device=backend.device, mask_kind="groups")
    x = (case["x"] * case["mask_full"]).detach()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    with backend.context():
        out, m = run_ours(case, x)
        (gx,) = torch.autograd.grad(out.square().sum(), x)
        out2, m2 = partial_conv2d(x, case["mask"], case["weight"], case["bias"], case["stride"], case["padding"],
                                  case["dilation"], case["groups"], mask_channels=case["mask_channels"],
                                  input_masked=True)
        (gx2,) = torch.autograd.grad(out2.square().sum(), x)
    torch.testing.assert_close(out2, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m2, m)
    # d out / d x is masked whether or not the op masked x itself
    torch.testing.assert_close(gx2, gx, rtol=1e-12, atol=1e-12)


@requires_emulation
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
def test_half_precision_cuda_kernels_under_emulation(dtype, tol):
    """The CUDA kernels' float16/bfloat16 instantiations (ratio computed in float32: no epsilon to
    underflow) against the float64 reference, forward and input gradient. A mask with isolated
    valid pixels gives ratios up to the window size, where fp16's 1e-8 trap would bite."""
    case = make_case(31, mask_kind="groups")
    x64 = case["x"].detach().requires_grad_()
    ref, ref_mask = run_reference(case, x64)
    (ref_gx,) = torch.autograd.grad(ref.square().sum() / 2, x64)
    x = case["x"].to(dtype).detach().requires_grad_()
    with fastinpaint.cuda_emulation():
        out, new_mask = partial_conv2d(x, case["mask"].to(dtype), case["weight"].to(dtype),
                                       None if case["bias"] is None else case["bias"].to(dtype), case["stride"],
                                       case["padding"], case["dilation"], case["groups"],
                                       mask_channels=case["mask_channels"])
        (gx,) = torch.autograd.grad(out.float().square().sum() / 2, x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    scale = ref.abs().max().item()
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * scale)
    torch.testing.assert_close(expand_new_mask(new_mask, out.shape[1]).double(), ref_mask)
    gscale = ref_gx.abs().max().item()
    torch.testing.assert_close(gx.double(), ref_gx, rtol=tol, atol=2 * tol * gscale)


def test_half_precision_is_refused_on_the_cpu_backend():
    with pytest.raises(TypeError, match="float32 or float64"):
        partial_conv2d(X.half(), M.half(), W.half())


@requires_emulation
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_emulated_half_types_round_trip_exactly(dtype):
    """The emulator's software __half / __nv_bfloat16 convert exactly like torch's types: an identity
    1x1 partial convolution with an all-valid mask returns its input bit for bit, from fp16
    subnormals (~1e-7) to 1e4."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, 16, 16, generator=g) * torch.logspace(-7, 4, 16)[None, None, None, :]).to(dtype)
    with fastinpaint.cuda_emulation():
        out, _ = partial_conv2d(x, torch.ones(2, 1, 16, 16, dtype=dtype), torch.eye(3, dtype=dtype).view(3, 3, 1, 1))
    assert torch.equal(out, x)
