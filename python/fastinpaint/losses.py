"""The inpainting loss of Liu et al. 2018 and its default VGG16 feature extractor.

.. math::
    L = 1·L_{valid} + 6·L_{hole} + 0.05·L_{perceptual} + 120·(L_{style,out} + L_{style,comp}) + 0.1·L_{tv}

with :math:`I_{comp} = M ⊙ I_{gt} + (1 - M) ⊙ I_{out}` and the perceptual and style terms on the
pool1, pool2 and pool3 features of a VGG16 (ImageNet weights).
"""

from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InpaintingLoss", "VGG16Features", "gram_matrix", "total_variation", "DEFAULT_LOSS_WEIGHTS",
           "VGG16_WEIGHTS_FILE", "VGG16_WEIGHTS_URL"]

#: The published weights of the terms (the paper's, also the reimplementation's).
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style": 120.0, "tv": 0.1}
#: File name of torchvision's ImageNet VGG16 weights in the torch hub cache.
VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"
VGG16_WEIGHTS_URL = "https://download.pytorch.org/models/" + VGG16_WEIGHTS_FILE

# torchvision's vgg16().features up to pool3: conv widths, "M" = 2×2 max pool
_VGG16_UP_TO_POOL3 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of feature maps normalised by ``C·H·W``, computed in float32 (also under autocast).

    Args:
        features: ``(N, C, H, W)``.

    Returns:
        ``(N, C, C)`` float32: ``F Fᵀ / (C·H·W)`` with ``F`` the ``(N, C, H·W)`` reshaped features.

    Example:
        >>> import torch
        >>> from fastinpaint.losses import gram_matrix
        >>> gram_matrix(torch.ones(1, 2, 2, 2))
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    n, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / float(c * h * w)


def total_variation(image: Tensor, region: Optional[Tensor] = None) -> Tensor:
    """Anisotropic L1 total variation.

    Args:
        image: ``(N, C, H, W)``.
        region: None for the whole image: the mean absolute horizontal difference plus the mean
            absolute vertical one (the reimplementation's form). Otherwise an ``(N, 1, H, W)``
            0/1 map: only pairs of neighbours that both lie in it count, and the sum is divided
            by ``image.numel()`` (the paper's form, ``N_{I_comp}``).

    Returns:
        A scalar tensor.

    Example:
        >>> import torch
        >>> from fastinpaint.losses import total_variation
        >>> img = torch.tensor([[[[0.0, 2.0], [0.0, 0.0]]]])
        >>> total_variation(img)                       # mean |dx| + mean |dy| = 1 + 1
        tensor(2.)
        >>> total_variation(img, torch.ones(1, 1, 2, 2))   # (2 + 2) / 4 elements
        tensor(1.)
    """
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    if region is None:
        return dx.mean() + dy.mean()
    region = region.to(image.dtype)
    wx = region[..., :, 1:] * region[..., :, :-1]
    wy = region[..., 1:, :] * region[..., :-1, :]
    return ((dx * wx).sum() + (dy * wy).sum()) / image.numel()


def default_vgg16_weights_path() -> str:
    """Where the VGG16 ImageNet weights are looked for: ``<torch hub dir>/checkpoints/vgg16-397923af.pth``.

    The hub dir is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``), as torchvision uses.
    """
    return os.path.join(torch.hub.get_dir(), "checkpoints", VGG16_WEIGHTS_FILE)


class VGG16Features(nn.Module):
    """VGG16 (torchvision layout) up to pool3, returning the pool1, pool2 and pool3 features.

    Built here layer by layer (``self.features`` has torchvision's ``vgg16().features`` indices
    0–16, so its weight keys are torchvision's) so that torchvision need not be importable.
    ImageNet weights are read from the local torch hub cache, never downloaded. The parameters
    are frozen (``requires_grad=False``) and the module stays in eval mode.

    Args:
        weights: path of torchvision's ``vgg16-397923af.pth`` (default: the torch hub cache,
            :func:`default_vgg16_weights_path`); or None with ``pretrained=False``.
        pretrained: False builds a randomly initialised network (only useful for tests/shapes).

    Raises:
        FileNotFoundError: the weights file is absent; the message says how to obtain it.

    Shape:
        - input ``(N, 3, H, W)`` ImageNet-normalised (``(N, 1, H, W)`` is repeated to 3 channels)
        - output list of ``(N, 64, H/2, W/2)``, ``(N, 128, H/4, W/4)``, ``(N, 256, H/8, W/8)``

    Example:
        >>> import torch
        >>> from fastinpaint.losses import VGG16Features
        >>> vgg = VGG16Features(pretrained=False)  # VGG16Features(): ImageNet weights, from the torch hub cache
        >>> [f.shape[1] for f in vgg(torch.randn(1, 3, 64, 64))]
        [64, 128, 256]
    """

    def __init__(self, weights: Union[str, os.PathLike, None] = None, pretrained: bool = True) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = 3
        self.pool_indices: List[int] = []
        for spec in _VGG16_UP_TO_POOL3:
            if spec == "M":
                self.pool_indices.append(len(layers))
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(spec), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(spec)
        self.features = nn.Sequential(*layers)
        if pretrained:
            self.load_imagenet_weights(weights)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def load_imagenet_weights(self, weights: Union[str, os.PathLike, None] = None) -> None:
        """Loads torchvision's VGG16 ImageNet weights (``features.0`` … ``features.14``) from a local file."""
        path = os.fspath(weights) if weights is not None else default_vgg16_weights_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"VGG16 ImageNet weights not found at '{path}'. The default InpaintingLoss feature extractor needs "
                f"torchvision's {VGG16_WEIGHTS_FILE}; fastinpaint never downloads at run time. Obtain it with "
                f"`python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` (fills the "
                f"torch hub cache) or download {VGG16_WEIGHTS_URL} into {os.path.dirname(path)} (or set $TORCH_HOME), "
                f"pass VGG16Features(weights=PATH), or give InpaintingLoss your own extractor."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        ours = self.state_dict()
        picked = {k: v for k, v in state.items() if k in ours}
        missing = sorted(set(ours) - set(picked))
        if missing:
            raise ValueError(f"'{path}' is not torchvision's VGG16 weights file: it lacks {missing}")
        bad = [k for k in picked if picked[k].shape != ours[k].shape]
        if bad:
            raise ValueError(f"'{path}' is not torchvision's VGG16 weights file: wrong shapes for {bad}")
        self.load_state_dict(picked)

    def train(self, mode: bool = True) -> "VGG16Features":
        return super().train(False)  # a frozen extractor: always eval

    def forward(self, x: Tensor) -> List[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.pool_indices:
                out.append(x)
        return out


class InpaintingLoss(nn.Module):
    r"""The loss of Liu et al. 2018, with every term returned for logging.

    Terms (L1 terms are means over all elements, "size-averaged"):

    * ``valid``: ``|M ⊙ (I_out - I_gt)|``; ``hole``: ``|(1 - M) ⊙ (I_out - I_gt)|``
    * ``perceptual``: ``Σ_p |ψ_p(I_out) - ψ_p(I_gt)| + |ψ_p(I_comp) - ψ_p(I_gt)|``
    * ``style_out``: ``Σ_p |G(ψ_p(I_out)) - G(ψ_p(I_gt))|``; ``style_comp`` likewise with
      ``I_comp``. ``G`` is the Gram matrix normalised by ``C·H·W``, computed in float32 even
      under autocast.
    * ``tv`` on ``I_comp``: ``tv_region="hole"`` (default, the paper) counts neighbour pairs inside
      the 1-pixel dilation of the hole and divides by ``I_comp.numel()``; ``"image"`` (the
      reimplementation) is the mean absolute difference over the whole composite.
    * ``total``: ``Σ weight·term`` with ``style`` weighting ``style_out + style_comp``.

    Args:
        extractor: module mapping an image batch to a list of feature maps ``ψ_p``; default
            :class:`VGG16Features` (pool1–pool3, ImageNet weights from the local torch hub cache;
            a clear error if absent). Its parameters get no gradient from this loss's owner unless
            they require grad.
        weights: overrides of :data:`DEFAULT_LOSS_WEIGHTS` (keys ``valid``, ``hole``,
            ``perceptual``, ``style``, ``tv``).
        tv_region: ``"hole"`` or ``"image"``, see above.

    Mask convention: **1 = valid, 0 = hole**, as the network's.

    Shape:
        - output, target ``(N, C, H, W)`` — in the space the extractor expects (ImageNet-normalised
          for the default VGG16, which is also the space the published network works in)
        - mask ``(N, 1, H, W)`` or ``(N, C, H, W)``
        - returns a dict of scalar tensors

    Example:
        >>> import torch
        >>> from fastinpaint.losses import InpaintingLoss, VGG16Features
        >>> from fastinpaint.nn import PConvUNet
        >>> net = PConvUNet(layers=4, base_channels=8, max_channels=16)
        >>> image = torch.rand(2, 3, 64, 64)
        >>> mask = torch.ones(2, 1, 64, 64); mask[..., 16:40, 20:44] = 0      # 1 = valid
        >>> # (the default extractor is VGG16Features() with ImageNet weights; any module will do)
        >>> loss_fn = InpaintingLoss(extractor=VGG16Features(pretrained=False), tv_region="image")
        >>> terms = loss_fn(net(image * mask, mask), image, mask)
        >>> terms["total"].backward()
        >>> sorted(terms)
        ['hole', 'perceptual', 'style_comp', 'style_out', 'total', 'tv', 'valid']
    """

    def __init__(self, extractor: Optional[nn.Module] = None, weights: Optional[Mapping[str, float]] = None,
                 tv_region: str = "hole") -> None:
        super().__init__()
        if tv_region not in ("hole", "image"):
            raise ValueError(f"InpaintingLoss: tv_region must be 'hole' (the paper) or 'image' (the reimplementation), "
                             f"got {tv_region!r}")
        unknown = set(weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"InpaintingLoss: unknown loss weights {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **{k: float(v) for k, v in (weights or {}).items()}}
        self.tv_region = tv_region
        self.extractor = extractor if extractor is not None else VGG16Features()

    def _features(self, x: Tensor) -> Sequence[Tensor]:
        feats = self.extractor(x)
        if isinstance(feats, Tensor):
            feats = [feats]
        return feats

    def forward(self, output: Tensor, target: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        """Computes the terms.

        Args:
            output: the network's prediction ``I_out``.
            target: the ground truth ``I_gt``.
            mask: 1 = valid, 0 = hole.

        Returns:
            ``{"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"}``, unweighted
            terms plus the weighted ``total``.
        """
        if output.shape != target.shape or output.dim() != 4:
            raise ValueError(f"InpaintingLoss: output {tuple(output.shape)} and target {tuple(target.shape)} must be "
                             f"(N, C, H, W) of the same shape")
        if (mask.dim() != 4 or mask.shape[0] != output.shape[0] or mask.shape[2:] != output.shape[2:]
                or mask.shape[1] not in (1, output.shape[1])):
            raise ValueError(f"InpaintingLoss: mask shape {tuple(mask.shape)} must be (N, 1, H, W) or (N, C, H, W) "
                             f"for output {tuple(output.shape)}")
        mask = mask.to(output.dtype)
        hole = 1 - mask
        terms: Dict[str, Tensor] = {}
        terms["valid"] = (mask * (output - target)).abs().mean()
        terms["hole"] = (hole * (output - target)).abs().mean()
        comp = mask * target + hole * output

        feat_out, feat_comp = self._features(output), self._features(comp)
        with torch.no_grad():
            feat_gt = [f.detach() for f in self._features(target)]
        perceptual = output.new_zeros((), dtype=torch.float32)
        style_out = output.new_zeros((), dtype=torch.float32)
        style_comp = output.new_zeros((), dtype=torch.float32)
        for fo, fc, fg in zip(feat_out, feat_comp, feat_gt):
            perceptual = perceptual + (fo - fg).abs().mean().float() + (fc - fg).abs().mean().float()
            g_gt = gram_matrix(fg)
            style_out = style_out + (gram_matrix(fo) - g_gt).abs().mean()
            style_comp = style_comp + (gram_matrix(fc) - g_gt).abs().mean()
        terms["perceptual"], terms["style_out"], terms["style_comp"] = perceptual, style_out, style_comp

        if self.tv_region == "hole":
            region = F.max_pool2d(hole.amax(dim=1, keepdim=True), kernel_size=3, stride=1, padding=1)
            terms["tv"] = total_variation(comp, region)
        else:
            terms["tv"] = total_variation(comp)

        w = self.weights
        terms["total"] = (w["valid"] * terms["valid"].float() + w["hole"] * terms["hole"].float()
                          + w["perceptual"] * perceptual + w["style"] * (style_out + style_comp)
                          + w["tv"] * terms["tv"].float())
        return terms
