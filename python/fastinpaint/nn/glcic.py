"""GLCIC: "Globally and Locally Consistent Image Completion" (Iizuka, Simo-Serra, Ishikawa 2017).

* :class:`GLCIC` — the completion network: a convolutional encoder that downsamples 4×, four
  dilated 3×3 convolutions (dilation 2, 4, 8, 16), a decoder with two 4×4 transposed
  convolutions back to full resolution and a sigmoid output. BatchNorm + ReLU after every layer
  but the last. Its input is the image with the hole filled by a constant mean colour, plus the
  hole mask as a fourth channel (**1 = hole**). Fully convolutional: any ``H, W`` (padded
  internally to a multiple of 4 and cropped back).
* :class:`GlobalDiscriminator` (whole image) and :class:`LocalDiscriminator` (a patch around the
  hole): strided 5×5 convolutions and a fully connected layer each;
  :class:`GLCICDiscriminator` concatenates their 1024-d outputs and a last fully connected layer
  gives one real/fake logit. They are built for one training size (``image_size``,
  ``local_size``) because of their fully connected layers.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastinpaint.nn import _checkpoint
from fastinpaint.smooth_fill import pushpull_fill

__all__ = ["GLCIC", "GlobalDiscriminator", "LocalDiscriminator", "GLCICDiscriminator",
           "GLCIC_CHECKPOINT_FORMAT", "GLCIC_CHECKPOINT_VERSION", "DEFAULT_FILL_MEAN"]

#: The ``format`` field of fastinpaint's GLCIC checkpoints (see :meth:`GLCIC.save`).
GLCIC_CHECKPOINT_FORMAT = _checkpoint.GLCIC_FORMAT
#: Version of that format; :meth:`GLCIC.load` refuses newer ones.
GLCIC_CHECKPOINT_VERSION = _checkpoint.GLCIC_VERSION
#: Default colour the hole is filled with before the network sees it (the ImageNet mean pixel,
#: a stand-in for the training set's mean; pass ``fill_mean`` to use your data set's).
DEFAULT_FILL_MEAN = (0.485, 0.456, 0.406)
#: What the hole holds in the completion network's input: the constant ``fill_mean`` (the paper's)
#: or ``"pushpull"``, a smooth fill from the known pixels (known averages from ever coarser scales,
#: upsampled), which gives the network the surrounding colours instead of a grey it must recolour.
PREFILLS = ("mean", "pushpull")


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _deconv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # 4x4, stride 2, padding 1: exactly doubles H and W
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _as_pair(size: Union[int, Sequence[int]], name: str, owner: str) -> Tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{owner}: {name} must be a positive int or (H, W), got {size}")
    return size  # type: ignore[return-value]


class GLCIC(_checkpoint.Checkpointable, nn.Module):
    r"""GLCIC completion network (Iizuka et al. 2017), any image size.

    Layers (``width=64`` is the paper's; ``w = width``): conv 5×5 ``w``; conv 3×3 stride 2
    ``2w``; conv 3×3 ``2w``; conv 3×3 stride 2 ``4w``; 2 × conv 3×3 ``4w``; dilated conv 3×3
    ``4w`` with dilation 2, 4, 8, 16; 2 × conv 3×3 ``4w``; deconv 4×4 ×2 ``2w``; conv 3×3
    ``2w``; deconv 4×4 ×2 ``w``; conv 3×3 ``w/2``; conv 3×3 to ``out_channels`` + sigmoid.
    BatchNorm and ReLU after every layer but the output one.

    The input of the first layer is built by :meth:`forward` itself: the image with its hole
    pixels replaced by ``fill_mean``, concatenated with the hole mask (1 = hole, 0 = known).

    Args:
        channels: image channels (3).
        width: channels of the first layer (64 in the paper); small values make test networks.
        fill_mean: the colour (one value per channel, or one for all, in [0, 1]) that replaces
            hole pixels in the input — the training set's mean pixel; default the ImageNet mean.
        prefill: ``"mean"`` (holes hold ``fill_mean``: the paper's input) or ``"pushpull"`` (holes
            hold a push-pull fill from the known pixels; ``fill_mean`` is then used only where an
            image has no known pixel at all). Networks are trained for one of them.

    Shape:
        - image ``(N, C, H, W)`` in [0, 1]; hole ``(N, 1, H, W)`` or ``(N, H, W)``, **1 (non-zero)
          = hole**; any ``H, W`` (padded by replication to a multiple of 4 and cropped back)
        - output ``(N, C, H, W)`` in (0, 1): the network's prediction of the *whole* image (not
          composited; see :meth:`complete`)

    Example:
        >>> import torch
        >>> from fastinpaint.nn import GLCIC
        >>> net = GLCIC(width=8)
        >>> img = torch.rand(2, 3, 37, 53); hole = torch.zeros(2, 1, 37, 53); hole[..., 10:20, 5:30] = 1
        >>> net(img, hole).shape
        torch.Size([2, 3, 37, 53])
    """

    def __init__(self, channels: int = 3, width: int = 64, fill_mean: Optional[Sequence[float]] = None,
                 prefill: str = "mean") -> None:
        super().__init__()
        if prefill not in PREFILLS:
            raise ValueError(f"GLCIC: prefill must be one of {PREFILLS}, got {prefill!r}")
        if channels < 1:
            raise ValueError(f"GLCIC: channels must be >= 1, got {channels}")
        if width < 2:
            raise ValueError(f"GLCIC: width must be >= 2, got {width}")
        fill = list(DEFAULT_FILL_MEAN if fill_mean is None else fill_mean)
        if len(fill) == 1:
            fill = fill * channels
        if len(fill) != channels:
            raise ValueError(f"GLCIC: fill_mean needs 1 or {channels} values, got {len(fill)}")
        self.channels = channels
        self.width = width
        self.fill_mean = [float(v) for v in fill]
        self.prefill = prefill
        w = width
        self.encoder = nn.Sequential(
            _conv_bn_relu(channels + 1, w, 5),
            _conv_bn_relu(w, 2 * w, 3, stride=2),
            _conv_bn_relu(2 * w, 2 * w, 3),
            _conv_bn_relu(2 * w, 4 * w, 3, stride=2),
            _conv_bn_relu(4 * w, 4 * w, 3),
            _conv_bn_relu(4 * w, 4 * w, 3),
        )
        self.dilated = nn.Sequential(*[_conv_bn_relu(4 * w, 4 * w, 3, dilation=d) for d in (2, 4, 8, 16)])
        self.decoder = nn.Sequential(
            _conv_bn_relu(4 * w, 4 * w, 3),
            _conv_bn_relu(4 * w, 4 * w, 3),
            _deconv_bn_relu(4 * w, 2 * w),
            _conv_bn_relu(2 * w, 2 * w, 3),
            _deconv_bn_relu(2 * w, w),
            _conv_bn_relu(w, max(w // 2, 1), 3),
        )
        self.output = nn.Conv2d(max(w // 2, 1), channels, 3, 1, 1)

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments (the ``architecture`` header of :meth:`save`)."""
        arch = {"channels": self.channels, "width": self.width, "fill_mean": list(self.fill_mean)}
        if self.prefill != "mean":  # files of mean-filled networks stay readable by older versions
            arch["prefill"] = self.prefill
        return arch

    @staticmethod
    def _hole_batch(image: Tensor, hole: Tensor, who: str = "GLCIC") -> Tensor:
        """``hole`` as ``(N or 1, 1, H, W)`` for ``image`` ``(N, C, H, W)``; accepts ``(H, W)``,
        ``(N, H, W)`` and ``(N, 1, H, W)``. ``who`` prefixes the error messages."""
        if hole.dim() == 2:
            hole = hole.reshape(1, 1, *hole.shape)
        elif hole.dim() == 3:
            hole = hole.unsqueeze(1)
        if hole.dim() != 4 or hole.shape[1] != 1:
            raise ValueError(f"{who}: hole must be (H, W), (N, H, W) or (N, 1, H, W), got shape {tuple(hole.shape)}")
        if hole.shape[2:] != image.shape[2:]:
            raise ValueError(f"{who}: hole size {tuple(hole.shape[2:])} differs from image size {tuple(image.shape[2:])}")
        if hole.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"{who}: hole batch {hole.shape[0]} differs from image batch {image.shape[0]}")
        return (hole != 0).to(image.dtype).expand(image.shape[0], 1, *image.shape[2:])

    def network_input(self, image: Tensor, hole: Tensor) -> Tensor:
        """The first layer's input: ``image`` with holes set to ``fill_mean`` (or the push-pull fill,
        see ``prefill``), plus the hole mask."""
        if image.dim() != 4 or image.shape[1] != self.channels:
            raise ValueError(f"GLCIC: image must be (N, C, H, W) with C = {self.channels} channels (the network's), "
                             f"got shape {tuple(image.shape)}")
        h = self._hole_batch(image, hole)
        mean = torch.tensor(self.fill_mean, dtype=image.dtype, device=image.device).view(1, -1, 1, 1)
        fill = mean.expand_as(image)
        if self.prefill == "pushpull":
            with torch.no_grad():  # a function of the known pixels only: nothing to learn through
                fill = torch.stack([pushpull_fill(image[i].detach(), h[i, 0] == 0) if bool((h[i, 0] == 0).any())
                                    else fill[i] for i in range(image.shape[0])])
        return torch.cat([image * (1 - h) + fill * h, h], 1)

    def forward(self, image: Tensor, hole: Tensor) -> Tensor:
        x = self.network_input(image, hole)
        h, w = x.shape[2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = self.decoder(self.dilated(self.encoder(x)))
        x = torch.sigmoid(self.output(x))
        return x[..., :h, :w] if (pad_h or pad_w) else x

    def complete(self, image: Tensor, hole: Tensor) -> Tensor:
        """The prediction composited into the image: known pixels exact, holes predicted."""
        h = self._hole_batch(image, hole).bool()
        return torch.where(h, self(image, hole), image)

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
    # written and read by the functions of fastinpaint.nn._checkpoint, which documents the header
    _write_checkpoint = staticmethod(_checkpoint.glcic_checkpoint)
    _read_checkpoint = staticmethod(_checkpoint.glcic_from_checkpoint)


class _StridedDiscriminator(nn.Module):
    """``layers`` × (conv 5×5 stride 2, BatchNorm, ReLU) then a fully connected layer to ``features``."""

    _name = "discriminator"

    def __init__(self, size: Union[int, Sequence[int]], layers: int, channels: int, width: int, features: int) -> None:
        super().__init__()
        self.size = _as_pair(size, "size", type(self).__name__)
        if width < 1 or features < 1:
            raise ValueError(f"{type(self).__name__}: width and features must be >= 1, got {width}, {features}")
        widths = [min(width * 2 ** i, width * 8) for i in range(layers)]
        convs, cin = [], channels
        h, w = self.size
        for cout in widths:
            convs += [nn.Conv2d(cin, cout, 5, 2, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
            h, w = (h + 1) // 2, (w + 1) // 2  # 5x5, stride 2, padding 2
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Linear(cin * h * w, features)
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[2:]) != self.size:
            raise ValueError(f"{type(self).__name__}: built for {self.size[0]}x{self.size[1]} inputs "
                             f"(the {self._name} size it was constructed with), got shape {tuple(x.shape)}; "
                             f"resize or crop to that size, or build it with that size")
        return F.relu(self.fc(self.convs(x).flatten(1)))


class GlobalDiscriminator(_StridedDiscriminator):
    """GLCIC global context discriminator: the whole (completed) image → a ``features``-d vector.

    Six 5×5 stride-2 convolutions (``width``, 2w, 4w, 8w, 8w, 8w; the paper: 64 … 512) with
    BatchNorm and ReLU, then a fully connected layer with ReLU. Because of that layer it takes
    exactly the ``image_size`` it was built for.

    Args:
        image_size: training image size, int or ``(H, W)`` (256 in the paper).
        channels: image channels.
        width: channels of the first convolution.
        features: output size (1024 in the paper).

    Shape:
        - input ``(N, C, H, W)`` with ``(H, W) == image_size``; output ``(N, features)``

    Example:
        >>> import torch
        >>> from fastinpaint.nn.glcic import GlobalDiscriminator
        >>> GlobalDiscriminator(64, width=4, features=16)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 16])
    """

    _name = "image_size"

    def __init__(self, image_size: Union[int, Sequence[int]] = 256, channels: int = 3, width: int = 64,
                 features: int = 1024) -> None:
        super().__init__(image_size, 6, channels, width, features)


class LocalDiscriminator(_StridedDiscriminator):
    """GLCIC local discriminator: a patch around the hole → a ``features``-d vector.

    Five 5×5 stride-2 convolutions (``width`` … 8w; the paper: 64 … 512) with BatchNorm and ReLU,
    then a fully connected layer with ReLU. Takes exactly the ``local_size`` it was built for.

    Args:
        local_size: patch size, int or ``(H, W)`` (128 in the paper).
        channels, width, features: as :class:`GlobalDiscriminator`.

    Shape:
        - input ``(N, C, h, w)`` with ``(h, w) == local_size``; output ``(N, features)``

    Example:
        >>> import torch
        >>> from fastinpaint.nn.glcic import LocalDiscriminator
        >>> LocalDiscriminator(32, width=4, features=16)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 16])
    """

    _name = "local_size"

    def __init__(self, local_size: Union[int, Sequence[int]] = 128, channels: int = 3, width: int = 64,
                 features: int = 1024) -> None:
        super().__init__(local_size, 5, channels, width, features)


class GLCICDiscriminator(nn.Module):
    """The GLCIC context discriminator: global and local discriminators joined by a fully
    connected layer into one real/fake logit (apply ``sigmoid`` / ``BCEWithLogitsLoss``).

    Args:
        image_size: size of the whole training images, int or ``(H, W)`` (256 in the paper).
        local_size: size of the patch around the hole (128 in the paper); at most ``image_size``.
        channels: image channels.
        width: first-layer channels of both discriminators (64 in the paper).
        features: output size of each discriminator's fully connected layer (1024 in the paper).

    Shape:
        - ``image`` ``(N, C, *image_size)``, ``patch`` ``(N, C, *local_size)``; output ``(N, 1)``
          logits. Other sizes raise ``ValueError``.

    Example:
        >>> import torch
        >>> from fastinpaint.nn.glcic import GLCICDiscriminator
        >>> d = GLCICDiscriminator(image_size=64, local_size=32, width=4, features=16)
        >>> d(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 1])
    """

    def __init__(self, image_size: Union[int, Sequence[int]] = 256, local_size: Union[int, Sequence[int]] = 128,
                 channels: int = 3, width: int = 64, features: int = 1024) -> None:
        super().__init__()
        image_size = _as_pair(image_size, "image_size", "GLCICDiscriminator")
        local_size = _as_pair(local_size, "local_size", "GLCICDiscriminator")
        if local_size[0] > image_size[0] or local_size[1] > image_size[1]:
            raise ValueError(f"GLCICDiscriminator: local_size {local_size} is larger than image_size {image_size}")
        self.image_size, self.local_size = image_size, local_size
        self.global_d = GlobalDiscriminator(image_size, channels, width, features)
        self.local_d = LocalDiscriminator(local_size, channels, width, features)
        self.fc = nn.Linear(2 * features, 1)

    def forward(self, image: Tensor, patch: Tensor) -> Tensor:
        return self.fc(torch.cat([self.global_d(image), self.local_d(patch)], 1))
