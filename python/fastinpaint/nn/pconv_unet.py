"""``PConvUNet``: the partial-convolution U-Net of Liu et al. 2018 on fastinpaint's fused op.

Layout (the published one, and the widely used PyTorch reimplementation's ``net.py``):

* encoder ``enc_1 .. enc_L``: partial convolutions with stride 2 (kernels 7, 5, 5, then 3),
  channels 64, 128, 256, 512, 512, ...; BatchNorm on every level but the first; ReLU;
* decoder ``dec_L .. dec_1``: nearest ×2 upsampling of features *and* mask, concatenation with
  the encoder's skip (the input image for ``dec_1``), 3×3 partial convolution, BatchNorm and
  LeakyReLU(0.2) — except ``dec_1`` (bias, no BatchNorm, no activation).

Masks stay single-channel through the network: the decoder's concatenated input is given two
single-channel masks (upsampled features, skip) with ``mask_channels=[C_up, C_skip]``, which the
fused op turns into the exact window sums ``C_up·box(m_up) + C_skip·box(m_skip)`` with two box
filters — no second convolution, no mask expanded to 1024 channels.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastinpaint.nn import _checkpoint
from fastinpaint.nn.partial_conv import PartialConv2d

__all__ = ["PConvUNet", "PConvBlock", "parse_normalization", "IMAGENET_MEAN", "IMAGENET_STD", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The ``format`` field of fastinpaint's own PConvUNet checkpoints (see :meth:`PConvUNet.save`).
CHECKPOINT_FORMAT = _checkpoint.PCONV_FORMAT
#: Version of that format; :meth:`PConvUNet.load` refuses newer ones.
CHECKPOINT_VERSION = _checkpoint.PCONV_VERSION
#: How the weights are normalised: the paper's ``sum(1)/sum(M)`` renormalisation of partial
#: convolution (the reimplementation's ``1/sum(M)`` weights are converted on loading).
RENORMALIZATION = _checkpoint.PCONV_RENORMALIZATION


class PConvBlock(nn.Module):
    """One level of :class:`PConvUNet`: partial convolution, optional BatchNorm, optional activation.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: of the partial convolution.
        bias: whether the convolution has a bias (only the last decoder level does).
        batch_norm: follow the convolution with ``BatchNorm2d``.
        activation: ``"relu"``, ``"leaky"`` (LeakyReLU 0.2) or None.

    Shape:
        - input ``(N, C_in, H, W)``; mask ``(N, S, H, W)``, 1 = valid, with ``mask_channels`` when
          ``S`` is neither 1 nor ``C_in`` (see :func:`fastinpaint.ops.partial_conv2d`)
        - output ``(N, C_out, OH, OW)`` and updated mask ``(N, 1, OH, OW)``

    Example:
        >>> import torch
        >>> from fastinpaint.nn.pconv_unet import PConvBlock
        >>> block = PConvBlock(3, 16, 7, 2, 3, batch_norm=False, activation="relu")
        >>> out, new_mask = block(torch.randn(1, 3, 64, 64), torch.ones(1, 1, 64, 64))
        >>> out.shape, new_mask.shape
        (torch.Size([1, 16, 32, 32]), torch.Size([1, 1, 32, 32]))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 bias: bool = False, batch_norm: bool = True, activation: Optional[str] = None) -> None:
        super().__init__()
        self.conv = PartialConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias, return_mask=True)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None
        if activation == "relu":
            self.act: Optional[nn.Module] = nn.ReLU(inplace=True)
        elif activation == "leaky":
            self.act = nn.LeakyReLU(0.2, inplace=True)
        elif activation is None:
            self.act = None
        else:
            raise ValueError(f"PConvBlock: activation must be 'relu', 'leaky' or None, got {activation!r}")

    def forward(self, x: Tensor, mask: Tensor, mask_channels: Optional[List[int]] = None,
                input_masked: bool = False) -> Tuple[Tensor, Tensor]:
        x, mask = self.conv(x, mask, mask_channels, input_masked=input_masked)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x, mask


def _concat_upsampled(x: Tensor, skip: Tensor) -> Tensor:
    """``torch.cat([nearest_upsample_2x(x), skip], 1)`` without materialising the upsampled tensor:
    each 2x2 block of the destination is a broadcast view of one source pixel. Differentiable,
    and in the skip's memory format."""
    n, c, h, w = x.shape
    fmt = torch.channels_last if (not skip.is_contiguous() and skip.is_contiguous(memory_format=torch.channels_last)) \
        else torch.contiguous_format
    out = torch.empty((n, c + skip.shape[1], 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=fmt)
    out[:, :c].unflatten(2, (h, 2)).unflatten(4, (w, 2)).copy_(x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2))
    out[:, c:].copy_(skip)
    return out


def parse_normalization(normalization: Optional[Mapping[str, Any]], channels: int = 3) -> Dict[str, List[float]]:
    """Checks an input normalisation ``{"mean": [...], "std": [...]}`` (None = ImageNet)."""
    normalization = {} if normalization is None else normalization
    if not isinstance(normalization, Mapping):
        raise TypeError(f"normalization must be a dict with 'mean' and 'std', got {type(normalization).__name__}")
    mean = [float(v) for v in normalization.get("mean", IMAGENET_MEAN)]
    std = [float(v) for v in normalization.get("std", IMAGENET_STD)]
    if len(mean) not in (1, channels) or len(std) not in (1, channels) or any(s <= 0 for s in std):
        raise ValueError(f"normalization needs 1 or {channels} means and positive stds, got mean={mean}, std={std}")
    return {"mean": mean, "std": std}


def _encoder_kernel(level: int) -> int:
    return 7 if level == 1 else 5 if level in (2, 3) else 3


class PConvUNet(_checkpoint.Checkpointable, nn.Module):
    r"""Partial-convolution U-Net for inpainting (Liu et al. 2018), any image size.

    The published network: ``layers=7`` for 256×256 training, ``layers=8`` for 512×512 (the
    paper). Widths default to the published ones; ``base_channels``/``max_channels`` shrink them
    (e.g. for tests or small models): level ``i`` has ``min(base_channels·2^(i-1), max_channels)``
    channels.

    **Mask convention: 1 = valid, 0 = hole** (the paper's; the image-level API
    :func:`fastinpaint.methods.pconv.inpaint_pconv` takes the opposite, non-zero = hole).
    Each image of a batch has its own mask. Images whose height or width is not a multiple of
    ``2**layers`` are padded at the bottom/right with *hole* pixels (mask 0, so the padding
    carries no information into the renormalised windows, just as the zero padding at the
    border does) and the output is cropped back.

    The network works in whatever space it was trained in; published weights expect
    ImageNet-normalised images (``self.normalization``) and return the same space.

    Args:
        layers: number of encoder (and decoder) levels, 7 or 8 (any value from 4 works).
        in_channels: image channels (3).
        out_channels: output channels (default ``in_channels``).
        base_channels: channels of the first level (64).
        max_channels: cap on the channels of deeper levels (512).
        normalization: ``{"mean": [...], "std": [...]}`` that inputs are expected to be normalised
            with (default ImageNet); recorded in checkpoints and used by ``inpaint_pconv``.

    Shape:
        - image ``(N, in_channels, H, W)``, any ``H, W >= 1``; contiguous or ``channels_last`` (kept
          through the network; ``channels_last`` is faster and needs less memory on the CPU)
        - mask ``(N, 1, H, W)`` or ``(N, in_channels, H, W)`` (per-channel), 1 = valid
        - output ``(N, out_channels, H, W)`` (and with ``return_mask=True`` the final updated mask
          ``(N, 1, H, W)``: 0 where no valid pixel reached the output)

    Example:
        >>> import torch
        >>> from fastinpaint.nn import PConvUNet
        >>> net = PConvUNet(layers=7)
        >>> image = torch.randn(2, 3, 250, 250)
        >>> mask = torch.ones(2, 1, 250, 250); mask[0, :, 50:120, 60:200] = 0  # 1 = valid
        >>> net(image, mask).shape
        torch.Size([2, 3, 250, 250])
    """

    def __init__(self, layers: int = 7, in_channels: int = 3, out_channels: Optional[int] = None,
                 base_channels: int = 64, max_channels: int = 512,
                 normalization: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        if not isinstance(layers, int) or layers < 4:
            raise ValueError(f"PConvUNet: layers must be an int >= 4 (7 for 256², 8 for 512²), got {layers!r}")
        for name, value in (("in_channels", in_channels), ("base_channels", base_channels), ("max_channels", max_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PConvUNet: {name} must be a positive int, got {value!r}")
        out_channels = in_channels if out_channels is None else out_channels
        self.layers = layers
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.max_channels = max_channels
        self.normalization = parse_normalization(normalization, in_channels)
        self.encoder_bn_frozen = False

        # widths[i] = channels of h_i, the output of enc_i (widths[0] = the image)
        widths = [in_channels] + [min(base_channels * 2 ** (i - 1), max_channels) for i in range(1, layers + 1)]
        self.widths = widths
        for i in range(1, layers + 1):
            k = _encoder_kernel(i)
            self.add_module(f"enc_{i}", PConvBlock(widths[i - 1], widths[i], k, 2, k // 2,
                                                   batch_norm=i > 1, activation="relu"))
        for i in range(layers, 0, -1):
            last = i == 1
            # dec_i sees up(output of the level below, widths[i] channels) ++ skip h_{i-1}
            self.add_module(f"dec_{i}", PConvBlock(widths[i] + widths[i - 1], out_channels if last else widths[i - 1],
                                                   3, 1, 1, bias=last, batch_norm=not last,
                                                   activation=None if last else "leaky"))

    # --------------------------------------------------------------------------------------------
    # configuration
    # --------------------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (``2**layers``)."""
        return 2 ** self.layers

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this network (stored in checkpoints)."""
        return {
            "layers": self.layers, "in_channels": self.in_channels, "out_channels": self.out_channels,
            "base_channels": self.base_channels, "max_channels": self.max_channels,
        }

    def freeze_encoder_bn(self, frozen: bool = True) -> "PConvUNet":
        """Fine-tune mode: keep the encoder's BatchNorm in eval mode even under ``model.train()``.

        The paper fine-tunes with the encoder's BatchNorm statistics frozen (their running mean and
        variance are used and not updated) so that hole pixels, which are zero, do not shift them.
        Decoder BatchNorm keeps training. Affine BN parameters still receive gradients; freeze
        them with ``requires_grad_(False)`` if you want that too.

        Args:
            frozen: True to freeze, False to return to ordinary training.

        Returns:
            self, with the current train/eval mode re-applied.

        Example:
            >>> from fastinpaint.nn import PConvUNet
            >>> net = PConvUNet().freeze_encoder_bn().train()
            >>> net.enc_2.bn.training, net.dec_2.bn.training
            (False, True)
        """
        self.encoder_bn_frozen = bool(frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "PConvUNet":
        super().train(mode)
        if mode and self.encoder_bn_frozen:
            for i in range(1, self.layers + 1):
                block = getattr(self, f"enc_{i}")
                if block.bn is not None:
                    block.bn.eval()
        return self

    # --------------------------------------------------------------------------------------------
    # forward
    # --------------------------------------------------------------------------------------------
    def _check_inputs(self, image: Tensor, mask: Tensor) -> None:
        if not isinstance(image, Tensor) or not isinstance(mask, Tensor):
            raise TypeError("PConvUNet: image and mask must be torch.Tensors")
        if image.dim() != 4:
            raise ValueError(f"PConvUNet: image must be (N, {self.in_channels}, H, W), got shape {tuple(image.shape)}")
        if image.shape[1] != self.in_channels:
            raise ValueError(f"PConvUNet: image has {image.shape[1]} channels, the network takes {self.in_channels}")
        if mask.dim() != 4:
            raise ValueError(f"PConvUNet: mask must be (N, 1, H, W) with 1 = valid, got shape {tuple(mask.shape)}")
        if mask.shape[1] not in (1, self.in_channels):
            raise ValueError(
                f"PConvUNet: mask has {mask.shape[1]} channels; it must have 1 (shared by all image channels) "
                f"or {self.in_channels} (one per image channel)"
            )
        if mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
            raise ValueError(
                f"PConvUNet: mask shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)} "
                f"(batch size and H, W must agree)"
            )

    def forward(self, image: Tensor, mask: Tensor, return_mask: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Runs the network.

        Args:
            image: ``(N, in_channels, H, W)`` (ImageNet-normalised for published weights).
            mask: ``(N, 1, H, W)`` or ``(N, in_channels, H, W)``, **1 = valid, 0 = hole**.
            return_mask: also return the final updated mask.

        Returns:
            The raw network output ``(N, out_channels, H, W)`` (not composited: known pixels are
            the network's reconstruction, compose with the input yourself or use
            ``inpaint_pconv``), and with ``return_mask`` the updated mask ``(N, 1, H, W)``.
        """
        self._check_inputs(image, mask)
        h, w = image.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        mask = mask.to(image.dtype)
        if pad_h or pad_w:
            channels_last = image.dim() == 4 and not image.is_contiguous() and image.is_contiguous(
                memory_format=torch.channels_last)
            image = F.pad(image, (0, pad_w, 0, pad_h))
            if channels_last:  # keep the caller's layout through the network
                image = image.contiguous(memory_format=torch.channels_last)
            mask = F.pad(mask, (0, pad_w, 0, pad_h))  # padding is hole: it carries no information

        feats: List[Optional[Tensor]] = [image]
        masks: List[Optional[Tensor]] = [mask]
        x, x_mask = image, mask
        for i in range(1, self.layers + 1):
            x, x_mask = getattr(self, f"enc_{i}")(x, x_mask)
            feats.append(x)
            masks.append(x_mask)
        del image, mask
        for i in range(self.layers, 0, -1):
            skip, skip_mask = feats[i - 1], masks[i - 1]
            feats[i - 1] = masks[i - 1] = None  # type: ignore[call-overload]  # free each skip once used
            # one single-channel mask per channel group: [upsampled | skip]; the image-level skip
            # may carry a per-channel mask (one group per image channel)
            groups = [x.shape[1]] + ([skip.shape[1]] if skip_mask.shape[1] == 1 else [1] * skip_mask.shape[1])
            # [upsampled | skip] is written straight into one buffer (no upsampled temporary, no
            # torch.cat copy): the decoder's peak memory is this buffer plus the layer's output.
            x_in = _concat_upsampled(x, skip)
            m_in = torch.cat([F.interpolate(x_mask, scale_factor=2.0, mode="nearest"), skip_mask], 1)
            del x, x_mask, skip, skip_mask
            # The concatenation is our own temporary: mask it in place, so that the op convolves
            # it as it is instead of writing an equally large masked copy (peak memory).
            start = 0
            for s, count in enumerate(groups):
                x_in[:, start : start + count].mul_(m_in[:, s : s + 1])
                start += count
            x, x_mask = getattr(self, f"dec_{i}")(x_in, m_in, groups, input_masked=True)
            del x_in, m_in
        if pad_h or pad_w:
            x, x_mask = x[..., :h, :w], x_mask[..., :h, :w]
        return (x, x_mask) if return_mask else x

    # --------------------------------------------------------------------------------------------
    # checkpoints
    # --------------------------------------------------------------------------------------------
    # written and read by the functions of fastinpaint.nn._checkpoint, which documents the header
    _write_checkpoint = staticmethod(_checkpoint.pconv_checkpoint)
    _read_checkpoint = staticmethod(_checkpoint.pconv_from_checkpoint)
