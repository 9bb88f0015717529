"""``PartialConv2d``: a drop-in for NVIDIA's public layer, running the fused op."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from fastinpaint.ops.partial_conv import partial_conv2d

__all__ = ["PartialConv2d"]


class PartialConv2d(nn.Conv2d):
    r"""Partial convolution layer (Liu et al. 2018) with the ``nn.Conv2d`` constructor.

    Drop-in for NVIDIA's ``PartialConv2d`` (same constructor, ``multi_channel`` and
    ``return_mask`` keywords, ``forward(input, mask_in=None)``), computed by the fused
    :func:`fastinpaint.ops.partial_conv2d`. It keeps no cached state, so batch size, image size,
    dtype and device can change between calls.

    Args:
        *args, **kwargs: as ``nn.Conv2d``, ``padding='same'`` and ``'valid'`` included (an even
            kernel's odd row / column of ``'same'`` at the bottom / right, as ``nn.Conv2d``);
            ``padding_mode='zeros'`` only: the renormalisation counts the padding as holes, so a
            padded pixel must add nothing to the window (pad input and mask yourself, with
            ``padding=0``, for a reflected border that counts as valid).
        multi_channel: the mask given to ``forward`` has one channel per input channel
            ``(N, C_in, H, W)``; otherwise ``(N, 1, H, W)``. Either way a mask with another channel
            count can be passed together with ``mask_channels``.
        return_mask: ``forward`` returns ``(output, updated_mask)`` instead of ``output``.

    Mask convention: **1 = valid, 0 = hole**. ``mask_in=None`` means all valid (the window sums
    still renormalise the zero-padded border, as NVIDIA's layer does).

    Shape:
        - input ``(N, C_in, H, W)``, mask as above
        - output ``(N, C_out, OH, OW)``; updated mask ``(N, C_out, OH, OW)`` with
          ``multi_channel=True`` (as NVIDIA's), else ``(N, 1, OH, OW)``.

    Example:
        >>> import torch
        >>> from fastinpaint.nn import PartialConv2d
        >>> layer = PartialConv2d(3, 16, 3, padding=1, return_mask=True)
        >>> x, mask = torch.randn(1, 3, 64, 64), torch.ones(1, 1, 64, 64)
        >>> mask[..., 20:40, 20:40] = 0
        >>> out, new_mask = layer(x, mask)
        >>> out.shape, new_mask.shape
        (torch.Size([1, 16, 64, 64]), torch.Size([1, 1, 64, 64]))
    """

    def __init__(self, *args, multi_channel: bool = False, return_mask: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            # (NVIDIA's layer takes the mode, reflects the masked input and still counts the border
            # as holes: the reflected pixels are summed but not counted)
            raise ValueError(f"PartialConv2d: padding_mode must be 'zeros', got {self.padding_mode!r}: the partial "
                             f"convolution counts the padding as holes (mask 0), so a padded pixel must add nothing; "
                             f"for a {self.padding_mode} border that counts as valid, pad the input and the mask "
                             f"yourself and use padding=0")
        self.multi_channel = multi_channel
        self.return_mask = return_mask

    def forward(
        self, input: Tensor, mask_in: Optional[Tensor] = None, mask_channels: Optional[Sequence[int]] = None,
        input_masked: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """``input_masked``: see :func:`fastinpaint.ops.partial_conv2d` (skips the masked copy)."""
        # mask_in=None (all valid) is the op's own: it checks the input before making the mask
        out, new_mask = partial_conv2d(
            input, mask_in, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            mask_channels=mask_channels, input_masked=input_masked,
        )
        if self.multi_channel:
            n, g, oh, ow = new_mask.shape
            per = self.out_channels // g
            new_mask = new_mask.unsqueeze(2).expand(n, g, per, oh, ow).reshape(n, self.out_channels, oh, ow)
        return (out, new_mask) if self.return_mask else out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", multi_channel={self.multi_channel}, return_mask={self.return_mask}"
