"""Checkpoint files of fastinpaint's networks, in one place: reading them safely, fastinpaint's own
self-describing format for :class:`~fastinpaint.nn.PConvUNet` and :class:`~fastinpaint.nn.GLCIC`,
and the conversion of published PConvUNet checkpoints.

**Own format.** A file is a ``torch.save`` of a dict with a header — ``format`` (e.g.
``"fastinpaint.PConvUNet"``), ``version``, ``architecture`` (the constructor arguments),
network-specific entries — and the ``state_dict``; only plain types and tensors, so it loads
with ``torch.load(weights_only=True)``.

**Published PConvUNet checkpoints** of the widely used PyTorch reimplementation of Liu et al.
2018 (naoto0804/pytorch-inpainting-with-partial-conv): ``{'n_iter', 'model': state_dict,
'optimizer'}`` with keys ``enc_1.conv.input_conv.weight``, ``enc_1.conv.mask_conv.weight``,
``enc_2.bn.running_mean``, ... That code renormalises by ``1/sum(M)``; the paper (and
fastinpaint's op) by ``sum(1)/sum(M)``, so each ``input_conv.weight`` is divided by
``C_in·kh·kw`` on loading (biases unchanged), which gives the same outputs exactly.

Everything is read with ``torch.load(weights_only=True)``: no code from the file runs.

The networks get their ``checkpoint`` / ``save`` / ``from_checkpoint`` / ``load`` methods from
:class:`Checkpointable`, and :func:`fastinpaint.models.load_pconv_checkpoint` calls
:func:`load_any_pconv`. The network modules import this one, so it does not import them: the
functions that build a network take its class.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, TypeVar, Union

import numpy as np
import torch
from torch import Tensor, nn

_PathLike = Union[str, os.PathLike]
_Device = Union[str, torch.device, None]
_Net = TypeVar("_Net", bound="Checkpointable")

#: The ``format`` field of fastinpaint's own PConvUNet checkpoints.
PCONV_FORMAT = "fastinpaint.PConvUNet"
#: Version of that format; newer ones are refused.
PCONV_VERSION = 1
#: How PConvUNet weights are normalised: the paper's ``sum(1)/sum(M)`` renormalisation of partial
#: convolution (the reimplementation's ``1/sum(M)`` weights are converted on loading).
PCONV_RENORMALIZATION = "paper"
#: The ``format`` field of fastinpaint's GLCIC checkpoints.
GLCIC_FORMAT = "fastinpaint.GLCIC"
#: Version of that format; newer ones are refused.
GLCIC_VERSION = 1


# ------------------------------------------------------------------------------------------------
# reading and writing
# ------------------------------------------------------------------------------------------------
def _numpy_array_globals() -> list:
    """What unpickling a NumPy array needs (its reconstructor, ndarray, dtype and the array's dtype
    class): data, no code. Training checkpoints of fastinpaint <= 0.1 stored NumPy's RNG state
    as an array; newer ones store it as a tensor."""
    return [np.zeros(1, np.uint32).__reduce__()[0], np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read(path: _PathLike, map_location: _Device = "cpu", numpy_arrays: bool = False, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file.
    ``numpy_arrays``: also accept NumPy arrays (older training checkpoints' RNG states). ``mmap``:
    map the tensors' storage instead of reading it (files of ``torch.save``'s zip format, the
    default since PyTorch 1.6; others are read whole): for a look at the header.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a PyTorch checkpoint, or one holding more than tensors and plain containers.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"'{path}' is a folder, not a weights file{_model_pt_hint(path)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    if not _looks_like_torch_file(path):
        raise ValueError(f"'{path}' is not a fastinpaint weights file (not a readable PyTorch checkpoint)")
    try:
        with torch.serialization.safe_globals(_numpy_array_globals() if numpy_arrays else []):
            if mmap:
                try:
                    return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
                except RuntimeError as e:
                    if "zipfile" not in str(e):  # a legacy-format file: read it whole, below
                        raise
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message goes on to advise weights_only=False (it runs the file's code): not repeated,
        # only its line that names what was refused
        refused = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line][:1]
        raise ValueError(
            f"'{path}' is not a fastinpaint weights file: it holds objects other than tensors and plain "
            f"containers, which are not loaded (no code from a file runs){': ' + refused[0] if refused else ''}"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, IndexError, ValueError, TypeError) as e:
        # the weights-only unpickler, fed a file that is not a pickle at all (a text file, say),
        # fails on whatever byte it trips over: KeyError 101 for "hello"
        why = (str(e).splitlines() or [""])[0]
        if isinstance(e, (KeyError, IndexError, TypeError)) or not why:
            why = f"unpickling failed ({type(e).__name__}{': ' + why if why else ''})"
        raise ValueError(f"'{path}' is not a readable PyTorch checkpoint: {why}") from None


def _looks_like_torch_file(path: str) -> bool:
    """Whether the file starts as ``torch.save`` writes: a zip archive (the default since PyTorch
    1.6) or a pickle (the legacy format, protocol 2 or later). A text file, an image, ... does not."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _model_pt_hint(folder: _PathLike) -> str:
    """For a message about ``folder`` given as weights: the weights a training run exported into it
    (``model.pt``), if there are."""
    model = os.path.join(os.fspath(folder), "model.pt")
    return f"; it holds a run's exported weights: {model}" if os.path.isfile(model) else ""


#: The ``format`` of the trainers' checkpoints (``RUN/checkpoints/last.pt``: ``fastinpaint.trainer/1``,
#: ``fastinpaint.glcic-trainer/2``); the trainers are not imported here (they import the networks).
_TRAINER_FORMAT = re.compile(r"^fastinpaint\.([a-z]+-)?trainer/")


def _is_trainer_format(fmt: Any) -> bool:
    return isinstance(fmt, str) and _TRAINER_FORMAT.match(fmt) is not None


def _not_network(source: str, fmt: Any, path: Optional[_PathLike], wanted: str) -> str:
    """The message for a fastinpaint file of another ``format`` given where ``wanted`` network
    weights were expected; a trainer checkpoint is pointed to its run's exported ``model.pt``."""
    if _is_trainer_format(fmt):
        model = "RUN/model.pt"
        if path is not None:  # RUN/checkpoints/last.pt -> RUN/model.pt, where the run wrote it
            folder = os.path.dirname(os.fspath(path))
            if os.path.basename(os.path.abspath(folder)) == "checkpoints":
                exported = os.path.join(os.path.dirname(folder) or ".", "model.pt")
                model = exported if os.path.isfile(exported) else model
        return (f"{source} is a training checkpoint ({fmt!r}, for --resume), not network weights: give the "
                f"weights the run exported, {model}")
    return f"{source} is a {fmt!r} file, not a {wanted} checkpoint"


def _source(path: _PathLike) -> str:
    """How error messages name a file."""
    return f"'{os.fspath(path)}'"


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


def _own_checkpoint(net: nn.Module, fmt: str, version: int, half: bool, **entries: Any) -> Dict[str, Any]:
    """The header (``format``, ``version``, ``architecture``, ``entries``) and the state dict."""
    return {"format": fmt, "version": version, "architecture": net.architecture(), **entries,
            "state_dict": state_dict_cpu(net, half)}


class Checkpointable:
    """The checkpoint methods of a network in fastinpaint's own format (a mixin before
    ``nn.Module``). The network class names its format's two functions of this module:
    ``_write_checkpoint = staticmethod(pconv_checkpoint)`` and
    ``_read_checkpoint = staticmethod(pconv_from_checkpoint)``, say."""

    _write_checkpoint: Callable[[Any, bool], Dict[str, Any]]
    _read_checkpoint: Callable[[type, Any, str], Any]

    def checkpoint(self, half: bool = False) -> Dict[str, Any]:
        """The dict that :meth:`save` writes: a header (``format``, ``version``, ``architecture``
        — the constructor arguments — and the network's own entries) plus the ``state_dict``;
        plain types and tensors only. ``half``: the parameters in float16."""
        return self._write_checkpoint(self, half)

    def save(self, path: _PathLike, half: bool = False) -> None:
        """Writes :meth:`checkpoint` to ``path`` with ``torch.save``; it loads with
        ``torch.load(path, weights_only=True)``.

        Args:
            path: destination file.
            half: store the parameters in float16 (half the size; the bundled weights use it).
                Loading gives a float32 network either way.

        Example:
            >>> import os, tempfile
            >>> from fastinpaint.nn import PConvUNet
            >>> net = PConvUNet(layers=4, base_channels=8, max_channels=16)
            >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
            >>> net.save(path); net2 = PConvUNet.load(path)
            >>> net2.architecture() == net.architecture()
            True
        """
        torch.save(self.checkpoint(half), os.fspath(path))

    @classmethod
    def from_checkpoint(cls: Type[_Net], ckpt: Mapping[str, Any], source: str = "checkpoint") -> _Net:
        """Builds a network from the dict :meth:`checkpoint` returns (see :meth:`load`)."""
        return cls._read_checkpoint(cls, ckpt, source)

    @classmethod
    def load(cls: Type[_Net], path: _PathLike, map_location: _Device = "cpu") -> _Net:
        """Loads a checkpoint written by :meth:`save` (safely: ``torch.load(weights_only=True)``).

        Args:
            path: the file.
            map_location: where to put the tensors (default CPU).

        Returns:
            The network, in eval mode.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a fastinpaint checkpoint of this network, or does not match
                its own header (for the published PConvUNet checkpoints use
                :func:`fastinpaint.models.load_pconv_checkpoint`).
        """
        return cls.from_checkpoint(read(path, map_location), source=_source(path)).eval()


# ------------------------------------------------------------------------------------------------
# the header
# ------------------------------------------------------------------------------------------------
def check_header(ckpt: Any, fmt: str, max_version: int, source: str, hint: str = "") -> Mapping[str, Any]:
    """Validates format and version; returns the ``architecture`` mapping. ``hint`` is appended to
    the message for a file with no fastinpaint header (e.g. how to load another kind of file); a
    file with another header is told its format."""
    kind = fmt.rsplit(".", 1)[-1]  # "fastinpaint.PConvUNet" -> "PConvUNet"
    if isinstance(ckpt, Mapping) and _is_trainer_format(ckpt.get("format")):
        raise ValueError(_not_network(source, ckpt["format"], source.strip("'"), kind))
    if isinstance(ckpt, Mapping) and "format" in ckpt and ckpt["format"] != fmt:
        # another network's header: said as such (it read "no format=... header. Its format is ...")
        raise ValueError(f"{source} is not a fastinpaint {kind} checkpoint: its format is {ckpt['format']!r}, "
                         f"not {fmt!r}")
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != fmt:
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


# ------------------------------------------------------------------------------------------------
# GLCIC
# ------------------------------------------------------------------------------------------------
def glcic_checkpoint(net: nn.Module, half: bool = False) -> Dict[str, Any]:
    """What ``GLCIC.save`` writes: the header (architecture ``channels``, ``width``, ``fill_mean``
    and, unless it is ``"mean"``, ``prefill``) and the state dict."""
    return _own_checkpoint(net, GLCIC_FORMAT, GLCIC_VERSION, half)


def glcic_from_checkpoint(cls: type, ckpt: Any, source: str = "checkpoint") -> nn.Module:
    """A ``cls`` (GLCIC) network from the dict :func:`glcic_checkpoint` returns."""
    arch = check_header(ckpt, GLCIC_FORMAT, GLCIC_VERSION, source)
    net = build(cls, arch, source)
    load_state(net, ckpt, source)
    return net


# ------------------------------------------------------------------------------------------------
# PConvUNet: fastinpaint's files
# ------------------------------------------------------------------------------------------------
def pconv_checkpoint(net: nn.Module, half: bool = False) -> Dict[str, Any]:
    """What ``PConvUNet.save`` writes: the header (architecture, ``renormalization``, input
    ``normalization``, ``encoder_bn_frozen``) and the state dict."""
    return _own_checkpoint(net, PCONV_FORMAT, PCONV_VERSION, half, renormalization=PCONV_RENORMALIZATION,
                           normalization={"mean": list(net.normalization["mean"]),
                                          "std": list(net.normalization["std"])},
                           encoder_bn_frozen=net.encoder_bn_frozen)


def pconv_from_checkpoint(cls: type, ckpt: Any, source: str = "checkpoint") -> nn.Module:
    """A ``cls`` (PConvUNet) network from the dict :func:`pconv_checkpoint` returns."""
    hint = ""
    if isinstance(ckpt, Mapping) and "model" in ckpt and "n_iter" in ckpt:
        hint = (" It looks like a checkpoint of the naoto0804 PyTorch reimplementation; load it with "
                "fastinpaint.models.load_pconv_checkpoint().")
    arch = check_header(ckpt, PCONV_FORMAT, PCONV_VERSION, source, hint)
    if ckpt.get("renormalization", PCONV_RENORMALIZATION) != PCONV_RENORMALIZATION:
        raise ValueError(f"{source} stores weights for renormalisation {ckpt.get('renormalization')!r}; "
                         f"expected {PCONV_RENORMALIZATION!r}")
    net = build(cls, arch, source, normalization=ckpt.get("normalization"))
    load_state(net, ckpt, source)
    net.freeze_encoder_bn(bool(ckpt.get("encoder_bn_frozen", False)))
    return net


# ------------------------------------------------------------------------------------------------
# PConvUNet: published checkpoints (the naoto0804 reimplementation)
# ------------------------------------------------------------------------------------------------
_REIMPL_KEY = re.compile(r"^(enc|dec)_(\d+)\.(conv\.input_conv\.weight|conv\.input_conv\.bias|conv\.mask_conv\.weight|"
                         r"bn\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


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


def convert_reimplementation_state_dict(state: Mapping[str, Tensor], model: nn.Module,
                                        source: str = "state dict") -> Dict[str, Tensor]:
    """Converts a naoto0804-reimplementation state dict into ``model``'s keys and renormalisation.

    ``X.conv.input_conv.weight`` → ``X.conv.weight`` divided by ``C_in·kh·kw``;
    ``X.conv.input_conv.bias`` → ``X.conv.bias``; ``X.bn.*`` unchanged; ``X.conv.mask_conv.weight``
    is checked to be all ones (the reimplementation's fixed window-sum kernel) and dropped.

    Args:
        state: the reimplementation's ``state_dict`` (the checkpoint's ``'model'`` entry).
        model: the :class:`~fastinpaint.nn.PConvUNet` whose keys and shapes to produce.
        source: name used in error messages.

    Returns:
        A state dict for ``model.load_state_dict`` (``num_batches_tracked`` filled with 0 where
        the checkpoint lacks it).

    Raises:
        ValueError: naming every unknown key, missing key and shape mismatch.

    Example:
        >>> import torch
        >>> from fastinpaint.models import convert_reimplementation_state_dict
        >>> from fastinpaint.nn import PConvUNet
        >>> net = PConvUNet(layers=4, base_channels=8, max_channels=16)
        >>> # state = torch.load("pconv.pth", weights_only=True)["model"] for a reimplementation file;
        >>> # here one made from ours: weights times the window size, all-ones window-sum kernels
        >>> ours = net.state_dict()
        >>> state = {k.replace(".conv.", ".conv.input_conv."): v * v[0].numel() if k.endswith("conv.weight") else v
        ...          for k, v in ours.items()}
        >>> state.update({k.replace(".conv.", ".conv.mask_conv."): torch.ones_like(v)
        ...               for k, v in ours.items() if k.endswith("conv.weight")})
        >>> net.load_state_dict(convert_reimplementation_state_dict(state, net))
        <All keys matched successfully>
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


def _published_pconv_state(ckpt: Any) -> Optional[Mapping[str, Any]]:
    """The state dict of a published (naoto0804 reimplementation) PConvUNet checkpoint, its
    ``module.`` prefix stripped, or None when ``ckpt`` is not one: the one rule, by its keys."""
    if not isinstance(ckpt, Mapping) or "format" in ckpt:
        return None
    state = ckpt.get("model", ckpt)
    if not isinstance(state, Mapping):
        return None
    state = _strip_prefix(state, "module.")
    return state if any(isinstance(k, str) and _REIMPL_KEY.match(k) for k in state) else None


#: The networks whose checkpoint files :func:`network_of` tells apart: format -> (name, newest version).
_NETWORK_FORMATS = {PCONV_FORMAT: ("PConvUNet", PCONV_VERSION), GLCIC_FORMAT: ("GLCIC", GLCIC_VERSION)}


def network_of(path: _PathLike) -> str:
    """Which network a checkpoint file is for, ``"PConvUNet"`` or ``"GLCIC"``, told as the loaders
    tell it (the ``format`` header and its version; a published PConvUNet file by its keys), from
    the file's pickled structure only: the tensors are memory-mapped, not read, nor checked
    against the architecture (loading does that).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a PyTorch checkpoint, or not one of these networks (a training
            checkpoint, a newer format version, another program's file), saying which.
    """
    source = _source(path)
    ckpt = read(path, mmap=True)
    fmt = ckpt.get("format") if isinstance(ckpt, Mapping) else None
    if fmt in _NETWORK_FORMATS:
        name, version = _NETWORK_FORMATS[fmt]
        check_header(ckpt, fmt, version, source)
        return name
    if _published_pconv_state(ckpt) is not None:
        return "PConvUNet"
    if fmt is not None:
        raise ValueError(_not_network(source, fmt, path, "network (PConvUNet or GLCIC)"))
    raise ValueError(f"{source} is not a PConvUNet or GLCIC checkpoint")


def load_any_pconv(cls: type, path: _PathLike, map_location: _Device = "cpu",
                   normalization: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """A ``cls`` (PConvUNet) network, in eval mode, from fastinpaint's file or a published one.

    The two kinds are told apart by their contents (see :func:`fastinpaint.models.load_pconv_checkpoint`,
    which documents the arguments). A published file's architecture is inferred from its weights.
    """
    source = _source(path)
    ckpt = read(path, map_location)
    if isinstance(ckpt, Mapping) and ckpt.get("format") == PCONV_FORMAT:
        if normalization is not None:  # the constructor checks it, as it checks the file's own
            ckpt = {**ckpt, "normalization": normalization}
        return pconv_from_checkpoint(cls, ckpt, source).eval()
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{source} is not a PConvUNet checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    if "format" in ckpt:
        raise ValueError(_not_network(source, ckpt["format"], path, "PConvUNet"))
    state = ckpt.get("model", ckpt)
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: its 'model' entry is a {type(state).__name__}, not a state dict")
    state = _published_pconv_state(ckpt)
    if state is None:
        keys = list(_strip_prefix(ckpt.get("model", ckpt), "module."))[:6]
        raise ValueError(
            f"{source} is not a PConvUNet checkpoint: expected a fastinpaint file (format={PCONV_FORMAT!r}) or the "
            f"reimplementation's {{'model': state_dict, 'n_iter', 'optimizer'}} with keys like "
            f"'enc_1.conv.input_conv.weight'; found keys {keys}"
        )
    net = cls(**_reimplementation_architecture(state, source), normalization=normalization)
    net.load_state_dict(convert_reimplementation_state_dict(state, net, source))
    return net.eval()
