"""PConvUNet in the trainer: registers ``MODELS["pconv"]`` (``fastinpaint train --model pconv``).

The trainer speaks [0, 1] images with holes zeroed and valid masks (1 = valid); PConvUNet and
its published weights work on ImageNet-normalised images. :class:`UnitRangePConvUNet` converts at
the boundary, so checkpoints hold a plain PConvUNet (``model.net.save(path)`` exports it for
``fastinpaint inpaint --method pconv --weights``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from fastinpaint.losses import InpaintingLoss
from fastinpaint.nn.pconv_unet import PConvUNet
from fastinpaint.training.run import MODELS

__all__ = ["UnitRangePConvUNet", "make_pconv"]

# Loss terms that need a feature extractor (VGG16 by default).
_FEATURE_TERMS = ("perceptual", "style")


class UnitRangePConvUNet(nn.Module):
    """``forward(image01, valid) -> image01`` around a PConvUNet on normalised images."""

    def __init__(self, net: PConvUNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(net.normalization["mean"]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(net.normalization["std"]).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def forward(self, image: Tensor, valid: Tensor) -> Tensor:
        return self.net(self.normalize(image), valid) * self.std + self.mean

    def export(self, path) -> None:
        """Writes the bare PConvUNet (fastinpaint's checkpoint format, for ``--weights``)."""
        self.net.save(path)


class _NoFeatures(nn.Module):
    """Feature extractor for runs whose perceptual and style weights are all zero (no VGG16)."""

    def forward(self, x: Tensor):
        return []


def make_pconv(cfg: Dict[str, Any]) -> Tuple[nn.Module, Callable]:
    """Factory for ``MODELS["pconv"]``: ``model_options`` go to :class:`PConvUNet` (``layers``,
    ``base_channels``, ...); ``finetune`` freezes the encoder's BatchNorm; ``loss_weights`` override
    the published ones — with perceptual and style weights set to 0 no VGG16 weights are needed."""
    options = dict(cfg.get("model_options") or {})
    net = PConvUNet(**options)
    if cfg.get("finetune"):
        net.freeze_encoder_bn(True)
    model = UnitRangePConvUNet(net)
    weights = dict(cfg.get("loss_weights") or {})
    needs_features = any(weights.get(term, 1.0) != 0 for term in _FEATURE_TERMS)
    try:
        loss = InpaintingLoss(extractor=None if needs_features else _NoFeatures(), weights=weights)
    except FileNotFoundError as err:  # no VGG16 weights: say how to train without them
        raise FileNotFoundError(f"{err} Or train without the perceptual and style terms (the ones that need "
                                "VGG16): set `loss_weights = {perceptual = 0, style = 0}` in the config file "
                                "(loss_weights has no flag).") from None

    def loss_fn(output: Tensor, target: Tensor, valid: Tensor) -> Dict[str, Tensor]:
        return loss(model.normalize(output), model.normalize(target), valid)

    return model, loss_fn


MODELS["pconv"] = make_pconv
