"""Self-describing network checkpoints, shared by the networks of fastinpaint.nn.

A file is a ``torch.save`` of a dict with a header — ``format`` (e.g. ``"fastinpaint.PConvUNet"``),
``version``, ``architecture`` (the constructor arguments), network-specific entries — and the
``state_dict``; only plain types and tensors, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Union

import torch
from torch import nn


def check_header(ckpt: Any, fmt: str, max_version: int, source: str, hint: str = "") -> Mapping[str, Any]:
    """Validates format and version; returns the ``architecture`` mapping. ``hint`` is appended to
    the wrong-format message (e.g. how to load another kind of file)."""
    kind = fmt.rsplit(".", 1)[-1]  # "fastinpaint.PConvUNet" -> "PConvUNet"
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != fmt:
        if not hint and isinstance(ckpt, Mapping) and "format" in ckpt:
            hint = f" Its format is {ckpt.get('format')!r}."
        raise ValueError(f"{source} is not a fastinpaint {kind} checkpoint (no format={fmt!r} header).{hint}")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > max_version:
        raise ValueError(f"{source} has {kind} checkpoint version {version!r}; this fastinpaint reads up to "
                         f"{max_version} (upgrade fastinpaint)")
    arch = ckpt.get("architecture")
    if not isinstance(arch, Mapping):
        raise ValueError(f"{source} has no 'architecture' header")
    return arch


def build(cls: type, arch: Mapping[str, Any], source: str, **extra: Any) -> nn.Module:
    """``cls(**arch, **extra)``, with unknown constructor arguments reported as a ValueError."""
    try:
        return cls(**dict(arch), **extra)
    except TypeError as e:
        raise ValueError(f"{source}: unknown architecture arguments {dict(arch)}: {e}") from None


def load_state(net: nn.Module, ckpt: Mapping[str, Any], source: str) -> None:
    """Loads ``ckpt['state_dict']`` strictly (a missing ``num_batches_tracked`` is tolerated)."""
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping):
        raise ValueError(f"{source} has no 'state_dict'")
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{source} does not match its architecture header: missing keys {missing}, "
                         f"unexpected keys {list(unexpected)}")


def read(path: Union[str, os.PathLike], map_location: Union[str, torch.device, None]) -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors (see fastinpaint.models)."""
    from fastinpaint.models import _torch_load  # local: fastinpaint.models imports the networks

    return _torch_load(path, map_location)


def state_dict_cpu(net: nn.Module, half: bool = False) -> Mapping[str, torch.Tensor]:
    """The state dict on the CPU. ``half=True`` stores the float parameters (convolution and
    normalisation weights) in float16, halving the file; buffers such as BatchNorm's running
    variance stay in their dtype, since their small values would lose precision or underflow.
    Loading converts back to the network's dtype (``load_state_dict`` copies with a cast)."""
    params = {name for name, _ in net.named_parameters()}
    out = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu()
        out[k] = v.half() if half and k in params and v.is_floating_point() else v
    return out
