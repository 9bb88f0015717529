"""The fused partial convolution (Liu et al. 2018) as a differentiable, compilable op.

Layers, from the bottom (the op template every fastinpaint op follows: ``csrc/README.md``):

* ``torch.ops.fastinpaint.partial_conv2d`` / ``partial_conv2d_backward`` — schemas and kernels
  registered in C++ (``csrc/ops/partial_conv.cpp``: ATen's convolution plus our fused kernels, on
  the CPU, CUDA, or CUDA emulated on the CPU; device guard and current stream taken there);
* here: their fake kernels (so ``torch.compile(fullgraph=True)`` traces through them) and the
  autograd formula, registered on the op itself — the only autograd path;
* :func:`partial_conv2d` — the public entry, which validates and normalises its arguments.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from fastinpaint._ext import _C

__all__ = ["partial_conv2d", "PartialConv2dFunction", "resolve_mask_channels"]

_IntPair = Union[int, Sequence[int]]
_Padding = Union[int, Sequence[int], str]


# ------------------------------------------------------------------------------------------------
# fake kernels (the ops' schemas are in csrc/ops/partial_conv.cpp)
# ------------------------------------------------------------------------------------------------
def _activation_format(t: Tensor) -> torch.memory_format:
    # Mirrors activation_format() in csrc/ops/partial_conv.cpp.
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _conv_channels_last(t: Tensor, weight: Tensor) -> bool:
    """The layout the image convolution runs in. On the CPU oneDNN convolves channels_last
    activations markedly faster than NCHW ones (it reorders NCHW internally; up to ~3x on thin
    layers such as PConvUNet's dec_1), and our mask and epilogue passes transpose for free while
    they run anyway, so the masked input is written channels_last whatever the caller's layout —
    unless the weight is NCHW and larger than the activations (deep layers on small images): ATen
    would then copy the whole weight into channels_last on every call, which costs more time and
    memory than it saves. On CUDA the caller's layout is kept. Decided here, once, and passed to
    the op as an argument, so that the fake kernel and compiled graphs agree with the real kernel."""
    if _activation_format(t) == torch.channels_last:
        return True
    if t.device.type != "cpu":
        return False
    weight_cl = not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)
    return weight_cl or t.numel() >= weight.numel()


def _reuses_input(input: Tensor, conv_channels_last: bool, input_masked: bool) -> bool:
    # Mirrors reuse_input in csrc/ops/partial_conv.cpp: an input promised masked that already has
    # the convolution's layout is convolved in place of a masked copy.
    fmt = _activation_format(input)
    conv_fmt = torch.channels_last if conv_channels_last else fmt
    return input_masked and conv_fmt == fmt and input.is_contiguous(memory_format=fmt)


def _conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@torch.library.register_fake("fastinpaint::partial_conv2d")
def _(input, mask, weight, bias, stride, padding, dilation, groups, mask_channels, conv_channels_last, input_masked):
    """(output, updated_mask, masked_input, ratio, mask_layout); the last three are saved for
    backward. masked_input is a 1-D empty placeholder when the input itself was convolved (see
    _reuses_input); mask_layout holds the segment tables of mask_channels (int64)."""
    n, _, h, w = input.shape
    kh, kw = weight.shape[2], weight.shape[3]
    oh = _conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = _conv_out_size(w, kw, stride[1], padding[1], dilation[1])
    fmt = _activation_format(input)
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    new_mask_channels = 1 if (len(mask_channels) == 1 or groups == 1) else groups
    out = torch.empty((n, weight.shape[0], oh, ow), dtype=input.dtype, device=input.device, memory_format=fmt)
    new_mask = input.new_empty((n, new_mask_channels, oh, ow))
    conv_fmt = torch.channels_last if conv_channels_last else fmt
    if _reuses_input(input, conv_channels_last, input_masked):
        masked_input = input.new_empty(0)
    else:
        masked_input = torch.empty_like(input, memory_format=conv_fmt)
    ratio = input.new_empty((n, groups, oh, ow), dtype=acc)
    mask_layout = input.new_empty(len(mask_channels) + 1 + groups + input.shape[1], dtype=torch.int64)
    return out, new_mask, masked_input, ratio, mask_layout


@torch.library.register_fake("fastinpaint::partial_conv2d_backward")
def _(grad_out, masked_input, mask, mask_layout, weight, ratio, stride, padding, dilation, groups,
      input_channels_last, output_mask):
    """(grad_input, grad_weight, grad_bias), an empty tensor where output_mask is False;
    grad_input has the forward input's layout (channels_last when input_channels_last)."""
    fmt = torch.channels_last if input_channels_last else torch.contiguous_format
    gi = torch.empty_like(masked_input, memory_format=fmt) if output_mask[0] else grad_out.new_empty(0)
    gw = torch.empty_like(weight) if output_mask[1] else grad_out.new_empty(0)
    gb = grad_out.new_empty(weight.shape[0]) if output_mask[2] else grad_out.new_empty(0)
    return gi, gw, gb


def _no_double_backward(ctx, *grads):
    raise RuntimeError(
        "fastinpaint.ops.partial_conv2d supports first-order gradients only; double backward "
        "(create_graph=True through its backward) is not implemented"
    )


torch.library.register_autograd(
    "fastinpaint::partial_conv2d_backward", _no_double_backward, setup_context=lambda ctx, inputs, output: None
)


# ------------------------------------------------------------------------------------------------
# autograd (registered on the op: eager mode and compiled graphs take the same path)
# ------------------------------------------------------------------------------------------------
def _setup_context(ctx, inputs, output):
    input, mask, weight, bias, stride, padding, dilation, groups, _, _, _ = inputs
    _, new_mask, masked_input, ratio, mask_layout = output
    # A 1-D placeholder means the op convolved the input itself (promised masked): save that.
    ctx.save_for_backward(input if masked_input.dim() != 4 else masked_input, mask, mask_layout, weight, ratio)
    ctx.conv_args = (stride, padding, dilation, groups)
    ctx.input_channels_last = _activation_format(input) == torch.channels_last
    ctx.has_bias = bias is not None
    ctx.mark_non_differentiable(new_mask, masked_input, ratio, mask_layout)
    # Without this autograd would allocate and zero-fill gradients for the three non-differentiable
    # outputs (one of them input-sized) on every backward.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_new_mask, _grad_masked_input, _grad_ratio, _grad_mask_layout):
    masked_input, mask, mask_layout, weight, ratio = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.conv_args
    need_input, need_mask, need_weight, need_bias = ctx.needs_input_grad[:4]
    output_mask = [bool(need_input), bool(need_weight), bool(need_bias and ctx.has_bias)]
    if grad_out is None or not any(output_mask):
        return (None,) * 11
    gi, gw, gb = torch.ops.fastinpaint.partial_conv2d_backward(
        grad_out, masked_input, mask, mask_layout, weight, ratio, stride, padding, dilation, groups,
        ctx.input_channels_last, output_mask,
    )
    return (
        gi if output_mask[0] else None,
        None,  # the mask is not differentiable
        gw if output_mask[1] else None,
        gb if output_mask[2] else None,
        None, None, None, None, None, None, None,
    )


torch.library.register_autograd("fastinpaint::partial_conv2d", _backward, setup_context=_setup_context)


class PartialConv2dFunction:
    """Deprecated: use :func:`partial_conv2d` (or ``torch.ops.fastinpaint.partial_conv2d``, which
    carries the autograd formula itself). Kept for one release.

    ``apply(input, mask, weight, bias, stride, padding, dilation, groups, mask_channels,
    conv_channels_last, input_masked)`` returns ``(output, updated_mask, masked_input, ratio)``
    with the arguments already normalised, as before.
    """

    @staticmethod
    def apply(*args):
        warnings.warn(
            "fastinpaint.ops.PartialConv2dFunction is deprecated and will be removed; call "
            "fastinpaint.ops.partial_conv2d (differentiable through the op's registered autograd)",
            DeprecationWarning, stacklevel=2,
        )
        return torch.ops.fastinpaint.partial_conv2d(*args)[:4]


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def _pair(value: _IntPair, name: str, minimum: int) -> List[int]:
    if isinstance(value, bool) or not isinstance(value, (int, tuple, list, torch.Size)):
        raise TypeError(f"partial_conv2d: {name} must be an int or a pair of ints, got {value!r}")
    pair = [value, value] if isinstance(value, int) else list(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"partial_conv2d: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"partial_conv2d: {name} must be >= {minimum}, got {value!r}")
    return pair


def _resolve_padding(padding: _Padding, kernel: Sequence[int], stride: List[int],
                     dilation: List[int]) -> Tuple[List[int], List[int]]:
    """``padding`` as ``(each side, extra at the bottom / right)`` per axis (height, width): an int
    or a pair pads both sides alike; ``'valid'`` pads nothing; ``'same'`` keeps the input's size as
    ``F.conv2d`` does, ``dilation * (kernel - 1)`` pixels in all, half on each side and the odd one
    (an even kernel) at the bottom / right. The fused op pads both sides alike, so the caller pads
    that odd row or column itself, beforehand."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0], [0, 0]
        if padding == "same":
            if stride != [1, 1]:
                raise ValueError(f"partial_conv2d: padding='same' needs stride 1 (as F.conv2d: a strided output "
                                 f"cannot keep the input's size), got stride={stride}")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return [t // 2 for t in total], [t % 2 for t in total]
        raise ValueError(f"partial_conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    return _pair(padding, "padding", 0), [0, 0]


def resolve_mask_channels(mask_shape: Sequence[int], in_channels: int,
                          mask_channels: Optional[Sequence[int]] = None) -> List[int]:
    """How many input channels each mask channel covers.

    A mask with 1 channel covers all ``in_channels``; one with ``in_channels`` channels is a
    per-channel mask; any other channel count needs ``mask_channels`` (e.g. ``[512, 256]`` for a
    UNet decoder that concatenates 512 upsampled channels with a 256-channel skip, each with its
    own single-channel mask).
    """
    s = mask_shape[1]
    if mask_channels is None:
        if s == 1:
            return [in_channels]
        if s == in_channels:
            return [1] * in_channels
        raise ValueError(
            f"partial_conv2d: the mask has {s} channels but the input has {in_channels}; a mask has 1 channel "
            f"(shared by all input channels), {in_channels} (one per channel), or one per channel group with "
            f"mask_channels=[...] saying how many input channels each covers"
        )
    counts = [int(c) for c in mask_channels]
    if len(counts) != s:
        raise ValueError(f"partial_conv2d: mask_channels={counts} lists {len(counts)} groups but the mask has {s} channels")
    if any(c <= 0 for c in counts) or sum(counts) != in_channels:
        raise ValueError(
            f"partial_conv2d: mask_channels={counts} must be positive and add up to the input's {in_channels} channels"
        )
    return counts


def _check_tensor(t, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"partial_conv2d: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"partial_conv2d: {name} must be 4-D, got shape {tuple(t.shape)}")


def partial_conv2d(
    input: Tensor,
    mask: Optional[Tensor],
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: _IntPair = 1,
    padding: _Padding = 0,
    dilation: _IntPair = 1,
    groups: int = 1,
    mask_channels: Optional[Sequence[int]] = None,
    input_masked: bool = False,
) -> Tuple[Tensor, Tensor]:
    r"""Partial convolution (Liu et al. 2018), fused.

    .. math::
        out = W^T (X \odot M) \cdot \frac{sum(1)}{sum(M)} + b \quad\text{where } sum(M) > 0,
        \text{ else } 0; \qquad m' = [sum(M) > 0]

    where the sums run over each output pixel's window (and over the input channels of its conv
    group), ``sum(1)`` being the window size. The mask window sums are computed by box filters on
    single-channel mask planes, never by a second convolution, and ratio, bias and hole zeroing
    are applied in one fused pass over the output.

    Args:
        input: ``(N, C_in, H, W)`` float32/float64 (also float16/bfloat16 on CUDA); contiguous or
            ``channels_last`` (kept as such, no copy).
        mask: **1 = valid, 0 = hole** (the partial-convolution convention; fractional values act
            as weights). ``(N, 1, H, W)`` shared by all channels, ``(N, C_in, H, W)`` per channel,
            or ``(N, S, H, W)`` with ``mask_channels`` giving each mask channel's input-channel
            count; a batch of 1 is shared by the whole batch. Any real or bool dtype; it is
            converted to the input's dtype. ``None``: every pixel valid (only the zero padding is
            a hole, renormalised at the border as NVIDIA's layer does for ``mask_in=None``).
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: int or pair.
        padding: int or pair (zeros on both sides), ``'valid'`` (none) or ``'same'`` (stride 1;
            the output keeps the input's size), as ``F.conv2d``: for an even kernel ``'same'`` pads
            the odd row / column at the bottom / right, as ``nn.Conv2d`` does. The padding is a
            hole (mask 0): the window sums renormalise for it.
        groups: convolution groups.
        mask_channels: see ``mask``.
        input_masked: a promise that ``input`` is already zero wherever its mask is 0 (for
            instance masked in place by the caller). The op then skips its masking pass and, when
            the input is channels_last on the CPU (or on CUDA), convolves it without any copy.
            A broken promise gives the result for ``input`` unmasked.

    Returns:
        ``(output, updated_mask)``: output ``(N, C_out, OH, OW)`` in the input's memory format;
        updated_mask ``(N, 1, OH, OW)`` (1 where the window saw a valid input), or
        ``(N, groups, OH, OW)`` — one channel per conv group — when ``groups > 1`` and the mask
        has several channels. Gradients flow to input, weight and bias (first order).

    Example:
        >>> import torch
        >>> from fastinpaint.ops import partial_conv2d
        >>> x = torch.randn(2, 3, 32, 32)
        >>> mask = (torch.rand(2, 1, 32, 32) > 0.3).float()
        >>> w = torch.randn(16, 3, 3, 3)
        >>> out, new_mask = partial_conv2d(x, mask, w, padding=1)
        >>> out.shape, new_mask.shape
        (torch.Size([2, 16, 32, 32]), torch.Size([2, 1, 32, 32]))
    """
    _check_tensor(input, "input")
    if mask is None:
        # Built here, after the input's checks, so that every caller (PartialConv2d's mask_in=None
        # too) gets the input's errors rather than a failure while making the mask. One channel
        # whatever multi_channel: an all-valid mask gives every channel the same window sums.
        if mask_channels is not None:
            raise ValueError(f"partial_conv2d: mask_channels={list(mask_channels)} describes the mask's channels, "
                             f"but mask is None (all valid); pass the mask, or leave mask_channels None")
        n, _, h, w = input.shape
        mask = torch.ones((1, 1, 1, 1), dtype=input.dtype, device=input.device).expand(n, 1, h, w)
    _check_tensor(mask, "mask")
    _check_tensor(weight, "weight")
    if not input.is_floating_point():
        raise TypeError(f"partial_conv2d: input must be a floating-point tensor, got {input.dtype}")
    if (input.device.type == "cpu" and input.dtype not in (torch.float32, torch.float64)
            and not (_C.cuda_emulation_enabled() and input.dtype in (torch.float16, torch.bfloat16))):
        # (float16/bfloat16 CPU tensors are accepted only under cuda_emulation(), where they run
        # the CUDA kernels' half-precision instantiations)
        raise TypeError(f"partial_conv2d: on the CPU input must be float32 or float64, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"partial_conv2d: weight dtype {weight.dtype} differs from input dtype {input.dtype}")
    for name, t in (("mask", mask), ("weight", weight), ("bias", bias)):
        if t is not None and t.device != input.device:
            raise ValueError(f"partial_conv2d: {name} is on {t.device} but input is on {input.device}")
    n, c_in, h, w = input.shape
    if mask.dim() != 4 or mask.shape[0] not in (1, n) or mask.shape[2:] != input.shape[2:]:
        raise ValueError(
            f"partial_conv2d: mask shape {tuple(mask.shape)} does not match input shape {tuple(input.shape)} "
            f"(expected (N={n} or 1, S, H={h}, W={w}))"
        )
    if mask.shape[0] != n:  # one mask for the whole batch, as NVIDIA's layer broadcasts it
        mask = mask.expand(n, *mask.shape[1:]).contiguous()
    if mask.is_complex():
        raise TypeError("partial_conv2d: mask must be real or bool, got a complex tensor")
    if not isinstance(groups, int) or groups < 1 or c_in % groups or weight.shape[0] % groups:
        raise ValueError(
            f"partial_conv2d: groups={groups!r} must be a positive int dividing input channels {c_in} "
            f"and output channels {weight.shape[0]}"
        )
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"partial_conv2d: weight shape {tuple(weight.shape)} with groups={groups} expects "
            f"{weight.shape[1] * groups} input channels, input has {c_in}"
        )
    if bias is not None:
        if not isinstance(bias, Tensor) or bias.shape != (weight.shape[0],):
            raise ValueError(f"partial_conv2d: bias must have shape ({weight.shape[0]},), got {getattr(bias, 'shape', bias)}")
        if bias.dtype != input.dtype:
            raise TypeError(f"partial_conv2d: bias dtype {bias.dtype} differs from input dtype {input.dtype}")
    counts = resolve_mask_channels(mask.shape, c_in, mask_channels)
    stride_, dilation_ = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    padding_, extra = _resolve_padding(padding, weight.shape[2:], stride_, dilation_)
    for i, (size, axis) in enumerate(((h, "height"), (w, "width"))):
        k = weight.shape[2 + i]
        if _conv_out_size(size + extra[i], k, stride_[i], padding_[i], dilation_[i]) < 1:
            raise ValueError(
                f"partial_conv2d: input {axis} {size} (padding {padding_[i]}) is smaller than the dilated "
                f"kernel ({dilation_[i] * (k - 1) + 1})"
            )
    mask = mask.to(input.dtype)
    if any(extra):
        # 'same' with an even kernel: the odd row / column, padded here with zeros in both (a hole,
        # as all padding is), so that the op pads both sides alike (a padded copy, as F.conv2d makes)
        input, mask = F.pad(input, (0, extra[1], 0, extra[0])), F.pad(mask, (0, extra[1], 0, extra[0]))
    out, new_mask, *_ = torch.ops.fastinpaint.partial_conv2d(
        input, mask, weight, bias, stride_, padding_, dilation_, groups, counts, _conv_channels_last(input, weight),
        bool(input_masked),
    )
    return out, new_mask
