"""``fastinpaint.inpaint``: one entry point for every method, on numpy arrays, PIL images and
tensors.

The dispatcher owns everything that is not the method itself: reading the image and mask in
their many forms (a batch image by image), alpha, dtypes, the empty / full mask cases, and
copying the known pixels back bit for bit. A method only sees ``(C, H, W)`` float32 colour
channels and an ``(H, W)`` bool hole on one device (see :mod:`fastinpaint.methods`).

Adding a method: either list it in ``_BUILTIN_METHODS`` (module path and function name, imported
on first use so that e.g. a network's weights are not loaded by ``import fastinpaint``), or call
:func:`register_method` at import time of your module.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import secrets
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from fastinpaint._cpu_load import on_free_cpu_threads
from fastinpaint.hd import check_options as check_hd_options
from fastinpaint.hd import known_range, run_strategy

__all__ = ["inpaint", "register_method", "available_methods", "check_method_options", "check_seed", "check_device"]

# name -> "module:function"; imported lazily.
_BUILTIN_METHODS: Dict[str, str] = {
    "patchmatch": "fastinpaint.methods.patchmatch:inpaint_patchmatch",
    "biharmonic": "fastinpaint.methods.biharmonic:inpaint_biharmonic",
    "pconv": "fastinpaint.methods.pconv:inpaint_pconv",
    "glcic": "fastinpaint.methods.glcic:inpaint_glcic",
}
_REGISTERED: Dict[str, Callable[..., Tensor]] = {}

ImageLike = Union[np.ndarray, Tensor, Any]  # Any: PIL.Image.Image (PIL imported lazily)


def register_method(name: str, fn: Optional[Callable[..., Tensor]] = None):
    """Registers ``fn(image, hole, *, seed, source_mask, **options) -> Tensor`` under ``name``
    (usable as a decorator). ``image`` is ``(C, H, W)`` float32 colour (values in the input's own
    scale, e.g. 0–255 for uint8), ``hole`` ``(H, W)`` bool, ``source_mask`` ``(H, W)`` bool or
    None (True = may be copied from); the result is ``(C, H, W)``. A method that works on [0, 1]
    images (learned models) sets ``fn.unit_range = True``: it then gets and returns colour in [0, 1]
    whatever the input's dtype."""

    def deco(f):
        _REGISTERED[name] = f
        return f

    return deco(fn) if fn is not None else deco


def available_methods() -> Tuple[str, ...]:
    return tuple(sorted(set(_BUILTIN_METHODS) | set(_REGISTERED)))


def _resolve_method(method: str) -> Callable[..., Tensor]:
    if not isinstance(method, str):
        raise TypeError(f"inpaint: method must be a string, got {type(method).__name__}")
    if method in _REGISTERED:
        return _REGISTERED[method]
    if method in _BUILTIN_METHODS:
        module, fn = _BUILTIN_METHODS[method].split(":")
        return getattr(importlib.import_module(module), fn)
    raise ValueError(f"inpaint: unknown method {method!r}; available: {', '.join(available_methods())}")


#: Parameters of a method that the dispatcher itself passes (not user options).
_DISPATCHER_PARAMETERS = ("seed", "source_mask", "device")


def _option_names(fn: Callable[..., Tensor]) -> Optional[Tuple[str, ...]]:
    """The option names ``fn`` takes: its ``option_names`` attribute where it takes ``**options``
    (patchmatch lists its own), else its keyword parameters after ``(image, hole)``; None where it
    cannot be known (a registered method with ``**options`` and no list: it checks them itself)."""
    declared = getattr(fn, "option_names", None)
    if declared is not None:
        return tuple(declared)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.name not in _DISPATCHER_PARAMETERS)


def check_method_options(method: str, options: Dict[str, Any]) -> None:
    """Raises TypeError, naming the method's options, when ``options`` holds a name ``method``
    does not take (e.g. ``patch_size`` for biharmonic). :func:`inpaint` calls it before any work;
    the command line calls it once before a batch, so that the error is not repeated per file."""
    fn = _resolve_method(method)
    accepted = _option_names(fn)
    if accepted is None:
        return
    for name in options:
        if name not in accepted:
            listed = ", ".join(accepted) if accepted else "none"
            raise TypeError(f"inpaint: method {method!r} takes no option {name!r} (its options: {listed})")


# ------------------------------------------------------------------------------------------------
# conversions
# ------------------------------------------------------------------------------------------------
def _is_pil(x) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


class _Image:
    """An input image as a channels-last numpy array or a CHW tensor, plus how to give it back."""

    def __init__(self, image: ImageLike):
        self.kind: str
        self.pil_mode: Optional[str] = None
        #: the input's premultiplied mode (RGBa, La), given back in it; None for any other input
        self.premultiplied: Optional[str] = None
        self._pil = image if _is_pil(image) else None  # for size_hint and a premultiplied input's bits
        if _is_pil(image):
            from fastinpaint.io import ALPHA_MODES, PREMULTIPLIED

            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif mode == "1":  # bilevel is grey, as the file reader has it
                image = image.convert("L")
            elif mode in PREMULTIPLIED:  # filled on the colour itself (see io.PREMULTIPLIED)
                self.premultiplied = mode
                image = image.convert(PREMULTIPLIED[mode])
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "PA"):
                image = image.convert("RGBA" if mode in ALPHA_MODES else "RGB")  # (LAB's "A" is no alpha)
            self.kind = "pil"
            self.pil_mode = image.mode
            arr = np.array(image)
            if arr.dtype.byteorder == ">":  # I;16B: big-endian words, which torch does not take
                arr = arr.astype(arr.dtype.newbyteorder("="))
        elif isinstance(image, np.ndarray):
            self.kind = "numpy"
            arr = image
        elif isinstance(image, Tensor):
            self.kind = "tensor"
            arr = None
        else:
            raise TypeError(
                f"inpaint: image must be a numpy array, a PIL image or a torch tensor, got {type(image).__name__}"
            )
        if arr is not None:
            if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
                raise TypeError(f"inpaint: image dtype must be an integer or float type, got {arr.dtype}")
            if arr.ndim == 2:
                arr = arr[:, :, None]
                self.squeeze = True
            elif arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4):
                self.squeeze = False
            else:
                raise ValueError(
                    f"inpaint: image must have shape (H, W), (H, W, C) or a batch (N, H, W, C), with C in 1..4 "
                    f"(gray, gray+alpha, RGB, RGBA), got {arr.shape}"
                )
            self.array = np.ascontiguousarray(arr)
            self.chw = _read_only_tensor(self.array).permute(2, 0, 1)
        else:
            t = image
            if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int_dtype(t.dtype)):
                raise TypeError(f"inpaint: image dtype must be an integer or float type, got {t.dtype}")
            if t.dim() == 2:
                t = t[None]
                self.squeeze = True
            elif t.dim() == 3 and t.shape[0] in (1, 2, 3, 4):
                self.squeeze = False
            else:
                raise ValueError(
                    f"inpaint: image tensor must have shape (H, W), (C, H, W) or a batch (N, C, H, W), with C in "
                    f"1..4, got {tuple(t.shape)}"
                )
            self.chw = t
        self.channels = self.chw.shape[0]
        self.colour = 3 if self.channels >= 3 else 1  # a 2nd or 4th channel is alpha
        self.size = tuple(self.chw.shape[1:])
        if min(self.size) == 0:
            raise ValueError(f"inpaint: image is empty (size {self.size})")

    @property
    def dtype(self):
        return self.chw.dtype

    def size_hint(self) -> str:
        """What to add to a mask-size error: a PIL image is taken as stored, and one whose EXIF
        orientation (5-8) swaps width and height is displayed, and opened by the command line,
        transposed, so a mask drawn on it has the transposed size. Read only when that error
        happens (parsing EXIF is no work for every call)."""
        if self._pil is None or self._pil.getexif().get(0x0112) not in (5, 6, 7, 8):
            return ""
        return ("; this PIL image's EXIF orientation swaps width and height when displayed: if the mask was made "
                "for the displayed image, apply PIL.ImageOps.exif_transpose(image) first (as the command line does)")

    @property
    def white(self) -> float:
        """The value of full intensity: the dtype's maximum for integers, 1 for floats."""
        return float(torch.iinfo(self.dtype).max) if _is_int_dtype(self.dtype) else 1.0

    def colour_float(self, device, box) -> Tensor:
        """The colour channels of ``box`` ``(y0, y1, x0, x1)`` as float32 on ``device``."""
        y0, y1, x0, x1 = box
        view = self.chw[: self.colour, y0:y1, x0:x1]
        # one strided conversion into (C, H, W) memory: .to() keeps an HWC array's channels-last
        # strides, so .contiguous() then copied it again (8x slower for a 12 MP photo's crop)
        return torch.empty(view.shape, dtype=torch.float32, device=device).copy_(view)

    def original(self):
        if self.kind == "tensor":
            t = self.chw.clone()
            return t[0] if self.squeeze else t
        if self.premultiplied:
            return self._pil.copy()
        return self.pil_or_array(self.array.copy())

    def pil_or_array(self, arr: np.ndarray):
        if self.squeeze:
            arr = arr[:, :, 0]
        if self.kind == "pil":
            from PIL import Image

            return Image.fromarray(arr, mode=self.pil_mode) if self.pil_mode in ("L", "RGB", "RGBA", "LA") else Image.fromarray(arr)
        return arr

    def with_fill(self, pieces) -> Any:
        """The input with fills written into the colour channels of their boxes' ``paste`` pixels
        (hole pixels), rounded and clipped for integer types; everything else is the input's own
        bits. Only the boxes are cast and written: the rest of a large photo is one copy."""
        if self.kind == "tensor":
            out = self.chw.clone()
            for (y0, y1, x0, x1), fill, paste in pieces:
                region = out[: self.colour, y0:y1, x0:x1]
                vals = _cast_like(fill.to(out.device), out.dtype)
                region.copy_(torch.where(paste.to(out.device)[None], vals, region))
            return out[0] if self.squeeze else out
        out = self.array.copy()
        for (y0, y1, x0, x1), fill, paste in pieces:
            p = paste.cpu().numpy()
            vals = _cast_like(fill.cpu(), torch.from_numpy(out[:0, :0]).dtype).permute(1, 2, 0).numpy()
            # copyto through a view writes ``out``: 2x the speed of boolean indexing on a 12 MP box
            np.copyto(out[y0:y1, x0:x1, : self.colour], vals, where=p[:, :, None])
        if self.premultiplied:
            return self._premultiplied(out, pieces)
        return self.pil_or_array(out)

    def _premultiplied(self, filled: np.ndarray, pieces):
        """The straight-alpha result ``filled`` back in the input's premultiplied mode: the hole
        pixels premultiplied by Pillow, every other pixel the input's own bits (premultiplying
        Pillow's un-premultiplied colour does not always give the stored value back: 12 % of the
        colour values of a random RGBa image moved by one)."""
        from PIL import Image

        out = np.array(self._pil)
        again = np.asarray(Image.fromarray(filled, mode=self.pil_mode).convert(self.premultiplied))
        for (y0, y1, x0, x1), _, paste in pieces:
            np.copyto(out[y0:y1, x0:x1], again[y0:y1, x0:x1], where=paste.cpu().numpy()[:, :, None])
        return Image.fromarray(out, mode=self.premultiplied)


def _read_only_tensor(arr: np.ndarray) -> Tensor:
    """``torch.from_numpy`` without a copy, also for read-only arrays (``np.asarray`` of a PIL
    image), which torch only warns about: the dispatcher never writes into its inputs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr)


def _is_int_dtype(dtype: torch.dtype) -> bool:
    return dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32)


def _cast_like(x: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype.is_floating_point:
        return x.to(dtype)
    info = torch.iinfo(dtype)
    return x.round().clamp(info.min, info.max).to(dtype)


def _as_bool_plane(mask, size, name: str, hint: Callable[[], str] = str) -> Tensor:
    """(H, W) bool, True where the mask is non-zero; accepts numpy, PIL, tensor, with a trailing or
    leading channel axis of 1 (or a multi-channel mask: non-zero in any channel). A PIL image is
    a picture of a mask, as a mask file is, and takes the files' rule (fastinpaint.io: grey > 127):
    a JPEG-saved or anti-aliased mask is non-zero almost everywhere, and "non-zero" made 95 % of a
    photo a hole."""
    if _is_pil(mask):
        from fastinpaint.io import hole_from_pil

        mask = hole_from_pil(mask)
    if isinstance(mask, np.ndarray):
        if mask.dtype != np.bool_ and not (np.issubdtype(mask.dtype, np.number)):
            raise TypeError(f"inpaint: {name} must be numeric or bool, got dtype {mask.dtype}")
        if mask.ndim == 3:  # (H, W, C) or (C, H, W): non-zero in any channel
            mask = (mask != 0).any(axis=2 if mask.shape[:2] == tuple(size) else 0)
        # NumPy compares and counts a 12 MP plane in a few ms, several times faster than torch
        m = _read_only_tensor(np.ascontiguousarray(mask != 0))
    elif isinstance(mask, Tensor):
        m = mask
    else:
        raise TypeError(f"inpaint: {name} must be a numpy array, a PIL image or a torch tensor, got {type(mask).__name__}")
    if m.dim() == 3:
        m = m.ne(0).any(0)
    if m.dim() != 2:
        raise ValueError(f"inpaint: {name} must be 2-D (H, W), got shape {tuple(m.shape)}")
    if tuple(m.shape) != tuple(size):
        raise ValueError(
            f"inpaint: {name} size {tuple(m.shape)} (H, W) does not match the image size {tuple(size)}{hint()}"
        )
    return m if m.dtype == torch.bool else m.ne(0)


#: Seeds lie in [-SEED_LIMIT, SEED_LIMIT). Methods and fastinpaint.hd derive their seeds by adding
#: offsets (a region's index; PatchMatch adds multiples of its level and iteration), and a method
#: may hand the result to torch, whose ops and generators take a signed 64-bit int: 2**62 leaves
#: room for any offset below 2**62 without overflowing int64.
SEED_LIMIT = 2**62


def check_seed(seed) -> int:
    """An int seed in [-2**62, 2**62) (:data:`SEED_LIMIT`); None draws a fresh one (so a call
    without a seed is not reproducible). The command line and the server check theirs with it."""
    if seed is None:
        return secrets.randbelow(2**31)  # small: methods add offsets to it
    if isinstance(seed, bool):
        raise TypeError(f"inpaint: seed must be an int or None, got {seed!r}")
    try:
        value = operator.index(seed)  # int and NumPy / torch integers, not 1.5 or "3"
    except TypeError:
        raise TypeError(f"inpaint: seed must be an int or None, got {type(seed).__name__} {seed!r}") from None
    if not -SEED_LIMIT <= value < SEED_LIMIT:
        raise ValueError(f"inpaint: seed must be between -2**62 and 2**62 - 1 (room for the offsets methods add "
                         f"within a 64-bit int), got {value}")
    return value


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def inpaint(
    image: ImageLike,
    mask: ImageLike,
    method: str = "patchmatch",
    *,
    patch_size: Optional[int] = None,
    seed: Optional[int] = 0,
    device: Union[str, torch.device, None] = None,
    source_mask: Optional[ImageLike] = None,
    hd_strategy: str = "auto",
    hd_size: Optional[int] = None,
    **options,
):
    """Fills the masked region of an image.

    Args:
        image: numpy array ``(H, W)`` / ``(H, W, C)`` or a batch ``(N, H, W, C)``, PIL image
            (taken as stored: an EXIF orientation is not applied, so that the result matches the
            input object; apply ``PIL.ImageOps.exif_transpose`` first for the displayed image), or
            tensor ``(H, W)`` / ``(C, H, W)`` or a batch ``(N, C, H, W)`` (batches: see below);
            C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). uint8, uint16 (and, for
            patchmatch and biharmonic, other integer types) or float. Alpha is returned unchanged.
            A premultiplied-alpha PIL image (``RGBa``, ``La``) is filled on its colour itself (as
            Pillow un-premultiplies it) and returned in its own mode, the fill premultiplied by
            the hole's alpha; palette, bilevel, CMYK, YCbCr, LAB, HSV and RGBX images are returned
            as RGB(A) or grey (``L``), the modes they are filled in.
        mask: same height and width; **non-zero = hole** (the pixels to fill). numpy, PIL or tensor;
            a trailing/leading channel axis is allowed (non-zero in any channel = hole). A PIL
            image is read as mask files are: grey > 127 = hole (:mod:`fastinpaint.io`), so JPEG
            noise and anti-aliased edges do not become holes. For a batch: ``(N, H, W)``,
            ``(N, 1, H, W)`` or ``(N, H, W, 1)`` (one per image) or ``(H, W)`` (one for the whole
            batch).
        method: ``"patchmatch"`` (default; no weights needed), ``"biharmonic"``, ``"pconv"`` or
            ``"glcic"`` (learned: ``weights=PATH`` or a network; without it the compact weights
            bundled in the package, see :mod:`fastinpaint.weights`), or another registered method
            (:func:`available_methods`).
        patch_size: patch side for patch-based methods (patchmatch: odd, 3 to 31; default 7).
        seed: random seed, an int from -2**62 to 2**62 - 1; the same seed on the same kind of
            device gives the same result. ``None``: a fresh random seed each call (nondeterministic results).
            Every image of a batch gets this same seed (as every file of a folder does on the command line).
        device: where to compute (``"cpu"``, ``"cuda"``, ...). Default: the tensor's device, or the
            CPU for numpy/PIL input. The result is returned in the input's type and place.
        source_mask: optional, same size; **non-zero = may be copied from** (a PIL image: grey >
            127). Known pixels outside it are kept but never copied (e.g. exclude other objects).
            For a batch: shaped as ``mask``.
        hd_strategy: how a large image is processed (:mod:`fastinpaint.hd`): ``"auto"`` (default:
            the whole image when its long side is at most the method's limit — 512 px for
            ``pconv`` / ``glcic``, 1024 for the others — else each region of holes cropped with a
            margin and processed at a scale suited to the method: ``pconv`` / ``glcic`` at a
            384 px long side, PatchMatch at full resolution with its structure decided at the
            photo's 1024 px scale, biharmonic with at most 65,536 unknowns), ``"original"`` (the
            whole image as is),
            ``"crop"`` (each region at full resolution) or ``"resize"`` (the whole image
            downscaled to ``hd_size``, the fill upscaled). Known pixels are kept bit for bit in all.
        hd_size: the working long side in pixels for ``"resize"`` and for ``"auto"``'s crops
            (default: the method's own; 1024 for ``"resize"`` of a method without one). With
            ``"original"`` or ``"crop"``, which have no working size, it is refused (ValueError).
        **options: method-specific options (see the method's documentation).

    Returns:
        The filled image, of the same type (numpy / PIL / tensor on the same device), dtype and
        shape as ``image``. Known pixels are bit-for-bit those of the input.

    Batches: a tensor ``(N, C, H, W)`` or a numpy array ``(N, H, W, C)`` (each image in its
    type's own layout) is filled image by image, with any method, each image exactly as a call with
    that image, its mask and the same seed fills it, and returned in the input's type, shape and
    dtype (a tensor on its device, in its memory format). An image with an empty mask
    is returned as it is, with a warning; an error about one image says which (``(image i of the
    batch)``). (To run a batch through a network in one forward, call
    :func:`~fastinpaint.methods.pconv.inpaint_pconv` or :func:`~fastinpaint.methods.glcic.inpaint_glcic`
    directly, on float tensors in [0, 1].)

    Raises:
        ValueError: mask size differs from the image size; the mask covers the whole image (there
            is nothing to copy from); unknown method or hd_strategy; hd_size with an hd_strategy that
            does not use it; non-finite known pixels; a float image
            outside [0, 1] for a learned method.
        TypeError: unsupported image or mask type; an option the method does not take; a seed
            that is not an int or None; an integer dtype other than uint8 / uint16 for a learned
            method.

    An empty mask returns a copy of the input with a warning. Values under the hole are ignored
    (NaN included); known pixels must be finite. Learned methods (``pconv``, ``glcic``) work on
    colour in [0, 1]: uint8 and uint16 images are scaled by their dtype's maximum, other integer
    dtypes are refused (their scale is ambiguous), and a float image whose known pixels leave
    [0, 1] is refused (scale it first); patchmatch and biharmonic take any range and any dtype.

    Example:
        >>> import numpy as np, fastinpaint
        >>> img = np.random.randint(0, 255, (120, 160, 3), dtype=np.uint8)
        >>> mask = np.zeros((120, 160), np.uint8); mask[40:80, 60:100] = 255
        >>> out = fastinpaint.inpaint(img, mask, seed=0)
        >>> out.shape, out.dtype
        ((120, 160, 3), dtype('uint8'))

        A batch of tensors, one mask each (or one ``(H, W)`` mask for all):

        >>> import torch
        >>> batch = torch.rand(4, 3, 48, 64)                       # (N, C, H, W)
        >>> holes = torch.zeros(4, 48, 64, dtype=torch.bool)       # (N, H, W), True = hole
        >>> for i in range(4): holes[i, 10 + 5 * i:20 + 5 * i, 20:40] = True
        >>> out = fastinpaint.inpaint(batch, holes, method="biharmonic")
        >>> out.shape, out.dtype
        (torch.Size([4, 3, 48, 64]), torch.float32)
        >>> torch.equal(out[~holes[:, None].expand_as(out)], batch[~holes[:, None].expand_as(batch)])
        True
    """
    fn = _resolve_method(method)
    if patch_size is not None:
        options["patch_size"] = patch_size
    check_method_options(method, options)
    seed = check_seed(seed)
    hd = check_hd_options(hd_strategy, hd_size)
    if device is None:
        device = image.device if isinstance(image, Tensor) else torch.device("cpu")
    device = check_device(device)
    # On the CPU, on the threads other processes leave free (see fastinpaint._cpu_load): on a
    # busy machine the statically split passes would wait for a descheduled thread.
    # inpaint is not differentiable (hard masks, nearest-patch copies, rounding): no autograd
    # graph, so a tensor with requires_grad gives a plain result and no warnings from torch.
    with on_free_cpu_threads(device), torch.no_grad():
        if isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4:
            return _inpaint_batch(fn, method, image, mask, source_mask, seed, device, options, hd)
        return _inpaint(fn, method, image, mask, source_mask, seed, device, options, hd)


def check_device(device, who: str = "inpaint") -> torch.device:
    """``device`` as a torch.device that the methods run on (the CPU or CUDA), with one-line errors
    that name ``who``: ValueError for another device (torch's own errors named neither the argument
    nor the choices: 'meta' failed in a kernel, 'gpu' listed twenty device types), RuntimeError for
    CUDA where torch has none (torch's was a bare ``AssertionError: Torch not compiled with CUDA
    enabled`` from the first tensor moved), for a fastinpaint built without its CUDA kernels (the
    first op failed with a dispatcher error) and for ``cuda:N`` past the GPUs there are.
    :func:`inpaint`, the learned methods' own ``device`` argument and the command line's
    ``--device`` are checked here."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"{who}: device must be 'cpu', 'cuda' or 'cuda:N' (or a torch.device of those), "
                         f"got {device!r}")
    if parsed.type == "cuda":
        from fastinpaint.backend import built_with_cuda

        if not torch.cuda.is_available():
            raise RuntimeError(f"{who}: device={str(device)!r} was requested but torch.cuda.is_available() is False")
        if not built_with_cuda():
            raise RuntimeError(f"{who}: device={str(device)!r} was requested but this fastinpaint was built "
                               "without its CUDA kernels (build with FASTINPAINT_CUDA=ON)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise RuntimeError(f"{who}: device={str(device)!r} was requested but there are "
                               f"{torch.cuda.device_count()} CUDA devices")
    return parsed


def _inpaint_batch(fn, method, images, mask, source_mask, seed, device, options, hd):
    """A batch, a tensor ``(N, C, H, W)`` or a numpy array ``(N, H, W, C)`` (each a stack of the
    images its type takes alone): each image filled by :func:`_inpaint` with its own mask (or
    the shared one) and the batch's seed, so that image ``i`` comes back exactly as
    ``inpaint(images[i], mask[i], seed=seed)`` gives it, whatever else is in the batch.

    A loop for every method, the learned ones included, rather than their batched forward: what the
    dispatcher decides is decided per image (each image's holes choose its hd crops, an empty mask
    returns that image, a full one is refused), and in a batched forward an image's fill would
    depend on its batch (a convolution's algorithm, and so its rounding, depends on the batch
    size)."""
    # out: the input's type, shape and dtype (a tensor's device and memory format too)
    if isinstance(images, np.ndarray):
        (n, h, w, c), layout, out = images.shape, "(N, H, W, C)", np.empty_like(images)
    else:
        (n, c, h, w), layout, out = images.shape, "(N, C, H, W)", torch.empty_like(images)
    if c not in (1, 2, 3, 4):
        raise ValueError(f"inpaint: an image batch must have shape {layout} with C in 1..4, "
                         f"got {tuple(images.shape)}")
    masks = _per_image(mask, n, (h, w), "mask")
    sources = [None] * n if source_mask is None else _per_image(source_mask, n, (h, w), "source_mask")
    for i in range(n):
        try:
            out[i] = _inpaint(fn, method, images[i], masks[i], sources[i], seed, device, options, hd, index=i)
        except ValueError as e:  # (an error every image would raise, a mask's size, stops at image 0: still true)
            raise ValueError(f"{e} (image {i} of the batch)") from e
    return out


def _per_image(mask, n: int, size, name: str) -> list:
    """``mask`` of a batch of ``n`` images, one per image: a 3-D ``(N, H, W)`` or 4-D ``(N, 1, H, W)``
    / ``(N, H, W, 1)`` array or tensor holds one per image (a leading 1: one for all); anything else
    (2-D, PIL) is one mask for the whole batch, read once."""
    if not isinstance(mask, (Tensor, np.ndarray)) or mask.ndim == 2:
        return [_as_bool_plane(mask, size, name)] * n
    if mask.ndim not in (3, 4) or mask.shape[0] not in (1, n):
        raise ValueError(f"inpaint: for an image batch of {n} the {name} must be (H, W) (shared), (N, H, W), "
                         f"(N, 1, H, W) or (N, H, W, 1) with N = {n} (or 1), got shape {tuple(mask.shape)}")
    return [mask[0 if mask.shape[0] == 1 else i] for i in range(n)]


def _inpaint(fn, method, image, mask, source_mask, seed, device, options, hd, index: Optional[int] = None):
    """One image; ``index``: its place in a batch (named in the empty-mask warning)."""
    img = _Image(image)
    unit_range = getattr(fn, "unit_range", False)
    if unit_range:
        _check_unit_range_dtype(img.dtype, method)
    hole = _as_bool_plane(mask, img.size, "mask", img.size_hint)
    src = None if source_mask is None else _as_bool_plane(source_mask, img.size, "source_mask", img.size_hint)
    n_hole = int(torch.count_nonzero(hole))  # (a bool sum goes through int64: 20x slower)
    if n_hole == 0:
        which = ("the mask is", "the input") if index is None else (f"image {index}'s mask is", "that image")
        warnings.warn(f"inpaint: {which[0]} empty (no hole pixel); returning {which[1]} unchanged",
                      stacklevel=3 if index is None else 4)  # (the caller of inpaint)
        return img.original()
    if n_hole == hole.numel():
        raise ValueError(
            "inpaint: the mask covers the whole image, so there are no known pixels to copy from; "
            "mark only the region to fill (non-zero = hole)"
        )
    hole_d = hole.to(device)
    if img.dtype.is_floating_point:  # integers are finite and within their dtype's range
        _check_float_colour(img.chw[: img.colour], hole.to(img.chw.device), method if unit_range else None)
    scale = img.white if unit_range else 1.0
    src_d = None if src is None else src.to(device)

    def read(box):  # a box of the colour, in the method's scale; hd converts only what it processes
        c = img.colour_float(device, box)  # a fresh tensor: scaled in place
        return c.div_(scale) if scale != 1.0 else c

    pieces = run_strategy(fn, read, hole_d, strategy=hd[0], size=hd[1], seed=seed, source_mask=src_d,
                          options=options)
    for (y0, y1, x0, x1), fill, _ in pieces:
        if tuple(fill.shape) != (img.colour, y1 - y0, x1 - x0):
            raise RuntimeError(f"inpaint: method {method!r} returned shape {tuple(fill.shape)}, "
                               f"expected {(img.colour, y1 - y0, x1 - x0)}")
    return img.with_fill([(box, fill * scale if scale != 1.0 else fill, paste) for box, fill, paste in pieces])


#: The integer dtypes whose scale is unambiguous: a photo's 8 or 16 bits.
_PHOTO_INT_DTYPES = (torch.uint8, torch.uint16)


def _check_unit_range_dtype(dtype: torch.dtype, method: str) -> None:
    """A method that works on [0, 1] gets integers divided by their dtype's maximum. That is the
    photo's scale for uint8 and uint16 only: a 0-255 photo stored as int64 would become ~1e-17
    and come back as garbage, and nothing in the values says which scale was meant. So other
    integer dtypes are refused before any work (patchmatch and biharmonic take them: any range)."""
    if _is_int_dtype(dtype) and dtype not in _PHOTO_INT_DTYPES:
        name = str(dtype).replace("torch.", "")
        raise TypeError(f"inpaint: method {method!r}: {name} images are ambiguous (0-255? 0-65535?); "
                        f"pass uint8, uint16, or float in [0, 1]")


def _check_float_colour(colour: Tensor, hole: Tensor, unit_method: Optional[str]) -> None:
    """Known pixels must be finite, and within [0, 1] for a method that works there (hole values,
    NaN included, are ignored). The whole-image checks are one pass each; the known-only ones run
    only when those fail."""
    if not bool(torch.isfinite(colour).all()):
        if bool((~torch.isfinite(colour).all(0) & ~hole).any()):
            raise ValueError("inpaint: the image has non-finite values (NaN or inf) outside the hole; "
                             "only hole pixels may be NaN")
    if unit_method is None:
        return
    lo, hi = known_range(colour, hole)
    lo, hi = float(lo.min()), float(hi.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"inpaint: method {unit_method!r} works on colour in [0, 1], but this float image's "
                         f"known pixels span [{lo:g}, {hi:g}]; scale it to [0, 1] first (e.g. divide by 255)")
