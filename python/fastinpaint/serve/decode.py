"""Turning an HTTP request's fields into what :func:`fastinpaint.inpaint` takes, and its result into
response bytes.

Everything a client can get wrong raises :class:`RequestError` with the HTTP status to answer and
a one-line message naming the field: 400 for what cannot be read or does not fit together, 413 for
what is too large. Nothing here touches the file system.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from fastinpaint.hd import SIZED_STRATEGIES
from fastinpaint.hd import check_options as check_hd_options
from fastinpaint.inpaint import SEED_LIMIT
from fastinpaint.methods.patchmatch import PATCH_SIZES, check_method_patch_size

#: IOPaint's HD strategies (its names, case-insensitive) -> fastinpaint.hd's. IOPaint's "Crop", the
#: default its page and scripts send with every request, is "auto": fastinpaint's crop of each hole
#: region at a scale suited to the method, which keeps images under the method's working size whole
#: (as IOPaint's Crop does under its trigger size). Absent: "auto" too.
HD_STRATEGIES = {"original": "original", "crop": "auto", "resize": "resize", "auto": "auto"}
#: Output formats answered in the input's own format; any other input is answered as PNG (GIF
#: would be quantised again, and the rest Pillow may not write).
_OUTPUT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp",
                   "TIFF": "image/tiff"}
#: Built-in methods that copy from nowhere in particular (interpolation, networks): a source_mask
#: sent to them is a client error, not something to ignore silently.
NO_SOURCE_MASK = ("biharmonic", "pconv", "glcic")
_DATA_URL = re.compile(r"^data:[^,]*?;base64,", re.IGNORECASE)


class RequestError(Exception):
    """A client error: ``status`` (400, 413, ...) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Limits:
    """What the server accepts: images up to ``max_pixels`` (width x height; Pillow's own guard is
    set from it while a request's images are read), request bodies up to ``max_body_bytes``."""

    max_pixels: int = 50_000_000
    max_body_bytes: int = 256 * 1024 * 1024


@dataclass
class InpaintJob:
    """A decoded request: the image and the masks as arrays, the call's options, how to answer."""

    image: Any  # fastinpaint.io.Picture: the pixels as displayed, and how the input was written
    hole: np.ndarray  # (H, W) bool
    source: Optional[np.ndarray]  # (H, W) bool, True = may be copied from; None = everywhere known
    method: str
    seed: int
    options: Dict[str, Any] = field(default_factory=dict)
    response_headers: Dict[str, str] = field(default_factory=dict)
    #: what the command line would print as notes: conversions made while reading, the alpha used
    #: as the mask, an empty mask (answered as ``X-FastInpaint-Notes``)
    notes: List[str] = field(default_factory=list)


def b64_bytes(value: Any, name: str) -> bytes:
    """The bytes of a base64 field (a ``data:...;base64,`` prefix is accepted, as IOPaint does)."""
    if not isinstance(value, str):
        raise RequestError(400, f"field '{name}' must be a base64 string, got {type(value).__name__}")
    text = _DATA_URL.sub("", value.strip(), count=1)
    text = "".join(text.split())  # line breaks from e.g. `base64` without -w0
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"field '{name}' is not valid base64 ({exc})") from None
    if not data:
        raise RequestError(400, f"field '{name}' is empty")
    return data


def _check_header(data: bytes, name: str, limits: Limits, tiff_only_ok: bool = False):
    """The lazily opened ``PIL.Image`` of ``data`` once its header says it is readable and within
    ``--max-pixels`` (nothing decoded yet). ``tiff_only_ok``: a file that only fastinpaint.io's
    tifffile path reads (16-bit grey + alpha or floating-point TIFF) passes too, and None is
    returned for it."""
    from PIL import Image, UnidentifiedImageError

    from fastinpaint.io import pixel_limit

    try:
        # Pillow's guard off for the header alone (nothing is decoded): its size is checked just
        # below, in this server's words (the guard refused a size past twice the limit in Pillow's
        # words, without the width and height, and warned between)
        with pixel_limit(None):
            img = Image.open(io.BytesIO(data))
        w, h = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        from fastinpaint.io import tifffile_only_size

        size = tifffile_only_size(data) if tiff_only_ok else None
        if size is None:
            raise RequestError(400, f"field '{name}' is not a readable image ({_one_line(exc)})") from None
        img, (w, h) = None, size
    if w * h > limits.max_pixels:
        raise RequestError(413, _too_large(name, f"{w}x{h} = {w * h}", limits))
    return img


def _too_large(name: str, size: str, limits: Limits) -> str:
    return f"field '{name}': image of {size} pixels exceeds this server's limit of {limits.max_pixels} pixels " \
           "(--max-pixels)"


def _too_large_for_pillow(name: str, exc: Exception, limits: Limits) -> str:
    """The 413 message for an image Pillow refuses to open (a decompression-bomb guard, set from
    --max-pixels for the read: above twice it), in this server's terms. Pillow gives no size but
    in its message ("Image size (N pixels) exceeds limit of L pixels, ..."), read here; "more than
    --max-pixels" if its wording changes."""
    found = re.search(r"\((\d+) pixels\) exceeds limit", str(exc))
    return _too_large(name, found.group(1) if found else f"more than {limits.max_pixels}", limits)


def open_image(data: bytes, name: str, limits: Limits):
    """``PIL.Image`` of ``data``, fully decoded, EXIF orientation applied (as a browser shows it
    and IOPaint reads it). The size is checked from the header, before the pixels are decoded, so
    an oversized image costs no memory; Pillow's own guard is set from ``--max-pixels`` meanwhile
    (:func:`fastinpaint.io.pixel_limit`): it is the one limit."""
    from fastinpaint.io import orient, pixel_limit

    from PIL import Image

    with pixel_limit(limits.max_pixels):
        img = _check_header(data, name, limits)
        try:
            img.load()
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
            raise RequestError(400, f"field '{name}' is not a readable image ({_one_line(exc)})") from None
        except Image.DecompressionBombError as exc:  # past the header: a TIFF's tile, a GIF's frame, ...
            raise RequestError(413, _too_large_for_pillow(name, exc, limits)) from None
    return orient(img)  # the one orientation rule of fastinpaint.io (keeps the format)


def open_picture(data: bytes, name: str, limits: Limits):
    """The image as :func:`fastinpaint.io.read_image` reads files (displayed orientation, 16-bit
    colour kept, ICC/EXIF and JPEG quality remembered for the answer), after the size check of
    :func:`open_image` on the header alone, under the same limit."""
    from fastinpaint.io import pixel_limit

    with pixel_limit(limits.max_pixels):
        return _read_picture(data, name, limits)


def _read_picture(data: bytes, name: str, limits: Limits):
    from PIL import Image

    from fastinpaint.io import ImageIOError, ImageTooLargeError, read_image

    _check_header(data, name, limits, tiff_only_ok=True)
    try:
        return read_image(data, f"field '{name}'")
    except ImageTooLargeError as exc:  # past the header (a TIFF's tile, a GIF's frame, ...)
        raise RequestError(413, _too_large_for_pillow(name, exc, limits)) from None
    except ImageIOError as exc:  # "cannot read field 'image' <bytes>: why"
        why = _one_line(str(exc).split(": ", 1)[-1])
        raise RequestError(400, f"field '{name}' is not a readable image ({why})") from None
    except Image.DecompressionBombError as exc:  # past the header: a GIF frame, an MPO image, ...
        raise RequestError(413, _too_large_for_pillow(name, exc, limits)) from None


def mask_plane(data: bytes, name: str, size: Tuple[int, int], limits: Limits) -> np.ndarray:
    """(H, W) bool by the one mask rule of :mod:`fastinpaint.io` (grey > 127 = hole, alpha ignored)."""
    m = open_image(data, name, limits)
    if m.size != size:
        raise RequestError(400, f"field '{name}' is {m.size[0]}x{m.size[1]} but the image is "
                                f"{size[0]}x{size[1]}; they must be the same size")
    from fastinpaint.io import hole_from_pil

    return hole_from_pil(m)


def _int_field(fields: Mapping[str, Any], name: str, default: Optional[int], lo: int, hi: int) -> Optional[int]:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise RequestError(400, f"field '{name}' must be an integer, got {value!r}")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise RequestError(400, f"field '{name}' must be an integer, got {value!r}")
    if not lo <= number <= hi:
        raise RequestError(400, f"field '{name}' must be between {lo} and {hi}, got {number}")
    return number


def decode_request(fields: Mapping[str, Any], files: Mapping[str, bytes], *, methods: Tuple[str, ...],
                   default_method: str, weights: Mapping[str, Mapping[str, str]], limits: Limits) -> InpaintJob:
    """An :class:`InpaintJob` from a request's fields (JSON object or form fields) and image bytes.

    ``files``: ``image``, ``mask`` and optionally ``source_mask`` already as bytes (multipart
    uploads); otherwise they are read from base64 ``fields``. Unknown fields are ignored (IOPaint's
    clients send many: ``ldm_steps``, ``sd_*``, ...). ``weights``: method -> {name: path}, the names
    a client may pick (``weights`` field) for each method and the files the server was started with.
    """
    def raw(name: str, required: bool) -> Optional[bytes]:
        if name in files:
            if not files[name]:
                raise RequestError(400, f"file '{name}' is empty")
            return files[name]
        if fields.get(name) is None:
            if required:
                raise RequestError(400, f"field '{name}' is missing")
            return None
        if fields[name] == "":
            raise RequestError(400, f"field '{name}' is empty")
        return b64_bytes(fields[name], name)

    method = fields.get("method") or default_method
    # any case, as hd_strategy: the names are told apart by their letters only
    by_name = {m.lower(): m for m in methods}
    if not isinstance(method, str) or method.lower() not in by_name:
        raise RequestError(400, f"unknown method {method!r}; available: {', '.join(methods)}")
    method = by_name[method.lower()]
    headers: Dict[str, str] = {}
    hd = fields.get("hd_strategy")
    options: Dict[str, Any] = {}
    if hd in (None, ""):
        hd = "auto"  # fastinpaint.inpaint's default
    if not isinstance(hd, str) or hd.lower() not in HD_STRATEGIES:
        raise RequestError(400, f"unknown hd_strategy {hd!r}; choose one of Original, Crop, Resize, Auto")
    options["hd_strategy"] = HD_STRATEGIES[hd.lower()]
    hd_size = _int_field(fields, "hd_size", None, 16, 65536)  # fastinpaint's; IOPaint's limits are ignored
    if hd_size is not None:
        try:
            check_hd_options(options["hd_strategy"], hd_size)  # the API's rule: a size the strategy ignores
        except ValueError:
            sized = [name.capitalize() for name, ours in HD_STRATEGIES.items() if ours in SIZED_STRATEGIES]
            raise RequestError(400, f"field 'hd_size' has no effect with hd_strategy {hd!r}: it is the working "
                                    f"size of {', '.join(sized)} only") from None
        options["hd_size"] = hd_size
    seed = _int_field(fields, "seed", 0, -SEED_LIMIT, SEED_LIMIT - 1)  # the API's and the CLI's range
    patch_size = _int_field(fields, "patch_size", None, *PATCH_SIZES)
    if patch_size is not None:
        if method != "patchmatch":
            raise RequestError(400, f"field 'patch_size' applies to method 'patchmatch', not {method!r}")
        try:
            check_method_patch_size(patch_size)  # the method's own rule (odd)
        except ValueError:
            raise RequestError(400, f"field 'patch_size' must be odd, got {patch_size}") from None
        options["patch_size"] = patch_size
    chosen = fields.get("weights")
    if chosen not in (None, ""):
        if method not in ("pconv", "glcic"):
            raise RequestError(400, f"field 'weights' applies to the learned methods (pconv, glcic), not {method!r}")
        mine = weights.get(method, {})
        if not isinstance(chosen, str) or chosen not in mine:
            offered = ", ".join(sorted(mine)) or "none (start the server with --weights FILE)"
            other = next((m for m, files in weights.items() if isinstance(chosen, str) and chosen in files), None)
            why = f"weights {chosen!r} are for method {other!r}, not {method!r}" if other else \
                f"unknown weights {chosen!r} for method {method!r}"
            raise RequestError(400, f"{why}; this server offers for {method}: {offered} (or no 'weights': the "
                                    "bundled network)")
        options["weights"] = mine[chosen]
    if method in ("pconv", "glcic"):  # which network answered: a name this server offers, or the bundled one
        name = chosen if chosen not in (None, "") else "bundled"
        headers["X-FastInpaint-Weights"] = header_value(name)

    image = open_picture(raw("image", True), "image", limits)
    # every answer says which strategy ran (README), also when the client sent none:
    # "REQUESTED -> STRATEGY", e.g. "Crop -> auto (crop)": IOPaint's Crop is fastinpaint's auto,
    # which ran on crops of this image (or "original": the whole image) by fastinpaint.hd's rule
    ran = options["hd_strategy"]
    if ran == "auto":
        from fastinpaint.hd import auto_choice
        from fastinpaint.inpaint import _resolve_method

        ran = f"auto ({auto_choice(_resolve_method(method), max(image.size), options.get('hd_size'))})"
    headers["X-FastInpaint-HD-Strategy"] = f"{hd} -> {ran}"
    notes = list(image.notes)  # palette/CMYK converted, first frame of several, ...
    mask_bytes = raw("mask", False)
    if mask_bytes is not None:
        hole = mask_plane(mask_bytes, "mask", image.size, limits)
        mask_name = "field 'mask'"
    else:  # the command line's rule for an image without a mask file: its alpha is the mask
        from fastinpaint.io import alpha_hole

        hole = alpha_hole(image.pixels)
        if hole is None:
            raise RequestError(400, "field 'mask' is missing and the image has no alpha channel to use as the "
                                    "mask (transparent = hole)")
        mask_name = "the image's alpha channel (no 'mask' field)"
        notes.append("no mask given: the image's alpha channel is the mask (transparent = hole)")
    if hole.all():
        raise RequestError(400, f"{mask_name} covers the whole image: there are no known pixels to copy from "
                                f"({'white' if mask_bytes is not None else 'transparent'} = hole)")
    if not hole.any():
        notes.append("empty mask: nothing to fill, the image is answered unchanged")
    src_bytes = raw("source_mask", False)
    source = None
    if src_bytes is not None:
        if method in NO_SOURCE_MASK:
            raise RequestError(400, f"field 'source_mask' applies to method 'patchmatch', not {method!r}")
        source = mask_plane(src_bytes, "source_mask", image.size, limits)
        if not (source & ~hole).any():
            raise RequestError(400, "field 'source_mask' allows no known pixel to be copied from "
                                    "(white = may be copied from)")
    return InpaintJob(image, hole, source, method, seed, options, headers, notes)


def header_value(text: str) -> str:
    """``text`` as a response header carries it: one line of ASCII (header values are Latin-1; a
    file or folder name's other characters escaped)."""
    return " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")


def encode_result(pixels: np.ndarray, source, notes: Optional[List[str]] = None) -> Tuple[bytes, str]:
    """(bytes, content type) of the result ``pixels`` in the input's format (``source``, the
    :class:`fastinpaint.io.Picture` it came from) where it can be written as such, else PNG, by
    the rules of :func:`fastinpaint.io.write_image`: 16-bit colour kept (PNG, TIFF), float kept
    (TIFF), JPEG at the input's quality with 4:4:4 chroma, the input's colour profile and EXIF kept.
    ``notes``: a list to which a format other than the input's is said."""
    from fastinpaint.io import _16BIT_FORMATS, ImageIOError, encode_image

    fmt = source.format if source.format in _OUTPUT_FORMATS else "PNG"
    if pixels.dtype == np.uint16 and fmt not in _16BIT_FORMATS:
        fmt = "PNG"  # 16 bits (grey or colour): the writer refuses formats that would round them to 8
    if pixels.dtype.kind == "f":
        fmt = "TIFF"  # float: the one format the writer keeps it in (a float PFM upload, too)
    try:
        data = encode_image(pixels, fmt, source=source)
    except ImageIOError:
        data, fmt = encode_image(pixels, "PNG", source=source), "PNG"
    if notes is not None and fmt != source.format:
        notes.append(f"{source.format or 'the input'} answered as {fmt}")
    return data, _OUTPUT_FORMATS[fmt]


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line, without the reprs of in-memory objects Pillow puts in
    it ("cannot identify image file <_io.BytesIO object at 0x...>"): they tell a client nothing."""
    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", str(exc))
    return " ".join(text.split()) or type(exc).__name__
