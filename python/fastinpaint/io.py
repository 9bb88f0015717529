"""Reading and writing image and mask files: the one reader and the one writer that the command
line (single files and batch mode), ``fastinpaint eval``, the training data reader and the HTTP
server's decoder use.

Reading (:func:`read_image`): the picture **as displayed** — EXIF orientation applied (an XMP
``tiff:Orientation`` where the EXIF has none, as Pillow reads one) — as a NumPy
array (``(H, W)`` grey, ``(H, W, 2)`` grey + alpha, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA; uint8,
uint16 for 16-bit files, float for floating-point TIFFs: on [0, 1], in the file's own float
type), plus what a writer needs to give it back as it came: its ICC profile, its EXIF (the
block as it came, byte for byte but for the orientation's value, set to 1 in place; a TIFF's
EXIF, its first IFD, re-serialised with orientation 1), its XMP packet (JPEG APP1, PNG iTXt
"XML:com.adobe.xmp", WebP "XMP " chunk, TIFF tag 700: byte for byte but for the value of a
``tiff:Orientation``, attribute or element, set to 1 in place; a JPEG's Extended XMP is not read,
with a note), its JPEG quality. Palette and CMYK
files are converted to RGB(A), with a note; premultiplied alpha is divided out (straight
alpha), with a note; a file of several frames (multi-page TIFF, animation, a camera's MPO JPEG)
gives its first frame, with a note. 16-bit
colour and 16-bit grey + alpha PNG/TIFF files are read with OpenCV, because Pillow reads them as
8-bit RGB(A) (it has no 16-bit colour or grey + alpha mode) and OpenCV's reader (libpng/libtiff)
keeps the 16 bits; a 16-bit grey + alpha TIFF, which neither reads, and a float TIFF other than
32-bit grey (Pillow's only float mode), with ``tifffile`` where it is installed (it comes with
scikit-image), within Pillow's size guard as Pillow's files are.

**The mask rule** (:func:`hole_from_pil`, used for every mask file and mask upload): the mask is
read in displayed orientation like the image, converted to grey (ITU-R 601 luma; alpha ignored;
16-bit masks scaled to 8-bit), and **grey > 127 is a hole** — anti-aliased and JPEG masks work, and a
mask whose only colour is dark (pure red is luma 76) marks no hole. Without a mask file, an image's
alpha is the mask: **alpha <= 127 (transparent) is a hole** (16-bit: <= 32767, float: <= 0.5;
:func:`hole_from_alpha`). ``invert``
swaps hole and keep; ``dilate`` grows the hole by that many pixels (every pixel within that
Euclidean distance of the hole: a disc), over anti-aliased edges and shadows. Arrays handed to
:func:`fastinpaint.inpaint` directly are already holes: non-zero = hole.

Writing (:func:`write_image`): the format from the extension (one of ``WRITABLE_FORMATS``); JPEG at the input's quality when
the input was a JPEG (else 95), with 4:4:4 chroma, or at ``quality``; WebP lossless (known pixels
bit for bit) unless a ``quality`` is given; PNG at ``png_compression``; ICC profile and EXIF
(orientation 1: the pixels are upright) carried over, 16-bit PNG and TIFF included (16-bit TIFF
needs ``tifffile``, without which it says what it drops). JPEG, PNG and WebP get the EXIF block
byte for byte but for the orientation's 2 bytes and the thumbnail (IFD1, the photo before the
fill: unlinked and its bytes zeroed), so a maker note's offsets (counted from the block's TIFF
header) still point where they did; it is re-serialised by Pillow only where it
cannot be patched in place (an orientation that is not one SHORT). A TIFF's EXIF is its first
IFD: from a TIFF input, and into a TIFF output, it is re-serialised (less the tags of a pixel
layout), its values laid out anew, so a maker note's offsets are not kept there (its tag 700,
the XMP, travels as the packet). The XMP packet goes to JPEG (APP1), PNG (iTXt), WebP ("XMP "
chunk) and TIFF (tag 700), 16-bit and ``tifffile``'s TIFF included, as read: a packet over the
65,504 bytes a JPEG's one APP1 segment holds is dropped from a JPEG with a note, not split into
Extended XMP (that rewrites its XML); BMP, GIF, PPM and TGA hold no XMP, and it is dropped there
as the ICC profile and EXIF are, without a note. 16-bit grey +
alpha is written as such to PNG (by :func:`_encode_png_grey_alpha16`: neither Pillow nor
OpenCV writes it) and, with ``tifffile``, to TIFF. 16 bits go only to PNG and TIFF: 16-bit
grey or colour to another format is refused, not rounded to 8 bits; float goes only to TIFF,
in its own float type (32-bit grey by Pillow, the
rest by ``tifffile``, without which it is refused): to another format it is refused, not rounded
to integers; alpha written to JPEG, BMP or PPM (no alpha) is dropped with a warning; GIF
output of more than 256 colours is quantised (by Pillow) with a warning. :func:`check_destination` checks the
destination before any computing; the file is written to a temporary file in the same folder and
published with a hard link (or ``renameat2(RENAME_NOREPLACE)``), a step that fails if the name
exists, so two writers of one path cannot both succeed; only ``overwrite`` replaces. Every problem
is an :class:`ImageIOError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io as _stdio
import os
import re
import struct
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

__all__ = ["ImageIOError", "ImageTooLargeError", "OutputExistsError", "Picture", "read_image", "read_mask",
           "hole_from_pil", "hole_from_alpha", "alpha_hole", "grow_hole", "tifffile_only_size", "to_rgb8", "check_destination",
           "check_output_folder", "check_encodable", "write_image", "write_file", "jpeg_quality", "MASK_THRESHOLD",
           "require_hole"]

#: Grey values above this are holes in mask files; alpha at or below it is a hole.
MASK_THRESHOLD = 127
#: JPEG quality when the input was not a JPEG (or had no readable quantisation tables).
DEFAULT_JPEG_QUALITY = 95
#: PNG zlib level (0-9): 6 is libpng's default, a good balance of size and time.
DEFAULT_PNG_COMPRESSION = 6

Source = Union[str, os.PathLike, bytes]


class ImageIOError(ValueError):
    """A file that cannot be read or written as asked; the message is one line naming it."""


class OutputExistsError(ImageIOError):
    """The output file exists (``overwrite`` not given), found up front or made by another process
    while this one computed. A batch that skips existing outputs counts it as skipped."""


class ImageTooLargeError(ImageIOError):
    """An image larger than Pillow opens: its decompression-bomb guard (twice
    ``PIL.Image.MAX_IMAGE_PIXELS``, which :func:`pixel_limit` sets for a read); the message gives
    Pillow's size and limit. The server answers it 413 (too large), not 400 (unreadable)."""


#: Held while a read runs under :func:`pixel_limit`: Pillow's guard is one setting per process.
_PIXEL_LIMIT = threading.RLock()


@contextlib.contextmanager
def pixel_limit(max_pixels: Optional[int]):
    """Reads inside this ``with`` block meet ``max_pixels`` as Pillow's decompression-bomb guard
    (``PIL.Image.MAX_IMAGE_PIXELS``; None: none), whatever it was, restored afterwards: the
    server's ``--max-pixels`` is then its one limit, above Pillow's default (179 MP) too. The
    caller checks the size a header gives against ``max_pixels`` itself (Pillow only warns above
    it); Pillow refuses (:class:`ImageTooLargeError`) above twice it what no header sizes (a
    TIFF's tile, a later frame), as its own guard does above twice its setting. The setting is the
    process's: such reads take turns (a lock; nested blocks are fine), and any other read in the
    process meanwhile meets it too."""
    from PIL import Image

    with _PIXEL_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if max_pixels is None else int(max_pixels)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@dataclass
class Picture:
    """An image as displayed, and what is needed to write a result the way it came."""

    pixels: np.ndarray
    format: Optional[str] = None
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None
    quality: Optional[int] = None  # estimated JPEG quality of the input
    notes: List[str] = field(default_factory=list)  # conversions made while reading
    xmp: Optional[bytes] = None  # the XMP packet as it came but for tiff:Orientation, set to 1

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height), as Pillow says it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def _name(src: Source) -> str:
    return "<bytes>" if isinstance(src, bytes) else str(src)


def _open_pil(src: Source, what: str):
    """The Pillow image of a file or bytes, fully loaded (not yet oriented)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(src, bytes):
        p = Path(src)
        if not p.exists():
            raise ImageIOError(f"{what} file not found: {p}")
        if p.is_dir():
            raise ImageIOError(f"{what} path is a directory, not an image file: {p}")
    img = None
    try:
        img = Image.open(_stdio.BytesIO(src) if isinstance(src, bytes) else src)
        img.load()
    except (UnidentifiedImageError, *_pil_read_errors()) as exc:
        if img is not None:  # a truncated file: Pillow opened it and keeps it open until closed
            img.close()
        raise _read_failed(exc, what, src) from None
    return img


def _pil_read_errors() -> tuple:
    """What Pillow raises for a file it cannot decode (truncated, corrupt, past its size guard)."""
    from PIL import Image

    return OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError


def _read_failed(exc: BaseException, what: str, src: Source) -> ImageIOError:
    """The one-line error for ``exc`` met reading ``src``: too large (Pillow's guard), else unreadable."""
    from PIL import Image

    error = ImageTooLargeError if isinstance(exc, Image.DecompressionBombError) else ImageIOError
    return error(f"cannot read {what} {_name(src)}: {_one_line(exc)}")


#: The TIFF photometric interpretation of 1 to 4 channels: grey (MinIsBlack), grey + alpha, RGB, RGBA.
_TIFF_PHOTOMETRIC = {1: 1, 2: 1, 3: 2, 4: 2}


def _read_by_tifffile(page) -> bool:
    """Whether a tifffile page is of a kind read with tifffile, not Pillow: 16-bit grey + alpha
    (Pillow has no such mode, OpenCV reads it wrong) or floating-point samples (Pillow reads 32-bit
    float grey only); grey or RGB, each with or without alpha."""
    channels = page.samplesperpixel
    if _TIFF_PHOTOMETRIC.get(channels) != int(page.photometric):
        return False
    return int(page.sampleformat) == 3 or (page.dtype == np.uint16 and channels == 2)


def _with_tiff_page(src: Source, read):
    """``read(page)`` of a TIFF's first page, opened with tifffile (not a dependency: present with
    scikit-image); None where tifffile is not installed or does not read the file. An
    :class:`ImageIOError` of ``read`` is raised."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(_stdio.BytesIO(src) if isinstance(src, bytes) else src) as tif:
            return read(tif.pages[0])
    except ImageIOError:
        raise
    except Exception:  # noqa: BLE001 - not a TIFF tifffile reads either: Pillow's error stands
        return None


def _with_tifffile_only(src: Source, read):
    """``read(page)`` of a TIFF of a kind only tifffile reads (:func:`_read_by_tifffile`); None for
    any other file."""
    return _with_tiff_page(src, lambda page: read(page) if _read_by_tifffile(page) else None)


def _kind_read(page) -> bool:
    """Whether fastinpaint reads TIFF pages of this kind of samples, whether or not this one
    decodes: 1 to 4 channels of 1, 8 or 16-bit unsigned integers, or of floating-point numbers."""
    fmt, bits, channels = int(page.sampleformat), page.bitspersample, page.samplesperpixel
    return (fmt == 1 and bits in (1, 8, 16) and 1 <= channels <= 4) or _read_by_tifffile(page)


def _unsupported_tiff(src: Source) -> Optional[str]:
    """What a TIFF that tifffile parses, of a kind fastinpaint does not read (:func:`_kind_read`),
    is (samples, bits, kind): Pillow's "cannot identify image file" read as a corrupt file. None
    for any other file: a TIFF of a kind it reads keeps Pillow's error (a truncated one was said
    to be "not supported")."""
    def describe(page):
        if _kind_read(page):
            return None
        kind = {1: "integer", 2: "signed integer", 3: "floating-point"}.get(int(page.sampleformat), "")
        return (f"a TIFF of {page.samplesperpixel} channels of {page.bitspersample}-bit {kind} samples, "
                "which is not supported (8 or 16-bit integer or floating-point grey or colour, each with or "
                "without alpha, are)")

    return _with_tiff_page(src, describe)


def tifffile_only_size(src: Source) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of a TIFF that :func:`read_image` reads with tifffile (16-bit grey +
    alpha, floating-point samples), from its header, nothing decoded: the files it reads that
    Pillow cannot open (the server checks sizes by it); None for any other file."""
    return _with_tifffile_only(src, lambda page: (page.imagewidth, page.imagelength))


def _read_tifffile_only(src: Source, what: str) -> Optional[Picture]:
    """A TIFF that only tifffile reads as :func:`read_image` reads the others: its first page,
    within Pillow's size guard, shown in its EXIF orientation, its colour profile and EXIF kept;
    premultiplied (associated) alpha made straight, as Pillow's RGBa is. None for any other file."""
    def read(page):
        _check_pixel_guard(page.imagewidth * page.imagelength, what, src)
        try:
            pixels = page.asarray()
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data, as Pillow's errors are
            raise ImageIOError(f"cannot read {what} {_name(src)}: {_one_line(exc)}") from None
        if page.axes.startswith("S"):  # planar configuration "separate": one plane per channel
            pixels = np.moveaxis(pixels, 0, -1)
        notes = []
        if page.extrasamples and int(page.extrasamples[0]) == 1:  # ExtraSamples 1: associated alpha
            pixels = _straight_alpha(pixels)
            notes.append("premultiplied alpha: the colour divided by it (written back straight)")
        icc = page.tags[34675].value if 34675 in page.tags else None  # InterColorProfile
        xmp = _xmp_packet(page.tags[_XMP_TAG].value if _XMP_TAG in page.tags else None)
        exif, orientation = _tiff_exif(src)
        if orientation is None:  # no EXIF orientation: the XMP's, as Pillow's getexif() reads one
            orientation = _xmp_orientation(xmp)
        pixels = _orient_array(pixels, orientation)
        return Picture(np.ascontiguousarray(pixels), "TIFF", bytes(icc) if icc else None, exif, notes=notes,
                       xmp=_upright_xmp(xmp))

    return _with_tifffile_only(src, read)


def _straight_alpha(a: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` colour + premultiplied alpha (integer or float on [0, 1]) with the colour
    divided by its alpha (0 under alpha 0)."""
    white = 1.0 if a.dtype.kind == "f" else float(np.iinfo(a.dtype).max)
    alpha = a[..., -1:].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(alpha > 0, a[..., :-1] * (white / alpha), 0)
    if a.dtype.kind != "f":
        colour = np.clip(np.round(colour), 0, white)
    return np.concatenate([colour.astype(a.dtype), a[..., -1:]], axis=-1)


def _check_pixel_guard(pixels: int, what: str, src: Source) -> None:
    """Pillow's decompression-bomb guard (twice ``PIL.Image.MAX_IMAGE_PIXELS``) for a file read
    without Pillow, in Pillow's words (the server reads its size and limit from them)."""
    from PIL import Image

    cap = Image.MAX_IMAGE_PIXELS
    if cap is not None and pixels > 2 * cap:
        raise ImageTooLargeError(f"cannot read {what} {_name(src)}: Image size ({pixels} pixels) exceeds limit of "
                                 f"{2 * cap} pixels, could be decompression bomb DOS attack.")


def _tiff_exif(src: Source) -> Tuple[Optional[bytes], Optional[int]]:
    """A TIFF's EXIF to carry (:func:`_exif_to_carry`'s: its first IFD less layout tags and XMP,
    with its Exif and GPS sub-IFDs, orientation 1, re-serialised: the IFD is the file's own, no
    block to copy) and its orientation (None where it has none: the caller looks at the XMP's),
    for a TIFF Pillow cannot decode: Pillow's EXIF parser reads the file's own IFDs (a TIFF is
    laid out as an EXIF block is)."""
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(src if isinstance(src, bytes) else Path(src).read_bytes())
        orientation = int(exif[0x0112]) if 0x0112 in exif else None
        return _carried_from_tiff(exif), orientation
    except Exception:  # noqa: BLE001 - an unreadable EXIF is not carried over; the pixels as stored
        return None, 1


def orient(img):
    """``img`` as displayed (EXIF orientation applied); keeps ``format``."""
    from PIL import ImageOps

    fmt = img.format
    try:
        out = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError):  # a corrupt EXIF block: show the pixels as stored
        return img
    out.format = fmt
    return out


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF counts as no orientation
        return 1


def _orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """The EXIF orientation transform (as Pillow's exif_transpose) on an (H, W, ...) array."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, -1), 7: lambda x: np.rot90(x, -1)[::-1],
           8: lambda x: np.rot90(x, 1)}
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def read_image(src: Source, what: str = "image") -> Picture:
    """The image in ``src`` (a path or the file's bytes) as displayed; see the module docstring."""
    try:
        img = _open_pil(src, what)
    except ImageTooLargeError:  # past Pillow's size guard: so said, whatever kind of file (a TIFF
        raise  # was said to be "not supported")
    except ImageIOError as exc:
        pic = _read_tifffile_only(src, what)
        if pic is None:
            unsupported = _unsupported_tiff(src)
            if unsupported:  # a TIFF no reader decodes: say what it is, not "cannot identify"
                raise ImageIOError(f"cannot read {what} {_name(src)}: {unsupported}") from None
            raise exc
        return pic
    # Pillow keeps a multi-frame file open for its other frames: closed here, once read. Counting
    # the frames and decoding the pixels can still fail (a frame past Pillow's size guard, a
    # truncated 16-bit scan): the same one-line error as opening
    try:
        with img:
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            pic = _picture(src, img, what)
    except ImageIOError:
        raise
    except _pil_read_errors() as exc:
        raise _read_failed(exc, what, src) from None
    if frames > 1:  # a multi-page TIFF, an animation, a camera's MPO with its preview
        pic.notes.append(f"{frames} frames: only the first is read, filled and written")
    return pic


def _picture(src: Source, img, what: str) -> Picture:
    header = _stdio.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")
    with header:
        head = header.read(26)
    # PNG IHDR: bit depth at byte 24, colour type at 25 (2 = RGB, 4 = grey + alpha, 6 = RGBA)
    png16 = head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 4, 6)
    tiff16 = img.format == "TIFF" and img.mode in ("RGB", "RGBA") and \
        tuple(np.atleast_1d(img.tag_v2.get(258, 8)))[0] == 16
    icc = img.info.get("icc_profile")
    quality = jpeg_quality(img) if img.format == "JPEG" else None
    notes: List[str] = []
    # Pillow's exif_transpose (orient(); for a TIFF, Pillow's own loading) strips an XMP
    # tiff:Orientation, the attribute or element with it, from info["xmp"]: read before orient(),
    # and a TIFF's from its tag 700, which Pillow leaves as it came
    xmp = _upright_xmp(_xmp_packet(img.tag_v2.get(_XMP_TAG) if img.format == "TIFF" else img.info.get("xmp")))
    if img.format == "JPEG" and any(marker == "APP1" and data.startswith(_JPEG_EXTENDED_XMP)
                                    for marker, data in getattr(img, "applist", ())):
        notes.append("Extended XMP (the part of an XMP packet over 64 KB, in further APP1 segments) not read: "
                     "only the main XMP packet is carried")
    if png16 or tiff16:
        pixels = _read_16bit_colour(src, what)
        if png16 and head[25] == 4:  # OpenCV gives grey + alpha as BGRA, the grey repeated
            pixels = np.ascontiguousarray(pixels[..., [0, 3]])
        pixels = _orient_array(pixels, _orientation(img))
        return Picture(pixels, img.format, icc, _exif_to_carry(img), quality, notes, xmp)
    # read before orient(), which re-serialises the EXIF block without its orientation
    exif = _exif_to_carry(img)
    img = orient(img)
    fmt = img.format
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
        notes.append(f"palette image converted to {img.mode}")
    elif mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK image converted to RGB" + (" (its colour profile dropped)" if icc else ""))
        icc = None  # a CMYK profile does not describe the RGB pixels
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        pixels = np.asarray(img).astype(np.uint16)
        return Picture(pixels, fmt, icc, exif, quality, notes, xmp)
    elif mode == "I":
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageIOError(f"cannot read {what} {_name(src)}: 32-bit integer pixels outside 0..65535")
        return Picture(arr.astype(np.uint16), fmt, icc, exif, quality, notes, xmp)
    elif mode not in ("L", "LA", "RGB", "RGBA", "F"):
        # (LAB's "A" band is a colour, not alpha)
        target = PREMULTIPLIED.get(mode) or ("RGBA" if mode in ALPHA_MODES else "RGB")
        img = img.convert(target)
        notes.append(f"{mode} image converted to {target}")
    return Picture(np.array(img), fmt, icc, exif, quality, notes, xmp)


#: TIFF tags that say how a file stores its pixels (size, samples, strips, compression, colour
#: profile): a file's own, never EXIF to carry over. A TIFF's EXIF is its first IFD less these; an
#: EXIF block's copies describe another file (a camera JPEG's thumbnail offsets, its YCbCr
#: sampling) and are never written into a TIFF's first IFD.
_TIFF_LAYOUT_TAGS = frozenset((254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 284, 317, 320,
                               322, 323, 324, 325, 330, 338, 339, 340, 341, 513, 514, 529, 530, 531, 532, 34675))


def _upright_exif(exif):
    """``exif`` (a ``PIL.Image.Exif``) as a writer of upright pixels gives it: orientation 1, no
    layout tags."""
    for tag in _TIFF_LAYOUT_TAGS & set(exif):
        del exif[tag]
    exif[0x0112] = 1
    return exif


def _exif_to_carry(img) -> Optional[bytes]:
    """The EXIF a result of ``img`` carries (orientation 1: it is written upright), read before
    :func:`orient`: the file's EXIF block (JPEG APP1, PNG eXIf, WebP EXIF) as it came, the
    orientation's value patched in place (:func:`_exif_block_to_carry`); or a TIFF's first IFD,
    less layout tags, re-serialised: that IFD is the file's own structure (strip offsets, pixel
    layout), not a block that could be copied, and its offsets count from the TIFF's header, so a
    maker note's offsets cannot be kept from a TIFF input. None without any."""
    if img.format != "TIFF":
        return _exif_block_to_carry(img.info.get("exif"))
    try:
        return _carried_from_tiff(img.getexif())
    except Exception:  # noqa: BLE001 - an unreadable EXIF block is not carried over
        return None


def _exif_block_to_carry(block: Optional[bytes]) -> Optional[bytes]:
    """An EXIF block (with or without the ``Exif\\0\\0`` header) as a result carries it, with that
    header: byte for byte as it came, but for the orientation's value, set to 1 in place
    (:func:`_upright_exif_in_place`). Re-serialising it (Pillow's ``Exif.tobytes``) would lay
    every value out anew: a maker note (Canon, older Nikon, Olympus, Panasonic, Sony...) holds
    offsets from the TIFF header into the block, which would then point at other bytes (exiftool:
    "MakerNotes offsets may be incorrect"). The thumbnail (IFD1) is the input's, without the fill
    (what the user removed, and turned once the orientation is 1): it is unlinked and blanked in
    place (cut where it ends the block, as cameras write it), as the re-serialisation dropped it.

    Fallbacks: a block that cannot be patched in place (an orientation that is not one SHORT,
    a TIFF structure this reader does not follow) is re-serialised upright by Pillow
    (:func:`_carried`), as it always was; one that Pillow cannot read either is carried as it
    came: no orientation was read from it, so none was applied. None without a block."""
    if not block:
        return None
    patched = _upright_exif_in_place(block)
    if patched is not None:
        return patched
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(block)
    except Exception:  # noqa: BLE001 - unreadable: carried as it came (see above)
        return block
    try:
        return _carried(exif)
    except Exception:  # noqa: BLE001 - read but not writable: not carried over
        return None


#: EXIF (TIFF) tag and type of the orientation: one SHORT, its value inline in its IFD0 entry.
_ORIENTATION_TAG, _SHORT = 0x0112, 3


def _upright_exif_in_place(block: bytes) -> Optional[bytes]:
    """``block`` (a TIFF-structured EXIF block, with or without the ``Exif\\0\\0`` header) with
    the ``Exif\\0\\0`` header and IFD0's orientation set to 1 where it lies, and the thumbnail
    (IFD1) unlinked and blanked: every other byte, and so every offset in it, unchanged. A block without an orientation tag comes back as it came
    (the header added). None where that cannot be done: no TIFF header (``II``/``MM``, 42), an
    IFD0 past the block's end, or an orientation that is not one SHORT (whose value, 2 bytes in
    the block's byte order, sits in the first 2 of its entry's 4-byte value field)."""
    tiff = block[6:] if block.startswith(b"Exif\0\0") else block
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    ifd0 = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd0 < 8 or ifd0 + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[ifd0:ifd0 + 2])[0]
    if ifd0 + 2 + 12 * count > len(tiff):
        return None
    out = bytearray(tiff)
    for entry in range(ifd0 + 2, ifd0 + 2 + 12 * count, 12):
        tag, kind, n = struct.unpack(order + "HHI", tiff[entry:entry + 8])
        if tag == _ORIENTATION_TAG:
            if kind != _SHORT or n != 1:
                return None
            out[entry + 8:entry + 10] = struct.pack(order + "H", 1)
    # IFD1, the thumbnail, shows the photo before the fill: what the user removed would still be in
    # the file, and a viewer would show it sideways once the orientation is 1. Unlinked (IFD0's
    # next-IFD offset 0) and its JPEG bytes zeroed, in place, as Pillow's re-serialisation dropped it.
    next_at = ifd0 + 2 + 12 * count
    if next_at + 4 > len(tiff):
        return None
    ifd1 = struct.unpack(order + "I", tiff[next_at:next_at + 4])[0]
    if ifd1:
        thumb = _thumbnail_span(tiff, order, ifd1)
        if thumb is None:
            return None
        out[next_at:next_at + 4] = b"\0\0\0\0"
        if thumb[1] == len(out):  # where cameras put it, last: cut (a JPEG's EXIF must fit 64 KB)
            del out[thumb[0]:]
        else:
            out[thumb[0]:thumb[1]] = bytes(thumb[1] - thumb[0])
    return b"Exif\0\0" + bytes(out)


def _thumbnail_span(tiff: bytes, order: str, ifd1: int) -> Optional[Tuple[int, int]]:
    """Where IFD1's JPEG thumbnail lies in ``tiff``, ``(start, end)`` (empty when IFD1 has none);
    None for an IFD1 past the block's end, a thumbnail outside it, or an uncompressed one (strips,
    rare: left to Pillow's re-serialisation, which drops IFD1)."""
    if ifd1 < 8 or ifd1 + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[ifd1:ifd1 + 2])[0]
    if ifd1 + 2 + 12 * count > len(tiff):
        return None
    fields = {}
    for entry in range(ifd1 + 2, ifd1 + 2 + 12 * count, 12):
        tag, _, _, value = struct.unpack(order + "HHII", tiff[entry:entry + 12])
        fields[tag] = value
    if 0x0111 in fields:  # StripOffsets
        return None
    start, length = fields.get(0x0201, 0), fields.get(0x0202, 0)  # JPEGInterchangeFormat(Length)
    if start + length > len(tiff):
        return None
    return start, start + length


def _carried_from_tiff(exif) -> Optional[bytes]:
    """A TIFF's first IFD (a ``PIL.Image.Exif``) as the EXIF a result carries (:func:`_carried`),
    less its XMP (tag 700): that is carried as the packet, its orientation patched
    (:func:`_upright_xmp`), and written as XMP, not as an EXIF tag."""
    if _XMP_TAG in exif:
        del exif[_XMP_TAG]
    return _carried(exif)


def _carried(exif) -> Optional[bytes]:
    """The bytes of ``exif`` made upright (:func:`_upright_exif`); None when nothing but the
    orientation is left."""
    exif = _upright_exif(exif)
    return exif.tobytes() if set(exif) - {0x0112} else None


#: TIFF tag of the XMP packet (a TIFF's, and one an EXIF block may hold in its IFD0).
_XMP_TAG = 700
#: Where an XMP packet's namespace for TIFF properties (tiff:Orientation among them) is declared.
_XMP_TIFF_NS = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']http://ns\.adobe\.com/tiff/1\.0/["']""")
#: The APP1 segments of a JPEG's Extended XMP (the part of a packet over 64 KB: XMP spec part 3, 1.1.3.1).
_JPEG_EXTENDED_XMP = b"http://ns.adobe.com/xmp/extension/\0"


def _xmp_packet(value) -> Optional[bytes]:
    """The XMP packet, as bytes as it came, of what a reader gives: Pillow's ``info["xmp"]`` (a
    JPEG's APP1 "http://ns.adobe.com/xap/1.0/", a PNG's iTXt "XML:com.adobe.xmp", a WebP's
    "XMP " chunk, a TIFF's tag 700) or tifffile's tag 700 value. None without one. Every reader
    path takes it from here and carries it upright (:func:`_upright_xmp`)."""
    if isinstance(value, tuple) and len(value) == 1:  # a tag Pillow gives as a 1-tuple
        value = value[0]
    if isinstance(value, str):  # a tag 700 typed ASCII
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)) or not value:
        return None
    return bytes(value)


def _tiff_orientation_prefixes(packet: bytes) -> List[bytes]:
    """The prefixes an XMP packet binds to the TIFF namespace; ``tiff`` where it declares none."""
    return sorted(set(_XMP_TIFF_NS.findall(packet))) or [b"tiff"]


def _upright_xmp(packet: Optional[bytes]) -> Optional[bytes]:
    """``packet`` (UTF-8, as JPEG, PNG and nearly every writer store XMP) as a writer of upright
    pixels gives it: the value of ``tiff:Orientation`` set to 1 where it lies, in either form
    (the attribute ``tiff:Orientation="6"`` or the element ``<tiff:Orientation>6</...>``), under
    whatever prefix the packet binds to the TIFF namespace; every other byte kept (orientations
    are one digit: the length too). Without one it comes back as it came. The EXIF orientation
    is set to 1 alike (:func:`_upright_exif_in_place`): a viewer that reads the XMP's would turn
    the upright pixels again. None for None."""
    if packet is None:
        return None
    for prefix in _tiff_orientation_prefixes(packet):
        name = re.escape(prefix) + rb":Orientation"
        packet = re.sub(rb"((?<![\w.:-])" + name + rb"""\s*=\s*["']\s*)[0-9]+(?=\s*["'])""", rb"\g<1>1", packet)
        packet = re.sub(rb"(<" + name + rb"(?:\s[^>]*)?>\s*)[0-9]+(?=\s*</" + name + rb"\s*>)", rb"\g<1>1", packet)
    return packet


def _xmp_orientation(packet: Optional[bytes]) -> int:
    """The orientation an XMP packet gives, as Pillow's ``getexif()`` reads it where the EXIF has
    none (``tiff:Orientation``, attribute or element; 1 without), for a TIFF read without Pillow."""
    if packet is None:
        return 1
    match = re.search(rb'tiff:Orientation(="|>)([0-9])', packet)
    return int(match[2]) if match else 1


def _read_16bit_colour(src: Source, what: str) -> np.ndarray:
    try:
        import cv2
    except ImportError as exc:
        raise ImageIOError(f"{what} {_name(src)} has 16 bits per colour channel; reading it needs OpenCV "
                           "(pip install opencv-python-headless)") from exc
    data = np.frombuffer(src if isinstance(src, bytes) else Path(src).read_bytes(), np.uint8)
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED: 16 bits kept, no EXIF rotation
    if a is None or a.ndim != 3:
        raise ImageIOError(f"cannot read {what} {_name(src)} as a 16-bit colour image")
    return np.ascontiguousarray(a[..., [2, 1, 0, 3][: a.shape[2]]])  # BGR(A) -> RGB(A)


def jpeg_quality(img) -> Optional[int]:
    """The IJG quality (1-100) a JPEG was most likely saved at, from its luminance quantisation
    table against the standard one scaled as libjpeg scales it; None without tables."""
    tables = getattr(img, "quantization", None)
    if not tables or 0 not in tables:
        return None
    q = np.asarray(tables[0], dtype=np.float64)
    best, best_err = None, None
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        std = np.clip(np.floor((_STD_LUMA * scale + 50) / 100), 1, 255)
        err = float(np.abs(std - q).sum())
        if best_err is None or err < best_err:
            best, best_err = quality, err
    return best


# The JPEG standard's luminance table (ITU-T T.81 Annex K.1, libjpeg's std_luminance_quant_tbl) in
# natural row-major order: Pillow's `quantization` gives the tables in natural order, not in the
# zigzag order of the file (comparing against a zigzag table read q50 as 52, q90 as 91).
_STD_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61,
                      12, 12, 14, 19, 26, 58, 60, 55,
                      14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62,
                      18, 22, 37, 56, 68, 109, 103, 77,
                      24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101,
                      72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` of what :func:`read_image` gives (16 bits scaled, grey repeated, alpha
    dropped), for code that scores or trains on 8-bit colour."""
    a = pixels
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * 255), 0, 255).astype(np.uint8)  # float: [0, 1]
    if a.ndim == 2:
        a = a[..., None]
    a = a[..., :1] if a.shape[2] in (1, 2) else a[..., :3]
    return np.ascontiguousarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a)


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------
def hole_from_pil(m) -> np.ndarray:
    """(H, W) bool of a mask image already in displayed orientation: the one mask rule."""
    if m.mode == "F":  # float grey, on the [0, 1] scale float images are read on: above 0.5 (127.5 / 255)
        return np.asarray(m) > (MASK_THRESHOLD + 0.5) / 255  # (a 0/1 float mask read as 0..65535 had no hole)
    if m.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit/int grey: 0..65535
        arr = np.asarray(m).astype(np.float64)
        return arr > (MASK_THRESHOLD + 0.5) * 257
    if m.mode in PREMULTIPLIED:
        m = m.convert(PREMULTIPLIED[m.mode])  # the grey itself, not times alpha (La converts only to LA)
    if m.mode in ALPHA_MODES or (m.mode == "P" and "transparency" in m.info):
        m = m.convert("RGBA").convert("RGB")  # alpha ignored: the grey is the rule
    return np.asarray(m.convert("L")) > MASK_THRESHOLD


def hole_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """(H, W) bool: transparent (alpha <= 127, or the 16-bit or float equivalent) is a hole.
    Float alpha is on [0, 1], as float images and masks are: at most 0.5 (127.5 / 255)."""
    if alpha.dtype == np.uint8:
        limit = MASK_THRESHOLD
    elif alpha.dtype.kind == "f":  # (read on 0..65535, every float alpha was a hole)
        limit = (MASK_THRESHOLD + 0.5) / 255
    else:
        limit = (MASK_THRESHOLD + 0.5) * 257
    return alpha <= limit


def alpha_hole(pixels: np.ndarray) -> Optional[np.ndarray]:
    """The hole an image's alpha marks, by :func:`hole_from_alpha` (what the command line and the
    server use when no mask is given); None when ``pixels`` (as :func:`read_image` gives them) has
    no alpha channel: grey + alpha or RGBA, the alpha last."""
    if pixels.ndim != 3 or pixels.shape[2] not in (2, 4):
        return None
    return hole_from_alpha(pixels[..., -1])


def grow_hole(hole: np.ndarray, pixels: int) -> np.ndarray:
    """The hole grown by ``pixels`` in every direction (a disc), e.g. over a soft edge or shadow:
    every pixel within Euclidean distance ``pixels`` of a hole pixel — the same pixels as a
    dilation by the disc ``x*x + y*y <= r*r``."""
    if pixels < 0:
        raise ValueError(f"dilate must be >= 0 pixels, got {pixels}")
    hole = np.asarray(hole, dtype=bool)
    if pixels == 0 or not hole.any():
        return hole
    from scipy import ndimage

    # A distance threshold, not a dilation by a (2r+1)^2 structure: the cost is the image's
    # size whatever the radius (the structure took 30 s and 9.7 GB at r=100 on 256x192, and a
    # MemoryError beyond). sqrt of an integer squared distance is correctly rounded, so
    # `dist <= r` is exactly `d2 <= r*r`; a radius beyond the diagonal reaches every pixel.
    r = min(int(pixels), int(np.ceil(np.hypot(*hole.shape))))
    return ndimage.distance_transform_edt(~hole) <= r


def read_mask(src: Source, size: Optional[Tuple[int, int]] = None, *, invert: bool = False, dilate: int = 0,
              what: str = "mask") -> np.ndarray:
    """(H, W) bool hole of the mask in ``src`` by the one rule (see the module docstring), in
    displayed orientation. ``size``: (width, height) it must have (the displayed image's)."""
    m = orient(_open_pil(src, what))
    if size is not None and m.size != tuple(size):
        raise ImageIOError(f"mask size {m.size[0]}x{m.size[1]} differs from image size {size[0]}x{size[1]} "
                           f"(mask {_name(src)})")
    hole = hole_from_pil(m)
    hole = ~hole if invert else hole
    return grow_hole(hole, dilate)


def require_hole(hole: np.ndarray, src: Source) -> np.ndarray:
    """``hole`` (read from the mask file ``src`` by :func:`read_mask`), or an :class:`ImageIOError`
    naming the file and the rule when it has no hole pixel: where a mask file must mark a hole
    (training and scoring), an empty one is nearly always a 0/1 mask, which the rule reads as empty."""
    if not hole.any():
        raise ImageIOError(f"mask {_name(src)} has no hole pixel (hole = grey > {MASK_THRESHOLD}; "
                           f"a 0/1 mask must be scaled to 0/255)")
    return hole


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
#: The output formats written as asked: the pixels at their size, known pixels bit for bit where
#: the format is lossless, a lossy one at ``quality``. Pillow saves more, but ICO and ICNS shrink
#: the picture to icon sizes (a 400x300 result came out 256x192) and its AVIF encoder ignored the
#: quality and dropped the metadata: refused up front rather than written wrong.
WRITABLE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "PPM", "TGA")


def output_format(out: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ImageIOError(f"cannot tell the image format of output {out} from its extension; use e.g. .png")
    if fmt not in WRITABLE_FORMATS:
        raise ImageIOError(f"cannot write {fmt} ({out}): fastinpaint writes "
                           f"{', '.join(WRITABLE_FORMATS)} (e.g. .png, .jpg, .tif, .webp)")
    return fmt


def check_destination(out: Union[str, os.PathLike], overwrite: bool = False) -> None:
    """Checks, before any computing, that ``out`` can be written: a known extension, not a
    directory, not existing (unless ``overwrite``), in a folder that exists and takes a new file
    (:func:`check_output_folder`)."""
    out = Path(out)
    if out.is_dir():
        raise ImageIOError(f"output {out} is a directory")
    output_format(out)
    if os.path.lexists(out) and not overwrite:
        raise OutputExistsError(f"output {out} already exists; pass --overwrite to replace it")
    check_output_folder(out.parent, out.name)


def check_output_folder(folder: Union[str, os.PathLike], name: str = "fastinpaint") -> None:
    """Checks that ``folder`` exists and takes a new file, by creating and removing a temporary file
    (``.NAME.*.tmp``; permission bits say nothing for root, nor for a read-only mount)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageIOError(f"output folder {folder} does not exist or is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ImageIOError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Pillow's modes with an alpha channel (premultiplied included): the one place that says so.
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
#: Pillow's premultiplied-alpha modes (colour stored times alpha) and the straight-alpha mode each
#: is read in: holes, masks and fills are on the colour itself (Pillow divides by alpha), which a
#: fill on premultiplied values would darken where alpha is partial. Pillow converts La to nothing
#: else: to LA first.
PREMULTIPLIED = {"RGBa": "RGBA", "La": "LA"}

#: The formats that keep 16 bits per channel; anything else would quietly round to 8.
_16BIT_FORMATS = ("PNG", "TIFF")
#: The formats without an alpha channel (Pillow writes BMP's fourth byte, which readers ignore, and
#: refuses grey + alpha there): alpha written to them is dropped with a note.
_NO_ALPHA_FORMATS = ("JPEG", "BMP", "PPM")


def _note(name: str, text: str) -> None:
    """A conversion the writer had to make, said on one line (the command line prints warnings
    as ``fastinpaint: warning: ...``), never made silently."""
    warnings.warn(f"{name}: {text}", stacklevel=4)


def _save_params(fmt: str, pixels: np.ndarray, source: Optional[Picture], quality: Optional[int],
                 png_compression: int) -> dict:
    params: dict = {}
    if fmt == "JPEG":
        q = quality if quality is not None else (source.quality if source and source.quality else DEFAULT_JPEG_QUALITY)
        params.update(quality=int(q), subsampling=0)  # 4:4:4: no chroma blur outside the hole
    elif fmt == "PNG":
        params["compress_level"] = int(png_compression)
    elif fmt == "WEBP":
        if quality is None:
            # lossless unless a quality is asked for: the known pixels come back bit for bit
            # (lossy q95 moved them by up to 53 levels); exact: RGB under alpha 0 kept too
            params.update(lossless=True, exact=True)
        else:
            params["quality"] = int(quality)
    if source is not None:
        if source.icc_profile and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
            params["icc_profile"] = source.icc_profile
        if source.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
            # JPEG (APP1), PNG (eXIf; the 16-bit writer's too) and WebP (EXIF chunk) store the
            # block byte for byte, less the 6-byte header for the last two, which no offset counts:
            # as read (_exif_block_to_carry), its maker note's offsets stay right. TIFF cannot: the
            # EXIF's IFD0 becomes the file's first IFD, re-serialised by Pillow or merged in by
            # _tiff_with_exif, its values laid out anew (see there)
            params["exif"] = source.exif
        if source.xmp and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
            # the packet as read (_upright_xmp): JPEG APP1, PNG iTXt, WebP "XMP " chunk, TIFF tag
            # 700, each byte for byte (_pillow_params for Pillow's writers); BMP, GIF, PPM and TGA
            # hold none, and it is dropped there as the profile and the EXIF are
            params["xmp"] = source.xmp
    return params


#: The most bytes of XMP a JPEG's APP1 segment holds: 65,535 less the length field (2 bytes)
#: and the "http://ns.adobe.com/xap/1.0/\0" name (29).
_JPEG_XMP_LIMIT = 65535 - 2 - 29


def _pillow_params(fmt: str, params: dict, out) -> dict:
    """``params`` as Pillow's writer of ``fmt`` takes them: its XMP packet (``params["xmp"]``)
    passed as that writer stores one. JPEG and WebP take ``xmp=``; a packet too large for a
    JPEG's one APP1 segment is dropped, and said: splitting it into Extended XMP (XMP spec part 3)
    means rewriting its XML (properties moved to a second packet, an MD5 digest added to the
    first), not carrying it as it came. PNG: an iTXt chunk (:func:`_png_xmp_itxt`), which
    Pillow's ``xmp=`` does not write. TIFF: tag 700, added to the EXIF Pillow writes into the
    first IFD (its ``tiffinfo`` would replace the EXIF)."""
    xmp = params.get("xmp")
    if not xmp or fmt == "WEBP":
        return params
    params = dict(params)
    if fmt == "JPEG" and len(xmp) > _JPEG_XMP_LIMIT:
        del params["xmp"]
        _note(str(out), f"XMP not kept: its {len(xmp)} bytes are more than a JPEG's APP1 segment holds "
                        f"({_JPEG_XMP_LIMIT}); use .png, .webp or .tif to keep it")
    elif fmt == "PNG":
        from PIL import PngImagePlugin

        del params["xmp"]
        info = PngImagePlugin.PngInfo()
        info.add(b"iTXt", _png_xmp_itxt(xmp))
        params["pnginfo"] = info
    elif fmt == "TIFF":
        from PIL import Image

        del params["xmp"]
        exif = Image.Exif()
        if params.get("exif"):
            exif.load(params["exif"])
        exif[_XMP_TAG] = xmp  # typed BYTE by Pillow (TiffTags), as the TIFF/XMP specifications want
        params["exif"] = exif
    return params


def _png_xmp_itxt(xmp: bytes) -> bytes:
    """The data of the PNG iTXt chunk that holds XMP (XMP spec part 3, 1.1.5): the keyword
    "XML:com.adobe.xmp", uncompressed (flag and method 0), no language or translated keyword,
    then the packet as it came."""
    return b"XML:com.adobe.xmp\0" + b"\0\0" + b"\0" + b"\0" + xmp


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: big-endian length, type, data, CRC-32 of type and data."""
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _png_with_metadata(png: bytes, icc: Optional[bytes], exif: Optional[bytes], xmp: Optional[bytes] = None) -> bytes:
    """``png`` (OpenCV's encoding, which takes no metadata) with an ``iCCP``, an ``eXIf`` and an
    XMP ``iTXt`` chunk right after IHDR, where the PNG specification wants the first two (before
    PLTE/IDAT); the iTXt may lie anywhere, and lies with them."""
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 data bytes, CRC
    if png[12:16] != b"IHDR":
        raise ImageIOError("unexpected PNG from the 16-bit encoder: no IHDR first")
    extra = b""
    if icc:
        # profile name, NUL, compression method 0 (zlib), the compressed profile
        extra += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))
    if exif:
        # eXIf holds the TIFF-structured EXIF without the JPEG APP1 "Exif\0\0" header
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    if xmp:
        extra += _png_chunk(b"iTXt", _png_xmp_itxt(xmp))
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _encode_16bit_colour(a: np.ndarray, fmt: str, params: dict, out) -> bytes:
    """16-bit RGB(A) as PNG or TIFF (Pillow has no 48/64-bit mode), metadata kept where the
    installed writers can."""
    icc, exif, xmp = params.get("icc_profile"), params.get("exif"), params.get("xmp")
    if fmt == "TIFF":
        data = _tiff_by_tifffile(a, params, out)
        if data is not None:
            return data
        if icc or exif or xmp:
            lost = [w for w, v in (("colour profile", icc), ("EXIF", exif), ("XMP", xmp)) if v]
            what = " and ".join(filter(None, (", ".join(lost[:-1]), lost[-1])))
            _note(str(out), f"{what} not kept: 16-bit colour TIFF is written with OpenCV, which cannot "
                            "(pip install tifffile, or use .png to keep it)")
    import cv2

    ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tiff", a[..., [2, 1, 0, 3][: a.shape[2]]])
    if not ok:
        raise ImageIOError(f"cannot encode {out}")
    data = buf.tobytes()
    return _png_with_metadata(data, icc, exif, xmp) if fmt == "PNG" and (icc or exif or xmp) else data


def _tiff_by_tifffile(a: np.ndarray, params: dict, out) -> Optional[bytes]:
    """Grey ``(H, W)`` or grey + alpha, RGB or RGBA ``(H, W, 2-4)``, 16-bit or float, as TIFF
    with its colour profile, EXIF and XMP (tag 700, typed BYTE, the packet as it came), by
    tifffile (not a dependency: present with scikit-image); None where it is not installed."""
    try:
        import tifffile
    except ImportError:
        return None
    exif = _exif_to_write(params.get("exif"))
    xmp = params.get("xmp")
    if xmp and exif is not None and _XMP_TAG in exif:  # an EXIF block's own tag 700: the packet wins
        del exif[_XMP_TAG]
    buf = _stdio.BytesIO()
    channels = 1 if a.ndim == 2 else a.shape[2]
    kw = dict(extrasamples=["unassalpha"]) if channels in (2, 4) else {}
    if xmp:
        kw["extratags"] = [(_XMP_TAG, "B", len(xmp), xmp, True)]
    # in the EXIF's byte order: its IFDs are then added as Pillow serialises them, unconverted;
    # horizontal differencing for integers only: tifffile's floating-point predictor needs imagecodecs
    tifffile.imwrite(buf, a, photometric="minisblack" if channels <= 2 else "rgb", compression="zlib",
                     predictor=a.dtype.kind != "f", iccprofile=params.get("icc_profile"),
                     byteorder=exif.endian if exif is not None and exif.endian in "<>" else "<", **kw)
    data = buf.getvalue()
    if params.get("exif"):
        try:
            return _tiff_with_exif(data, exif)
        except Exception as exc:  # noqa: BLE001 - the image is still right: written, and the loss said
            _note(str(out), f"EXIF not kept ({_one_line(exc)}); use .png to keep it")
    return data


def _exif_to_write(exif: Optional[bytes]):
    """The ``PIL.Image.Exif`` of an EXIF block, upright (:func:`_upright_exif`); None for no block
    or one Pillow cannot read."""
    if not exif:
        return None
    from PIL import Image

    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return _upright_exif(parsed)
    except Exception:  # noqa: BLE001 - the caller says the EXIF was not kept
        return None


def _tiff_with_exif(tiff: bytes, exif) -> bytes:
    """``tiff`` (a classic one-page TIFF) with ``exif`` (a ``PIL.Image.Exif``, in the file's byte
    order) in its first IFD: the EXIF's IFD0 tags (Make, Model, DateTime, Artist, Copyright, ...)
    and its Exif and GPS sub-IFDs (tags 34665, 34853). tifffile writes no sub-IFD; so the first IFD
    is written again at the end of the file: the writer's entries (their data stays where it is)
    merged with the EXIF's, whose values and sub-IFDs Pillow serialises after it, as its own TIFF
    writer does; the header then points at it and the old IFD is left unreferenced. The EXIF is
    re-serialised, not copied in place as JPEG, PNG and WebP outputs copy it: its offsets would
    count from this file's header, and the file's own IFD0 (the pixel layout) must be merged into
    the EXIF's; so a maker note that holds offsets is not kept intact in a TIFF (use .jpg, .png or
    .webp for that)."""
    if exif is None:
        raise ValueError("Pillow cannot read it")
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        raise ValueError("not a classic TIFF (a BigTIFF, over 4 GB)")
    first = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[first:first + 2])[0]
    table = tiff[first + 2:first + 2 + 12 * count]
    next_ifd = tiff[first + 2 + 12 * count:first + 6 + 12 * count]
    own = {struct.unpack(order + "H", table[i:i + 2])[0]: table[i:i + 12] for i in range(0, len(table), 12)}
    kept = [entry for tag, entry in own.items() if tag not in exif]  # the EXIF's description, software, dpi
    start = len(tiff) + len(tiff) % 2  # an IFD starts on a word boundary
    # Pillow lays its IFD out from `offset`: its entries first, then their data; with `kept`'s
    # entries put before its own, that data lies where Pillow's offsets say
    block = exif.tobytes(start + 12 * len(kept))
    head, ifd = block[6:14], block[14:]  # "Exif\0\0", the TIFF header, then IFD0
    if head[:2] != tiff[:2]:
        raise ValueError("its byte order differs from the file's")
    n = struct.unpack(order + "H", ifd[:2])[0]
    added = [ifd[2 + 12 * i:14 + 12 * i] for i in range(n)]
    entries = sorted(kept + added, key=lambda e: struct.unpack(order + "H", e[:2])[0])  # TIFF: ascending
    new_ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + next_ifd + ifd[2 + 12 * n + 4:]
    return tiff[:4] + struct.pack(order + "I", start) + tiff[8:] + b"\0" * (start - len(tiff)) + new_ifd


def _encode_png_grey_alpha16(a: np.ndarray, params: dict) -> bytes:
    """16-bit grey + alpha ``(H, W, 2)`` as a PNG of colour type 4, which neither Pillow nor
    OpenCV writes: IHDR, the metadata chunks, and the rows Sub-filtered (each byte minus the one
    a pixel, 4 bytes, before it: what libpng's cheapest useful filter does) in one zlib IDAT."""
    h, w = a.shape[:2]
    rows = a.astype(">u2").view(np.uint8).reshape(h, w * 4)
    sub = rows.copy()
    sub[:, 4:] -= rows[:, :-4]  # uint8 arithmetic wraps modulo 256, as the filter is defined
    raw = np.concatenate([np.ones((h, 1), np.uint8), sub], axis=1)  # filter type 1 (Sub) per row
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 4, 0, 0, 0])
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
           + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), int(params.get("compress_level", 6))))
           + _png_chunk(b"IEND", b""))
    icc, exif, xmp = params.get("icc_profile"), params.get("exif"), params.get("xmp")
    return _png_with_metadata(png, icc, exif, xmp) if icc or exif or xmp else png


def _encode_16bit_grey_alpha(a: np.ndarray, fmt: str, params: dict, out) -> bytes:
    if fmt == "PNG":
        return _encode_png_grey_alpha16(a, params)
    data = _tiff_by_tifffile(a, params, out)
    if data is None:
        _note(str(out), "16-bit grey + alpha written as 16-bit RGBA TIFF, the grey repeated "
                        "(pip install tifffile to keep grey + alpha)")
        data = _encode_16bit_colour(np.ascontiguousarray(a[..., [0, 0, 0, 1]]), fmt, params, out)
    return data


def _encode_float(a: np.ndarray, fmt: str, params: dict, out) -> bytes:
    """Float pixels (on [0, 1], as read) as TIFF, the one format written that keeps them: 32-bit
    grey by Pillow (its mode F), the others (grey + alpha, colour; 16 or 64-bit) by tifffile.
    Other formats refuse them, as they refuse 16 bits, rather than round them to integers."""
    channels = 1 if a.ndim == 2 else a.shape[2]
    kind = {1: "grey", 2: "grey + alpha"}.get(channels, "colour")
    if fmt != "TIFF":
        raise ImageIOError(f"cannot write float {kind} as {fmt} ({out}): it holds integers; use .tif, "
                           "which keeps float")
    if a.ndim == 2 and a.dtype == np.float32:
        from PIL import Image

        buf = _stdio.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, **_pillow_params(fmt, params, out))
        return buf.getvalue()
    data = _tiff_by_tifffile(a, params, out)
    if data is None:
        raise ImageIOError(f"cannot write float {kind} as TIFF ({out}) without tifffile (Pillow writes 32-bit "
                           "float grey only): pip install tifffile")
    return data


def _encode(pixels: np.ndarray, fmt: str, params: dict, out) -> bytes:
    from PIL import Image

    a = pixels
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype == np.uint16 and fmt not in _16BIT_FORMATS:  # one rule for grey and colour
        kind = "colour" if a.ndim == 3 and a.shape[2] in (3, 4) else "grey"
        raise ImageIOError(f"cannot write 16-bit {kind} as {fmt} ({out}): it holds 8 bits per channel; "
                           "use .png or .tif, which keep 16")
    if a.dtype.kind == "f":  # one rule for grey and colour, as for 16 bits
        return _encode_float(a, fmt, params, out)
    if a.dtype == np.uint16 and a.ndim == 3 and a.shape[2] in (3, 4):
        return _encode_16bit_colour(a, fmt, params, out)
    if a.dtype == np.uint16 and a.ndim == 3:  # grey + alpha: no Pillow mode
        return _encode_16bit_grey_alpha(a, fmt, params, out)
    img = Image.fromarray(a)  # 16-bit grey: I;16
    if fmt == "GIF" and img.getcolors(256) is None:  # Pillow quantises without a word
        _note(str(out), "GIF holds 256 colours: the result is quantised, the known pixels too "
                        "(use .png to keep every colour)")
    if fmt in _NO_ALPHA_FORMATS and img.mode in ("LA", "RGBA"):  # one rule: dropped, and said
        if (np.asarray(img.getchannel("A")) != 255).any():  # an opaque alpha loses nothing
            _note(str(out), f"alpha channel dropped: {fmt} has no alpha (use .png, .webp or .tif to keep it)")
        img = img.convert("L" if img.mode == "LA" else "RGB")
    if fmt == "PPM" and str(out).lower().endswith(".pgm") and img.mode != "L":
        # Pillow writes colour as P6 whatever the extension: a .pgm that is no grey map
        raise ImageIOError(f"cannot write {out}: PGM holds grey and the image is {img.mode}; use .ppm")
    if fmt == "GIF" and img.mode == "LA":  # Pillow's GIF keeps transparency from RGBA, not from LA
        img = img.convert("RGBA")
    buf = _stdio.BytesIO()
    img.save(buf, format=fmt, **_pillow_params(fmt, params, out))
    return buf.getvalue()


_RENAME_NOREPLACE = 1


def _publish(tmp: str, out: Path, overwrite: bool) -> None:
    """Makes ``tmp`` visible as ``out``; without ``overwrite`` a step that fails if ``out``
    exists (never check-then-replace)."""
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # atomic, fails with EEXIST
        os.unlink(tmp)
        return
    except FileExistsError:
        raise
    except OSError as exc:  # a file system without hard links: try renameat2(RENAME_NOREPLACE)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOTSUP, "this file system offers no rename that refuses to replace")
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(tmp), at_fdcwd, os.fsencode(str(out)), _RENAME_NOREPLACE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(out))


def encode_image(pixels: np.ndarray, fmt: str, *, source: Optional[Picture] = None, quality: Optional[int] = None,
                 png_compression: int = DEFAULT_PNG_COMPRESSION, name: str = "the result") -> bytes:
    """The bytes of ``pixels`` as a ``fmt`` file (``"PNG"``, ``"JPEG"``, ...), by the same rules as
    :func:`write_image` (16-bit colour kept in PNG/TIFF, JPEG quality, metadata of ``source``)."""
    try:
        return _encode(np.asarray(pixels), fmt, _save_params(fmt, pixels, source, quality, png_compression), name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ImageIOError):
            raise
        raise ImageIOError(f"cannot write {name}: {_one_line(exc)}") from None


def check_encodable(pixels: np.ndarray, out: Union[str, os.PathLike], *, source: Optional[Picture] = None,
                    quality: Optional[int] = None) -> None:
    """Checks, before any computing, that a result like ``pixels`` (its dtype and channels) can be
    written to ``out``'s format, by encoding a 2x2 corner of it the way :func:`write_image` will
    (its notes are said then, not now): grey + alpha to BMP, float grey to PNG were refused only
    after the whole fill."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encode_image(np.ascontiguousarray(pixels[:2, :2]), output_format(Path(out)), source=source,
                     quality=quality, name=str(out))


def write_image(pixels: np.ndarray, out: Union[str, os.PathLike], *, overwrite: bool = False,
                source: Optional[Picture] = None, quality: Optional[int] = None,
                png_compression: int = DEFAULT_PNG_COMPRESSION) -> None:
    """Writes ``pixels`` (as :func:`read_image` gives them) to ``out``; see the module docstring.
    ``source``: the :class:`Picture` the result came from (its metadata and JPEG quality)."""
    out = Path(out)
    check_destination(out, overwrite)
    if quality is not None and not 1 <= quality <= 100:
        raise ImageIOError(f"quality must be between 1 and 100, got {quality}")
    data = encode_image(pixels, output_format(out), source=source, quality=quality,
                        png_compression=png_compression, name=str(out))
    write_file(data, out, overwrite=overwrite)


def write_file(data: bytes, out: Union[str, os.PathLike], *, overwrite: bool = False) -> None:
    """Writes ``data`` (an encoded file) to ``out`` as :func:`write_image` writes its files: a
    temporary file in the same folder, published without replacing unless ``overwrite``. A name
    taken meanwhile raises :class:`OutputExistsError` (the caller may pick another); any other
    problem, an :class:`ImageIOError` "cannot write OUT: why"."""
    out = Path(out)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, out, overwrite)
        tmp = None
    except FileExistsError:
        raise OutputExistsError(f"output {out} already exists (written by another process meanwhile); "
                                "pass --overwrite to replace it") from None
    except OSError as exc:
        raise ImageIOError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
