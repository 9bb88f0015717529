"""Loading trained inpainting networks: fastinpaint's own checkpoints and published ones.

:func:`load_pconv_checkpoint` reads

* fastinpaint's own PConvUNet files (written by :meth:`fastinpaint.nn.PConvUNet.save`), and
* checkpoints of the widely used PyTorch reimplementation of Liu et al. 2018
  (naoto0804/pytorch-inpainting-with-partial-conv): ``{'n_iter', 'model': state_dict,
  'optimizer'}`` with keys ``enc_1.conv.input_conv.weight``, ``enc_1.conv.mask_conv.weight``,
  ``enc_2.bn.running_mean``, ... That code renormalises by ``1/sum(M)``; the paper (and
  fastinpaint's op) by ``sum(1)/sum(M)``, so each ``input_conv.weight`` is divided by
  ``C_in·kh·kw`` on loading (biases unchanged), which gives the same outputs exactly.

Everything is read with ``torch.load(weights_only=True)``: no code from the file runs.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from fastinpaint.nn.pconv_unet import CHECKPOINT_FORMAT, PConvUNet, parse_normalization

__all__ = ["load_pconv_checkpoint", "convert_reimplementation_state_dict"]

_PathLike = Union[str, os.PathLike]

_REIMPL_KEY = re.compile(r"^(enc|dec)_(\d+)\.(conv\.input_conv\.weight|conv\.input_conv\.bias|conv\.mask_conv\.weight|"
                         r"bn\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def _torch_load(path: _PathLike, map_location: Union[str, torch.device, None] = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"'{path}' cannot be loaded safely (torch.load weights_only=True refused it: it holds objects other "
            f"than tensors and plain containers, or is not a PyTorch checkpoint at all): {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"'{path}' is not a readable PyTorch checkpoint: {str(e).splitlines()[0]}") from None


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _reimplementation_architecture(state: Mapping[str, Tensor], source: str) -> Dict[str, int]:
    levels = sorted({int(m.group(2)) for k in state if (m := _REIMPL_KEY.match(k)) and m.group(1) == "enc"})
    if not levels or levels != list(range(1, levels[-1] + 1)):
        raise ValueError(f"{source}: encoder levels {levels} are not enc_1..enc_L")
    try:
        first = state["enc_1.conv.input_conv.weight"]
        last = state["dec_1.conv.input_conv.weight"]
    except KeyError as e:
        raise ValueError(f"{source}: missing key {e.args[0]!r} needed to infer the architecture") from None
    layers = levels[-1]
    base = int(first.shape[0])
    deepest = state.get(f"enc_{layers}.conv.input_conv.weight")
    max_channels = int(deepest.shape[0]) if deepest is not None else 512
    return {"layers": layers, "in_channels": int(first.shape[1]), "out_channels": int(last.shape[0]),
            "base_channels": base, "max_channels": max_channels}


def convert_reimplementation_state_dict(state: Mapping[str, Tensor], model: PConvUNet,
                                        source: str = "state dict") -> Dict[str, Tensor]:
    """Converts a naoto0804-reimplementation state dict into ``model``'s keys and renormalisation.

    ``X.conv.input_conv.weight`` → ``X.conv.weight`` divided by ``C_in·kh·kw``;
    ``X.conv.input_conv.bias`` → ``X.conv.bias``; ``X.bn.*`` unchanged; ``X.conv.mask_conv.weight``
    is checked to be all ones (the reimplementation's fixed window-sum kernel) and dropped.

    Args:
        state: the reimplementation's ``state_dict`` (the checkpoint's ``'model'`` entry).
        model: the network whose keys and shapes to produce.
        source: name used in error messages.

    Returns:
        A state dict for ``model.load_state_dict`` (``num_batches_tracked`` filled with 0 where
        the checkpoint lacks it).

    Raises:
        ValueError: naming every unknown key, missing key and shape mismatch.

    Example:
        >>> ckpt = torch.load("pconv.pth", weights_only=True)
        >>> net = PConvUNet(layers=7)
        >>> net.load_state_dict(convert_reimplementation_state_dict(ckpt["model"], net))
    """
    expected = model.state_dict()
    out: Dict[str, Tensor] = {}
    unknown: List[str] = []
    problems: List[str] = []
    for key, value in state.items():
        m = _REIMPL_KEY.match(key)
        if m is None or not isinstance(value, Tensor):
            unknown.append(key)
            continue
        prefix, rest = f"{m.group(1)}_{m.group(2)}", m.group(3)
        if rest == "conv.mask_conv.weight":
            if not bool(torch.all(value == 1)):
                problems.append(f"{key} is not all ones (the reimplementation's window-sum kernel), so its "
                                f"renormalisation cannot be converted")
            continue
        if rest == "conv.input_conv.weight":
            target = f"{prefix}.conv.weight"
            if value.dim() == 4:
                value = value / float(value.shape[1] * value.shape[2] * value.shape[3])
        elif rest == "conv.input_conv.bias":
            target = f"{prefix}.conv.bias"
        else:
            target = f"{prefix}.{rest}"
        if target not in expected:
            unknown.append(key)
            continue
        if tuple(value.shape) != tuple(expected[target].shape):
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {tuple(expected[target].shape)}")
            continue
        out[target] = value.to(expected[target].dtype)
    missing = []
    for target, ref in expected.items():
        if target in out:
            continue
        if target.endswith("num_batches_tracked"):
            out[target] = torch.zeros_like(ref)
            continue
        original = target.replace(".conv.weight", ".conv.input_conv.weight").replace(".conv.bias", ".conv.input_conv.bias")
        if not any(original in p for p in problems):
            missing.append(original)
    if unknown or missing or problems:
        parts = []
        if unknown:
            parts.append(f"unknown keys {unknown}")
        if missing:
            parts.append(f"missing keys {missing}")
        parts.extend(problems)
        raise ValueError(f"{source} does not fit a PConvUNet{tuple(model.architecture().values())}: " + "; ".join(parts))
    return out


def load_pconv_checkpoint(path: _PathLike, map_location: Union[str, torch.device, None] = "cpu",
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
        >>> net = load_pconv_checkpoint("pretrained_pconv.pth")   # {'model': ..., 'n_iter': ...}
        >>> out = net(normalised_image, valid_mask)
    """
    source = f"'{os.fspath(path)}'"
    ckpt = _torch_load(path, map_location)
    if isinstance(ckpt, Mapping) and ckpt.get("format") == CHECKPOINT_FORMAT:
        net = PConvUNet.from_checkpoint(ckpt, source=source)
        if normalization is not None:
            net.normalization = parse_normalization(normalization, net.in_channels)
        return net.eval()
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{source} is not a PConvUNet checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    if "format" in ckpt:
        raise ValueError(f"{source} is a {ckpt['format']!r} file, not a PConvUNet checkpoint")
    state = ckpt.get("model", ckpt)
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: its 'model' entry is a {type(state).__name__}, not a state dict")
    state = _strip_prefix(state, "module.")
    if not any(isinstance(k, str) and _REIMPL_KEY.match(k) for k in state):
        keys = list(state)[:6]
        raise ValueError(
            f"{source} is not a PConvUNet checkpoint: expected a fastinpaint file (format={CHECKPOINT_FORMAT!r}) or the "
            f"reimplementation's {{'model': state_dict, 'n_iter', 'optimizer'}} with keys like "
            f"'enc_1.conv.input_conv.weight'; found keys {keys}"
        )
    arch = _reimplementation_architecture(state, source)
    net = PConvUNet(**arch, normalization=normalization)
    net.load_state_dict(convert_reimplementation_state_dict(state, net, source))
    return net.eval()
