"""Loading trained inpainting networks: fastinpaint's own checkpoints and published ones.

:func:`load_pconv_checkpoint` reads

* fastinpaint's own PConvUNet files (written by :meth:`fastinpaint.nn.PConvUNet.save`), and
* checkpoints of the widely used PyTorch reimplementation of Liu et al. 2018
  (naoto0804/pytorch-inpainting-with-partial-conv), converted exactly to the paper's
  renormalisation (:func:`convert_reimplementation_state_dict`).

GLCIC files load with :meth:`fastinpaint.nn.GLCIC.load`. The reading, header checks and
conversions of every network's files are in one module, ``fastinpaint.nn._checkpoint``; everything
is read with ``torch.load(weights_only=True)``: no code from the file runs.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import torch

from fastinpaint.nn import _checkpoint
from fastinpaint.nn._checkpoint import convert_reimplementation_state_dict
from fastinpaint.nn.pconv_unet import PConvUNet

__all__ = ["load_pconv_checkpoint", "convert_reimplementation_state_dict"]


def load_pconv_checkpoint(path: Union[str, os.PathLike], map_location: Union[str, torch.device, None] = "cpu",
                          normalization: Optional[Mapping[str, Any]] = None) -> PConvUNet:
    """Loads a PConvUNet from a published (reimplementation) or fastinpaint checkpoint.

    Accepted files (told apart by their contents, read with ``torch.load(weights_only=True)``):

    * the naoto0804 reimplementation's training checkpoints ``{'n_iter', 'model', 'optimizer'}``
      (also a bare state dict of that network, with or without a ``module.`` prefix). The
      architecture (7 or 8 levels, widths) is inferred from the weights; weights are converted
      to the paper's renormalisation exactly; missing ``num_batches_tracked`` is tolerated;
      inputs are taken to be ImageNet-normalised, as in that code;
    * fastinpaint's own files (:meth:`fastinpaint.nn.PConvUNet.save`).

    Args:
        path: the checkpoint file.
        map_location: device for the tensors (default CPU).
        normalization: override the input mean/std recorded in the network
            (``{"mean": [...], "std": [...]}``); default ImageNet for reimplementation files, the
            file's header for fastinpaint files.

    Returns:
        :class:`fastinpaint.nn.PConvUNet` in eval mode. Its mask convention is 1 = valid.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a PyTorch checkpoint, not a PConvUNet checkpoint of either kind,
            or its keys do not fit the network (unknown and missing keys and bad shapes are listed
            by name).

    Example:
        >>> import torch
        >>> from fastinpaint.models import load_pconv_checkpoint
        >>> from fastinpaint.weights import bundled_weights
        >>> # a reimplementation file ({'model': ..., 'n_iter': ...}, e.g. "pretrained_pconv.pth") or
        >>> # one of fastinpaint's, here the bundled weights
        >>> net = load_pconv_checkpoint(bundled_weights("pconv"))
        >>> mean, std = (torch.tensor(net.normalization[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        >>> valid = torch.ones(1, 1, 64, 64); valid[..., 16:40, 20:44] = 0    # 1 = valid
        >>> out = net((torch.rand(1, 3, 64, 64) - mean) / std * valid, valid)  # normalised, holes 0
        >>> out.shape, net.training
        (torch.Size([1, 3, 64, 64]), False)
    """
    return _checkpoint.load_any_pconv(PConvUNet, path, map_location, normalization)
