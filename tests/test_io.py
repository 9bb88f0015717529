"""fastinpaint.io: files that are not what they seem (orientation, ICC, 16-bit colour, JPEG
quality, the one mask rule through every entry point) and writes that cannot clobber."""

import gc
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import fastinpaint
from fastinpaint import cli
from fastinpaint import io as fio

H, W = 32, 48


def run(*args):
    return cli.main([str(a) for a in args])


def _photo(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256], -1)
    return np.clip(rgb + rng.integers(-6, 7, rgb.shape), 0, 255).astype(np.uint8)


# Pillow's exif_transpose is the independent reference for the 8 orientations; here, the same
# transforms written out from the EXIF specification.
_DISPLAY = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
            8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_image_and_mask_in_displayed_orientation(tmp_path, orientation):
    stored = _photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "in.png", exif=exif.tobytes())
    shown = np.ascontiguousarray(_DISPLAY[orientation](stored))
    pic = fio.read_image(tmp_path / "in.png")
    np.testing.assert_array_equal(pic.pixels, shown)
    # a mask drawn on the displayed photo (no EXIF): accepted, same orientation
    mask = np.zeros(shown.shape[:2], np.uint8)
    mask[4:10, 6:14] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "mask.png", "-o", tmp_path / "out.png") == 0
    out = fio.read_image(tmp_path / "out.png")
    assert out.pixels.shape == shown.shape
    keep = mask == 0
    np.testing.assert_array_equal(out.pixels[keep], shown[keep])
    assert Image.open(tmp_path / "out.png").getexif().get(0x0112, 1) == 1  # not rotated twice


def test_icc_profile_and_exif_round_trip(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0112] = 6
    Image.fromarray(_photo()).save(tmp_path / "in.jpg", quality=90, icc_profile=icc, exif=exif.tobytes())
    mask = np.zeros((W, H), np.uint8)  # displayed: rotated
    mask[5:12, 5:12] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.jpg", tmp_path / "m.png", "-o", tmp_path / "out.jpg") == 0
    out = Image.open(tmp_path / "out.jpg")
    assert out.info.get("icc_profile") == icc
    assert out.getexif().get(0x010F) == "PhoneMaker"
    assert out.size == (H, W)


def test_16bit_rgb_stays_16bit(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    rgb16[..., 0] |= 1  # low bits matter: an 8-bit round trip would lose them
    cv2.imwrite(str(tmp_path / "in.png"), rgb16[..., ::-1])
    pic = fio.read_image(tmp_path / "in.png")
    assert pic.pixels.dtype == np.uint16
    np.testing.assert_array_equal(pic.pixels, rgb16)
    mask = np.zeros((H, W), np.uint8)
    mask[8:16, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "m.png", "-o", tmp_path / "out.png",
               "--method", "biharmonic") == 0
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[mask == 0], rgb16[mask == 0])


def _fresh_rng():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    return np.random.default_rng(seed), seed


def test_16bit_colour_png_keeps_profile_and_exif(tmp_path):
    cv2 = pytest.importorskip("cv2")
    tifffile = pytest.importorskip("tifffile")  # an independent writer of a 16-bit file with a profile
    rng, seed = _fresh_rng()
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tifffile.imwrite(tmp_path / "in.tif", rgb16, photometric="rgb", iccprofile=icc)
    pic = fio.read_image(tmp_path / "in.tif")
    assert pic.icc_profile == icc
    fio.write_image(pic.pixels, tmp_path / "out.png", source=pic)
    out = Image.open(tmp_path / "out.png")  # Pillow checks each chunk's CRC
    assert out.info["icc_profile"] == icc
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)  # libpng checks them too
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., ::-1], rgb16, err_msg=f"seed {seed}")
    # EXIF: in an eXIf chunk, read back by Pillow; PNG to PNG through io keeps both
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    pic.exif = exif.tobytes()
    fio.write_image(pic.pixels, tmp_path / "e.png", source=pic)
    again = fio.read_image(tmp_path / "e.png")
    fio.write_image(again.pixels, tmp_path / "e2.png", source=again)
    out = Image.open(tmp_path / "e2.png")
    assert out.info["icc_profile"] == icc and out.getexif().get(0x010F) == "PhoneMaker"
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "e2.png"), cv2.IMREAD_UNCHANGED)[..., ::-1], rgb16)


def test_16bit_colour_tiff_keeps_profile_or_says_so(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    rng, seed = _fresh_rng()
    rgba16 = rng.integers(0, 65536, (H, W, 4), dtype=np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    src = fio.Picture(rgba16, "TIFF", icc, exif.tobytes())
    if _has("tifffile"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # profile and EXIF both kept: nothing to say
            fio.write_image(rgba16, tmp_path / "t.tif", source=src)
        out = Image.open(tmp_path / "t.tif")
        assert out.info["icc_profile"] == icc and out.getexif()[0x010F] == "PhoneMaker"
        np.testing.assert_array_equal(fio.read_image(tmp_path / "t.tif").pixels, rgba16, err_msg=f"seed {seed}")
        with pytest.warns(UserWarning, match=r"EXIF not kept \(Pillow cannot read it\).*use .png"):
            fio.write_image(rgba16, tmp_path / "bad.tif", source=fio.Picture(rgba16, "TIFF", icc, b"Exif\0\0junk"))
        np.testing.assert_array_equal(fio.read_image(tmp_path / "bad.tif").pixels, rgba16)
    monkeypatch.setitem(sys.modules, "tifffile", None)  # without tifffile: OpenCV, and a warning
    with pytest.warns(UserWarning, match="colour profile and EXIF not kept.*use .png"):
        fio.write_image(rgba16, tmp_path / "o.tif", source=src)
    np.testing.assert_array_equal(fio.read_image(tmp_path / "o.tif").pixels, rgba16, err_msg=f"seed {seed}")


def _camera_exif(endian):
    """A camera's EXIF: Make/Model/DateTime/Artist/Copyright in IFD0, DateTimeOriginal, exposure
    and a maker note in the Exif sub-IFD, a GPS sub-IFD, and Orientation 6 (rotate 90 clockwise)."""
    exif = Image.Exif()
    exif.endian = endian
    exif.update({0x010F: "Canon", 0x0110: "EOS R5", 0x0132: "2024:05:06 07:08:09", 0x013B: "A. Person",
                 0x8298: "(c) A. Person", 0x0112: 6})
    exif.get_ifd(0x8769).update({0x9003: "2024:05:06 07:08:09", 0x829A: 1 / 250, 0x927C: b"maker" * 10})
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 12.5)})
    return exif.tobytes()


def _png16_with_exif(rgb16, exif):
    """A 16-bit RGB PNG (OpenCV's) with an eXIf chunk, written here: an independent writer."""
    import struct
    import zlib

    cv2 = pytest.importorskip("cv2")
    png = cv2.imencode(".png", rgb16[..., ::-1])[1].tobytes()
    body = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


@pytest.mark.parametrize("endian", ["<", ">"])  # phones write little-endian EXIF, many cameras big
def test_16bit_tiff_keeps_exif_upright(tmp_path, endian):
    """16-bit TIFF output (by tifffile, which writes no EXIF) used to drop the EXIF with a note;
    now Make, Model, dates, GPS, camera settings come out as Pillow reads them, orientation 1."""
    pytest.importorskip("tifffile")
    cv2 = pytest.importorskip("cv2")
    rng, seed = _fresh_rng()
    stored = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(_png16_with_exif(stored, _camera_exif(endian)))
    pic = fio.read_image(tmp_path / "in.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept: no note
        fio.write_image(pic.pixels, tmp_path / "out.tif", source=pic)
    out = Image.open(tmp_path / "out.tif")
    exif = out.getexif()
    assert {t: exif.get(t) for t in (0x010F, 0x0110, 0x0132, 0x013B, 0x8298, 0x0112)} == {
        0x010F: "Canon", 0x0110: "EOS R5", 0x0132: "2024:05:06 07:08:09", 0x013B: "A. Person",
        0x8298: "(c) A. Person", 0x0112: 1}  # upright pixels: orientation 1, not rotated twice
    sub = exif.get_ifd(0x8769)
    assert sub[0x9003] == "2024:05:06 07:08:09" and float(sub[0x829A]) == 1 / 250 and sub[0x927C] == b"maker" * 10
    assert exif.get_ifd(0x8825) == {1: "N", 2: (51.0, 30.0, 12.5)}
    back = cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED)  # libtiff: an independent reader
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., ::-1], np.rot90(stored, -1), err_msg=f"seed {seed}")
    # and from that TIFF (its EXIF is its own first IFD) to another: kept again
    again = fio.read_image(tmp_path / "out.tif")
    fio.write_image(again.pixels, tmp_path / "again.tif", source=again)
    exif2 = Image.open(tmp_path / "again.tif").getexif()
    assert exif2[0x0110] == "EOS R5" and exif2.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    np.testing.assert_array_equal(fio.read_image(tmp_path / "again.tif").pixels, np.rot90(stored, -1))


def test_tiff_exif_carried_to_jpeg(tmp_path):
    """An 8-bit TIFF's EXIF (its first IFD: Pillow writes it there) reaches a JPEG result, upright."""
    Image.fromarray(_photo()).save(tmp_path / "in.tif", exif=_camera_exif("<"))
    pic = fio.read_image(tmp_path / "in.tif")
    assert pic.pixels.shape == (W, H, 3)  # orientation 6 applied
    fio.write_image(pic.pixels, tmp_path / "out.jpg", source=pic)
    exif = Image.open(tmp_path / "out.jpg").getexif()
    assert exif[0x0110] == "EOS R5" and exif[0x0112] == 1 and exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert not {256, 257, 273, 279} & set(exif)  # the TIFF's layout is no EXIF


_MAKER_TEXT = b"written by the camera\0"


def _exif_with_maker_note(order, orientation=6, orientation_type=3):
    """An EXIF block written here byte by byte (an independent writer), laid out as a camera lays
    it out: IFD0 (Make, Orientation unless None, the Exif pointer), then the Exif sub-IFD holding a
    maker note whose own IFD points at a string after it by an offset counted from the TIFF
    header, as Canon's, Olympus's and Sony's do. Returns the block, with its ``Exif\\0\\0``
    header, and where in it the orientation's 2-byte value lies."""
    e = "<" if order == b"II" else ">"

    def entry(tag, kind, count, value):  # value: 4 bytes, an offset or a value left-justified
        return struct.pack(e + "HHI", tag, kind, count) + value

    n0 = 3 if orientation is not None else 2
    make_at = 8 + 2 + 12 * n0 + 4
    exif_ifd = make_at + 6  # after b"Canon\0"
    note_at = exif_ifd + 2 + 12 + 4
    text_at = note_at + 2 + 12 + 4
    note = (struct.pack(e + "H", 1) + entry(0x0006, 2, len(_MAKER_TEXT), struct.pack(e + "I", text_at))
            + struct.pack(e + "I", 0) + _MAKER_TEXT)
    ifd0 = [entry(0x010F, 2, 6, struct.pack(e + "I", make_at))]
    if orientation is not None:
        short = orientation_type == 3  # SHORT, left-justified in the 4 bytes; else a LONG
        value = struct.pack(e + "H", orientation) + b"\0\0" if short else struct.pack(e + "I", orientation)
        ifd0.append(entry(0x0112, orientation_type, 1, value))
    ifd0.append(entry(0x8769, 4, 1, struct.pack(e + "I", exif_ifd)))
    tiff = (order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", n0) + b"".join(ifd0) + struct.pack(e + "I", 0)
            + b"Canon\0" + struct.pack(e + "H", 1) + entry(0x927C, 7, len(note), struct.pack(e + "I", note_at))
            + struct.pack(e + "I", 0) + note)
    assert tiff[text_at:text_at + len(_MAKER_TEXT)] == _MAKER_TEXT
    return b"Exif\0\0" + tiff, 6 + 8 + 2 + 12 + 8


def _upright(block, at, order):
    """``block`` with the orientation's value at ``at`` set to 1, nothing else changed."""
    return block[:at] + struct.pack("<H" if order == b"II" else ">H", 1) + block[at + 2:]


def _exif_written(path):
    """The EXIF block of a JPEG, PNG or WebP file as stored (Pillow's reader copies it, adding the
    ``Exif\\0\\0`` header to a PNG's; a WebP's chunk has none), with that header."""
    block = Image.open(path).info["exif"]
    return block if block.startswith(b"Exif\0\0") else b"Exif\0\0" + block


@pytest.mark.parametrize("order", [b"II", b"MM"])
@pytest.mark.parametrize("src_ext", ["jpg", "webp"])
@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_exif_kept_byte_for_byte_but_the_orientation(tmp_path, order, src_ext, ext):
    """Issue 15: the EXIF comes out as it came but for the orientation's 2 bytes, set to 1 in place.
    Re-serialised (as it was), every value moved and a maker note's offsets, counted from the TIFF
    header, pointed at other bytes (exiftool: "MakerNotes offsets may be incorrect"). A WebP's
    EXIF chunk, without the ``Exif\\0\\0`` header, gets it in a JPEG (without, no reader saw it)."""
    block, at = _exif_with_maker_note(order)
    stored = _photo()
    src = tmp_path / f"in.{src_ext}"
    if src_ext == "jpg":
        Image.fromarray(stored).save(src, quality=95, exif=block)
    else:
        Image.fromarray(stored).save(src, lossless=True, exif=block)
    assert _exif_written(src) == block  # Pillow stores the block as given
    pic = fio.read_image(src)
    as_stored = np.asarray(Image.open(src).convert("RGB"))  # decoded, not oriented
    np.testing.assert_array_equal(pic.pixels, np.rot90(as_stored, -1))  # orientation 6 applied
    fio.write_image(pic.pixels, tmp_path / f"out.{ext}", source=pic)
    written = _exif_written(tmp_path / f"out.{ext}")
    assert written == _upright(block, at, order)
    exif = Image.open(tmp_path / f"out.{ext}").getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == "Canon"  # upright: not rotated twice
    if ext != "jpg":  # lossless: the pixels written are the pixels read, upright
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"out.{ext}").convert("RGB")), pic.pixels)


@pytest.mark.parametrize("order", [b"II", b"MM"])
def test_exif_thumbnail_of_the_unfilled_photo_is_removed_in_place(tmp_path, order):
    """IFD1's thumbnail shows the photo before the fill (what the user removed) and, with the
    orientation now 1, sideways: it is unlinked (IFD0's next-IFD offset 0) and its bytes zeroed,
    every other byte in place."""
    e = "<" if order == b"II" else ">"
    block, at = _exif_with_maker_note(order)
    tiff = bytearray(block[6:])
    next_at = 8 + 2 + 12 * 3  # IFD0: Make, Orientation, the Exif pointer
    assert struct.unpack(e + "I", tiff[next_at:next_at + 4])[0] == 0
    thumb = b"\xff\xd8" + bytes(range(40, 90)) + b"\xff\xd9"  # a JPEG thumbnail's bytes, as stored
    ifd1 = len(tiff)
    tiff[next_at:next_at + 4] = struct.pack(e + "I", ifd1)
    tiff += struct.pack(e + "H", 2)
    tiff += struct.pack(e + "HHII", 0x0201, 4, 1, ifd1 + 2 + 24 + 4) + struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb))
    tiff += struct.pack(e + "I", 0) + thumb
    block = b"Exif\0\0" + bytes(tiff)
    src = tmp_path / "in.jpg"
    Image.fromarray(_photo()).save(src, quality=95, exif=block)
    pic = fio.read_image(src)
    fio.write_image(pic.pixels, tmp_path / "out.png", source=pic)
    expected = bytearray(_upright(block, at, order))
    expected[6 + next_at:6 + next_at + 4] = b"\0\0\0\0"
    start = 6 + ifd1 + 2 + 24 + 4
    assert _exif_written(tmp_path / "out.png") == bytes(expected[:start])  # last in the block: cut
    assert thumb not in _exif_written(tmp_path / "out.png")
    # elsewhere in the block: zeroed where it lies, nothing moved
    fio_block = fio._upright_exif_in_place(block + b"TAIL")
    expected[start:start + len(thumb)] = bytes(len(thumb))
    assert fio_block == bytes(expected) + b"TAIL"


@pytest.mark.parametrize("order", [b"II", b"MM"])
def test_16bit_png_exif_kept_byte_for_byte_but_the_orientation(tmp_path, order):
    """The 16-bit PNG path (OpenCV's pixels, fastinpaint's eXIf chunk) keeps the block as it came
    too, orientation 1, the pixels upright."""
    cv2 = pytest.importorskip("cv2")
    rng, seed = _fresh_rng()
    stored = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    block, at = _exif_with_maker_note(order)
    (tmp_path / "in.png").write_bytes(_png16_with_exif(stored, block))
    pic = fio.read_image(tmp_path / "in.png")
    fio.write_image(pic.pixels, tmp_path / "out.png", source=pic)
    assert _exif_written(tmp_path / "out.png") == _upright(block, at, order)
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(back, np.rot90(stored, -1), err_msg=f"seed {seed}")


@pytest.mark.parametrize("order", [b"II", b"MM"])
def test_exif_without_orientation_kept_as_it_came(tmp_path, order):
    """No orientation tag: nothing to patch; the block comes out byte for byte, 8-bit JPEG and
    WebP and 16-bit PNG alike (the 16-bit path re-serialised it; a WebP's block, which has no
    ``Exif\\0\\0`` header, went into a JPEG without it, where no reader found it)."""
    block, _ = _exif_with_maker_note(order, orientation=None)
    for src_ext in ("jpg", "webp"):
        Image.fromarray(_photo()).save(tmp_path / f"in.{src_ext}", exif=block)
        pic = fio.read_image(tmp_path / f"in.{src_ext}")
        fio.write_image(pic.pixels, tmp_path / f"{src_ext}.jpg", source=pic)
        assert _exif_written(tmp_path / f"{src_ext}.jpg") == block
    if _has("cv2"):
        stored = np.random.default_rng(3).integers(0, 65536, (H, W, 3), dtype=np.uint16)
        (tmp_path / "in.png").write_bytes(_png16_with_exif(stored, block))
        pic = fio.read_image(tmp_path / "in.png")
        fio.write_image(pic.pixels, tmp_path / "out.png", source=pic)
        assert _exif_written(tmp_path / "out.png") == block


def test_exif_that_cannot_be_patched_in_place_is_still_upright(tmp_path):
    """An orientation written as a LONG (not the SHORT EXIF specifies; Pillow reads it) cannot be
    patched in place: the block is re-serialised by Pillow, orientation 1; one no reader parses
    is carried as it came (no orientation was read from it, none applied)."""
    block, _ = _exif_with_maker_note(b"II", orientation_type=4)
    Image.fromarray(_photo()).save(tmp_path / "in.jpg", exif=block)
    pic = fio.read_image(tmp_path / "in.jpg")
    assert pic.pixels.shape == (W, H, 3)
    fio.write_image(pic.pixels, tmp_path / "out.jpg", source=pic)
    exif = Image.open(tmp_path / "out.jpg").getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == "Canon"
    assert fio._exif_block_to_carry(b"Exif\0\0junk") == b"Exif\0\0junk"


def _png_grey_alpha16_unfiltered(a):
    """An independent 16-bit grey + alpha PNG writer for the test: every row unfiltered (type 0),
    where fastinpaint's writer Sub-filters them."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = a.shape[:2]
    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_grey_alpha_tiff_keeps_its_exif_and_orientation(tmp_path):
    """A 16-bit grey + alpha TIFF (read by tifffile: Pillow has no such mode) is shown as its
    orientation says, and its EXIF (Make, Model) is carried to the output, upright."""
    tifffile = pytest.importorskip("tifffile")
    rng, seed = _fresh_rng()
    la16 = rng.integers(0, 65536, (H, W, 2), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", la16, photometric="minisblack", extrasamples=["unassalpha"],
                     extratags=[(271, "s", 0, "Cam Co", True), (272, "s", 0, "Model 7", True), (274, "H", 1, 6, True)])
    pic = fio.read_image(tmp_path / "in.tif")
    np.testing.assert_array_equal(pic.pixels, np.rot90(la16, -1), err_msg=f"seed {seed}")  # 6: 90 deg clockwise
    fio.write_image(pic.pixels, tmp_path / "out.tif", source=pic)
    exif = Image.Exif()
    exif.load((tmp_path / "out.tif").read_bytes())
    assert (exif.get(271), exif.get(272), exif.get(274)) == ("Cam Co", "Model 7", 1)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), pic.pixels)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_grey_alpha_stays_16bit(tmp_path, ext):
    """16-bit grey + alpha used to be read as 8-bit RGBA (PNG: Pillow's reading) or not at all
    (TIFF), and written at 8 bits: now 16 bits in, the same 16 bits out, grey + alpha still."""
    cv2 = pytest.importorskip("cv2")
    if ext == "tif":
        tifffile = pytest.importorskip("tifffile")
    rng, seed = _fresh_rng()
    la16 = rng.integers(0, 65536, (H, W, 2), dtype=np.uint16)
    la16[..., 0] |= 1  # low bits matter: an 8-bit round trip would lose them
    la16[..., 1] = 65535  # opaque: the alpha is no mask; the mask file is
    if ext == "png":
        (tmp_path / "in.png").write_bytes(_png_grey_alpha16_unfiltered(la16))
    else:
        tifffile.imwrite(tmp_path / "in.tif", la16, photometric="minisblack", extrasamples=["unassalpha"])
    pic = fio.read_image(tmp_path / f"in.{ext}")
    assert pic.pixels.dtype == np.uint16
    np.testing.assert_array_equal(pic.pixels, la16, err_msg=f"seed {seed}")
    mask = np.zeros((H, W), np.uint8)
    mask[8:16, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / f"in.{ext}", tmp_path / "m.png", "-o", tmp_path / f"out.{ext}",
               "--method", "biharmonic") == 0
    if ext == "png":
        raw = (tmp_path / "out.png").read_bytes()
        assert raw[24:26] == bytes([16, 4])  # IHDR: 16 bits, colour type 4 (grey + alpha)
        bgra = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)  # libpng, an independent reader
        back = bgra[..., [0, 3]]
    else:
        back = tifffile.imread(tmp_path / "out.tif")
    assert back.dtype == np.uint16 and back.shape == la16.shape
    np.testing.assert_array_equal(back[mask == 0], la16[mask == 0], err_msg=f"seed {seed}")
    assert (back[mask > 0, 1] == 65535).all()


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_16bit_to_jpeg_refused_alike_and_dropped_alpha_said(tmp_path, capsys):
    rng, seed = _fresh_rng()
    m = np.zeros((H, W), np.uint8)
    m[8:16, 10:20] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    grey16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    assert fio.read_image(tmp_path / "g.png").pixels.dtype == np.uint16
    assert run("inpaint", tmp_path / "g.png", tmp_path / "m.png", "-o", tmp_path / "g.jpg") == 1
    err = capsys.readouterr().err.strip()
    assert "cannot write 16-bit grey as JPEG" in err and ".png or .tif" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.jpg").exists()
    with pytest.raises(fio.ImageIOError, match="cannot write 16-bit colour as JPEG.*[.]png or [.]tif"):
        fio.write_image(np.zeros((4, 4, 3), np.uint16), tmp_path / "c.jpg")
    # RGBA with see-through pixels outside the hole: written, with a note that alpha is gone
    rgba = np.dstack([_photo(seed % 1000), rng.integers(0, 256, (H, W), dtype=np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert run("inpaint", tmp_path / "a.png", tmp_path / "m.png", "-o", tmp_path / "a.jpg") == 0
    err = capsys.readouterr().err
    assert "alpha channel dropped: JPEG has no alpha" in err
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    # an opaque alpha loses nothing: no note
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "o.png")
    assert run("inpaint", tmp_path / "o.png", tmp_path / "m.png", "-o", tmp_path / "o.jpg") == 0
    assert "alpha" not in capsys.readouterr().err


def test_webp_lossless_unless_quality_given(tmp_path):
    rng, seed = _fresh_rng()
    photo = np.clip(_photo().astype(int) + rng.integers(-20, 21, (H, W, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "in.webp", lossless=True)
    m = np.zeros((H, W), np.uint8)
    m[8:16, 10:20] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    keep = m == 0
    assert run("inpaint", tmp_path / "in.webp", tmp_path / "m.png", "-o", tmp_path / "out.webp") == 0
    assert (tmp_path / "out.webp").read_bytes()[12:16] == b"VP8L"  # the lossless bitstream
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.webp"))[keep], photo[keep],
                                  err_msg=f"seed {seed}")
    assert run("inpaint", tmp_path / "in.webp", tmp_path / "m.png", "-o", tmp_path / "q.webp", "--quality", "80") == 0
    assert (tmp_path / "q.webp").read_bytes()[12:16] == b"VP8 "  # lossy, as asked


def _ijg_quality(path):
    """Independent estimate: compare the file's tables with Pillow re-encodes at each quality."""
    q0 = Image.open(path).quantization[0]
    ref = Image.new("RGB", (8, 8))
    for q in range(1, 101):
        import io as stdio
        buf = stdio.BytesIO()
        ref.save(buf, "JPEG", quality=q)
        if Image.open(buf).quantization[0] == q0:
            return q
    return None


def test_jpeg_quality_kept_and_444(tmp_path, files=None):
    Image.fromarray(_photo()).save(tmp_path / "in.jpg", quality=95)
    mask = np.zeros((H, W), np.uint8)
    mask[8:16, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.jpg", tmp_path / "m.png", "-o", tmp_path / "out.jpg") == 0
    assert _ijg_quality(tmp_path / "out.jpg") == 95
    out = Image.open(tmp_path / "out.jpg")
    assert out.layer[0][1:3] == (1, 1)  # luma sampled 1x1: 4:4:4
    assert run("inpaint", tmp_path / "in.jpg", tmp_path / "m.png", "-o", tmp_path / "q.jpg", "--quality", "60") == 0
    assert _ijg_quality(tmp_path / "q.jpg") == 60
    # unchanged pixels stay close to the input (4:2:0 at q75 gave 41.7 dB)
    a = np.asarray(Image.open(tmp_path / "in.jpg"), np.float64)
    b = np.asarray(out, np.float64)
    keep = mask == 0
    psnr = 10 * np.log10(255**2 / ((a[keep] - b[keep]) ** 2).mean())
    assert psnr > 45
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    assert run("inpaint", tmp_path / "p.png", tmp_path / "m.png", "-o", tmp_path / "p.jpg") == 0
    assert _ijg_quality(tmp_path / "p.jpg") == 95


@pytest.mark.parametrize("quality", [30, 50, 75, 85, 90, 95, 100])
def test_jpeg_quality_estimate_exact(quality):
    # a fresh random picture each run: the estimate reads the tables, not the pixels
    import io as stdio

    seed = int(np.random.SeedSequence().entropy % 2**32)
    a = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    buf = stdio.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    assert fio.jpeg_quality(Image.open(buf)) == quality, f"seed {seed}"


# ---------------------------------------------------------------------------------------------
# the one mask rule, through every entry point
# ---------------------------------------------------------------------------------------------
def _mask_cases():
    """(name, PIL mask, expected hole) — expected from the rule, written independently: ITU-R
    601 luma of the RGB, > 127."""
    box = np.zeros((H, W), bool)
    box[6:14, 8:20] = True
    grey = np.where(box, 200, 100).astype(np.uint8)  # 100 is not a hole, 200 is
    red = np.zeros((H, W, 3), np.uint8)
    red[box] = (255, 0, 0)  # luma 76: no hole
    white_rgb = np.zeros((H, W, 3), np.uint8)
    white_rgb[box] = (255, 255, 255)
    grey16 = np.where(box, 40000, 30000).astype(np.uint16)  # 30000 < half of 65535
    return [("grey", Image.fromarray(grey), box), ("red", Image.fromarray(red), np.zeros_like(box)),
            ("white_rgb", Image.fromarray(white_rgb), box), ("grey16", Image.fromarray(grey16), box)]


@pytest.mark.parametrize("case", range(4))
def test_one_mask_rule_everywhere(tmp_path, case):
    name, mask_img, expected = _mask_cases()[case]
    mask_img.save(tmp_path / "m.png")
    assert fio.read_mask(tmp_path / "m.png").sum() == expected.sum()
    np.testing.assert_array_equal(fio.read_mask(tmp_path / "m.png"), expected)
    # eval
    from fastinpaint.evaluate import read_mask as eval_read_mask
    np.testing.assert_array_equal(eval_read_mask(tmp_path / "m.png"), expected)
    # training data reader
    from fastinpaint.data import MaskFolder
    (tmp_path / "masks").mkdir()
    mask_img.save(tmp_path / "masks" / "a.png")
    if expected.any():
        np.testing.assert_array_equal(MaskFolder(tmp_path / "masks").mask(0), expected)
    else:  # by the same rule no hole: a training mask without one is refused, naming the rule
        with pytest.raises(fio.ImageIOError, match="no hole pixel \\(hole = grey > 127"):
            MaskFolder(tmp_path / "masks")
    # server decoder
    from fastinpaint.serve.decode import Limits, mask_plane
    np.testing.assert_array_equal(mask_plane((tmp_path / "m.png").read_bytes(), "mask", (W, H), Limits()), expected)
    # CLI: the pixels that change are inside the expected hole only
    Image.fromarray(_photo()).save(tmp_path / "in.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "m.png", "-o", tmp_path / "o.png") == 0
    changed = (np.asarray(Image.open(tmp_path / "o.png")) != _photo()).any(-1)
    assert not (changed & ~expected).any()
    if expected.any():
        assert changed.any()
    # the Python API given the mask as a PIL image (a picture of a mask, as the file is)
    if expected.any():
        out = fastinpaint.inpaint(_photo(), mask_img, method="biharmonic")
    else:
        with pytest.warns(UserWarning, match="mask is empty"):
            out = fastinpaint.inpaint(_photo(), mask_img, method="biharmonic")
    changed = (out != _photo()).any(-1)
    assert not (changed & ~expected).any()
    if expected.any():
        assert changed.any()


def test_jpeg_mask_as_pil_image_is_not_mostly_hole(tmp_path):
    """A mask saved as JPEG and handed to fastinpaint.inpaint as a PIL image: its noise made 95 %
    of a photo a hole when a PIL mask was read as "non-zero"; it is the files' rule now."""
    box = np.zeros((H, W), bool)
    box[6:14, 8:20] = True
    Image.fromarray((box * 255).astype(np.uint8)).save(tmp_path / "m.jpg", quality=70)
    noisy = Image.open(tmp_path / "m.jpg")
    assert (np.asarray(noisy) != 0).mean() > 0.5  # what "non-zero" would have taken as hole
    out = fastinpaint.inpaint(_photo(), noisy, method="biharmonic")
    assert np.array_equal(out, fastinpaint.inpaint(_photo(), fio.hole_from_pil(noisy), method="biharmonic"))
    assert not ((out != _photo()).any(-1) & ~dilated(box)).any()


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_a_premultiplied_mask_is_read_on_its_grey(mode):
    """The mask rule on a premultiplied PIL mask (RGBa, La): the grey itself, not times alpha
    (La failed: Pillow converts it to LA only). White under alpha 100 is stored as 100: a hole."""
    box = np.zeros((H, W), bool)
    box[6:14, 8:20] = True
    grey = (box * 255).astype(np.uint8)
    straight = np.dstack([grey] * (3 if mode == "RGBa" else 1) + [np.full((H, W), 100, np.uint8)])
    np.testing.assert_array_equal(fio.hole_from_pil(Image.fromarray(straight).convert(mode)), box)


def dilated(box):
    from scipy.ndimage import binary_dilation

    return binary_dilation(box, iterations=2)


def test_invert_and_dilate(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[10, 20] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    hole = fio.read_mask(tmp_path / "m.png", dilate=3)
    yy, xx = np.nonzero(hole)
    assert hole.sum() == 29  # a disc of radius 3 has 29 pixels
    assert (np.hypot(yy - 10, xx - 20) <= 3).all()
    np.testing.assert_array_equal(fio.read_mask(tmp_path / "m.png", invert=True), m == 0)
    Image.fromarray(_photo()).save(tmp_path / "in.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "m.png", "-o", tmp_path / "o.png", "--dilate", "3") == 0
    changed = (np.asarray(Image.open(tmp_path / "o.png")) != _photo()).any(-1)
    assert not (changed & ~hole).any()


@pytest.mark.parametrize("radius", range(1, 9))
def test_dilate_is_the_disc_dilation(radius):
    # reference: the previous definition, a binary dilation by the disc x*x + y*y <= r*r
    ndimage = pytest.importorskip("scipy.ndimage")
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    hole = rng.random((37, 53)) < 0.01
    hole[rng.integers(0, 37), rng.integers(0, 53)] = True
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    ref = ndimage.binary_dilation(hole, structure=(x * x + y * y) <= radius * radius)
    np.testing.assert_array_equal(fio.grow_hole(hole, radius), ref, err_msg=f"seed {seed}")


def test_huge_dilate_is_quick_and_covers_the_image(tmp_path, capsys):
    import time

    hole = np.zeros((192, 256), bool)
    hole[5, 7] = True
    t = time.perf_counter()
    grown = fio.grow_hole(hole, 100000)
    assert time.perf_counter() - t < 2  # was a 298 GiB allocation
    assert grown.all()
    # the far corner (191, 255) is exactly 310 pixels from (5, 7): 186, 248 = 62 * (3, 4)
    assert not fio.grow_hole(hole, 309).all() and fio.grow_hole(hole, 310).all()
    Image.fromarray(_photo()).save(tmp_path / "in.png")
    m = np.zeros((H, W), np.uint8)
    m[3, 4] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "m.png", "-o", tmp_path / "o.png", "--dilate", "100000") == 1
    err = capsys.readouterr().err.strip()
    assert "--dilate 100000 grows the hole over the whole image" in err and len(err.splitlines()) == 1
    assert "--invert-mask" not in err  # the mask is not the cause


def test_palette_and_cmyk_converted_with_a_note(tmp_path, capsys):
    Image.fromarray(_photo()).convert("CMYK").save(tmp_path / "c.jpg")
    pic = fio.read_image(tmp_path / "c.jpg")
    assert pic.pixels.shape == (H, W, 3) and any("CMYK" in n for n in pic.notes)
    Image.fromarray(_photo()).convert("P").save(tmp_path / "p.png")
    pic = fio.read_image(tmp_path / "p.png")
    assert pic.pixels.shape == (H, W, 3) and any("palette" in n for n in pic.notes)



def test_multi_frame_file_is_said_and_closed(tmp_path, capsys):
    """A multi-page TIFF (or an animation, or a camera's MPO JPEG with its preview): its first
    frame is filled and written, and that is said; the file, which Pillow keeps open for its
    other frames, is closed (it used to be reported as an unclosed file)."""
    frames = [Image.fromarray(_photo(seed)) for seed in range(3)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    mask = np.zeros((H, W), np.uint8)
    mask[8:16, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert run("inpaint", tmp_path / "pages.tif", tmp_path / "m.png", "-o", tmp_path / "out.tif") == 0
        gc.collect()  # an unclosed file warns when collected
    err = capsys.readouterr().err
    assert "3 frames: only the first is read, filled and written" in err and "unclosed" not in err
    out = np.asarray(Image.open(tmp_path / "out.tif"))
    np.testing.assert_array_equal(out[mask == 0], _photo(0)[mask == 0])
    # an animated GIF, named first as a user types it (GIF palettes hold the few colours of the
    # photo's first frame exactly): its first frame, said
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert run(tmp_path / "anim.gif", tmp_path / "m.png", "-o", tmp_path / "anim_out.png") == 0
    assert "3 frames" in capsys.readouterr().err
    # a photo of more than 256 colours written as GIF: the quantisation is said
    assert len(np.unique(_photo(0).reshape(-1, 3), axis=0)) > 256
    assert run("inpaint", tmp_path / "pages.tif", tmp_path / "m.png", "-o", tmp_path / "out.gif") == 0
    assert "256 colours" in capsys.readouterr().err

# ---------------------------------------------------------------------------------------------
# writing safely
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def pair(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "in.png")
    m = np.zeros((H, W), np.uint8)
    m[8:16, 10:20] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    return tmp_path


def test_unwritable_folder_is_one_line_before_computing(pair, capsys, monkeypatch):
    blocker = pair / "a_file"
    blocker.write_text("x")
    called = []
    monkeypatch.setattr(fastinpaint, "inpaint", lambda *a, **k: called.append(1))
    # a path under a regular file fails for root too
    assert run("inpaint", pair / "in.png", pair / "m.png", "-o", blocker / "out.png") == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and not called
    assert run("inpaint", pair / "in.png", pair / "m.png", "-o", pair) == 1
    assert "is a directory" in capsys.readouterr().err and not called
    assert run("inpaint", pair / "in.png", pair / "m.png", "-o", pair / "o.nope") == 1
    assert "format" in capsys.readouterr().err and not called


def test_immutable_folder(pair, capsys):
    ro = pair / "ro"
    ro.mkdir()
    if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not available here")
    try:
        assert run("inpaint", pair / "in.png", pair / "m.png", "-o", ro / "out.png") == 1
        err = capsys.readouterr().err
        assert "cannot write to output folder" in err and err.count("\n") == 1
    finally:
        subprocess.run(["chattr", "-i", str(ro)])


def test_batch_reports_failed_files_and_goes_on(pair, capsys):
    imgs, masks, out = pair / "imgs", pair / "masks", pair / "out"
    for d in (imgs, masks, out):
        d.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(_photo()).save(imgs / name)
        Image.open(pair / "m.png").save(masks / name)
    (out / "b.png").mkdir()  # b's output cannot be written
    assert run("inpaint", "--images", imgs, "--masks", masks, "--out", out) == 1
    cap = capsys.readouterr()
    assert "b.png" in cap.err and "Traceback" not in cap.err
    assert (out / "a.png").is_file() and (out / "c.png").is_file()
    assert "wrote 2 of 3" in cap.out and "1 failed" in cap.out
    # re-run: --skip-existing skips the written ones
    (out / "b.png").rmdir()
    assert run("inpaint", "--images", imgs, "--masks", masks, "--out", out, "--skip-existing") == 0
    assert "wrote 1 of 3" in capsys.readouterr().out and (out / "b.png").is_file()
    # a file given as a folder: said so, not "not found"
    assert run("inpaint", "--images", imgs, "--masks", masks / "a.png", "--out", out) == 1
    assert "--masks must be a folder, got a file" in capsys.readouterr().err
    # the whole output folder under a regular file: one line, exit 1
    assert run("inpaint", "--images", imgs, "--masks", masks, "--out", pair / "in.png" / "x") == 1
    assert "cannot create output folder" in capsys.readouterr().err


@pytest.mark.parametrize("skip_existing", [True, False])
def test_output_written_meanwhile_by_another_batch(pair, capsys, monkeypatch, skip_existing):
    """Two batches into one folder: an output another process publishes while this one computes
    it is skipped under --skip-existing (written once: done), and a failure without it; the
    other process's file is kept either way."""
    imgs, masks, out = pair / "imgs", pair / "masks", pair / "out"
    for d in (imgs, masks, out):
        d.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(_photo()).save(imgs / name)
        Image.open(pair / "m.png").save(masks / name)
    real = fastinpaint.inpaint

    def racing(pixels, *args, **kwargs):  # the other batch publishes b.png during this one's fill
        result = real(pixels, *args, **kwargs)
        if not (out / "b.png").exists() and len(list(out.iterdir())) == 1:
            (out / "b.png").write_bytes(b"the other batch's result")
        return result

    monkeypatch.setattr(fastinpaint, "inpaint", racing)
    flags = ["--skip-existing"] if skip_existing else []
    assert run("inpaint", "--images", imgs, "--masks", masks, "--out", out, *flags) == (0 if skip_existing else 1)
    cap = capsys.readouterr()
    assert (out / "b.png").read_bytes() == b"the other batch's result"
    if skip_existing:
        assert "wrote 1 of 2" in cap.out and "skipped 1 existing" in cap.out and "failed" not in cap.out
    else:
        assert "1 failed" in cap.out and "b.png already exists" in cap.err


def test_two_writers_exactly_one_wins(tmp_path, monkeypatch):
    # Both pass the destination check before either publishes: the publish step itself must refuse.
    for trial in range(5):
        out = tmp_path / f"race{trial}.png"
        fio.check_destination(out)
        a = fio.write_image(np.full((8, 8), 10, np.uint8), out)
        real_check = fio.check_destination
        monkeypatch.setattr(fio, "check_destination", lambda *a, **k: None)  # the other one checked earlier
        with pytest.raises(fio.OutputExistsError, match="already exists"):  # an ImageIOError: one line
            fio.write_image(np.full((8, 8), 20, np.uint8), out)
        monkeypatch.setattr(fio, "check_destination", real_check)
        assert np.asarray(Image.open(out)).max() == 10 and a is None
        assert not list(tmp_path.glob(".*.tmp"))


def test_write_file_publishes_bytes_without_replacing(tmp_path):
    """The server's writer of encoded results: the same publishing step as write_image's, a taken
    name an OutputExistsError (the caller picks another), the file there untouched."""
    out = tmp_path / "result.png"
    fio.write_file(b"first", out)
    with pytest.raises(fio.OutputExistsError, match="already exists"):
        fio.write_file(b"second", out)
    assert out.read_bytes() == b"first" and not list(tmp_path.glob(".*.tmp"))
    fio.write_file(b"second", out, overwrite=True)
    assert out.read_bytes() == b"second"
    with pytest.raises(fio.ImageIOError, match=r"cannot write .*gone.*: No such file or directory"):
        fio.write_file(b"x", tmp_path / "gone" / "result.png")


def test_two_processes_publishing_one_path(tmp_path):
    script = (
        "import sys, time, numpy as np\n"
        "from fastinpaint import io as fio\n"
        "fio.check_destination(sys.argv[1])\n"
        "open(sys.argv[3], 'w').close()\n"
        "import os\n"
        "while not os.path.exists(sys.argv[4]): time.sleep(0.01)\n"
        "fio.check_destination = lambda *a, **k: None\n"  # both already checked: the race
        "try:\n"
        "    fio.write_image(np.full((8, 8), int(sys.argv[2]), np.uint8), sys.argv[1]); print('ok')\n"
        "except fio.ImageIOError as e: print(e)\n"
    )
    out = tmp_path / "same.png"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(out), str(v), str(tmp_path / f"ready{v}"),
                               str(tmp_path / "go")], stdout=subprocess.PIPE, text=True) for v in (10, 20)]
    import time
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{v}").exists() for v in (10, 20)) and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(r == "ok" for r in results) == [False, True], results
    loser = [r for r in results if r != "ok"][0]
    assert "already exists" in loser
    winner_value = (10, 20)[results.index("ok")]
    assert np.asarray(Image.open(out)).max() == winner_value


def test_decompression_bomb_is_one_line(tmp_path, capsys, monkeypatch):
    """An image above Pillow's guard: ImageTooLargeError (an ImageIOError: the command line's one
    line) naming its size and the limit; the server answers it 413."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above 200 pixels
    Image.fromarray(_photo()).save(tmp_path / "big.png")
    with pytest.raises(fio.ImageTooLargeError, match=f"Image size \\({H * W} pixels\\) exceeds limit of 200 pixels"):
        fio.read_image(tmp_path / "big.png")
    assert run("inpaint", tmp_path / "big.png", "-o", tmp_path / "out.png") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastinpaint: error: cannot read image {tmp_path / 'big.png'}: Image size ({H * W} pixels)")
    assert err.count("\n") == 1 and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("failure", [Image.DecompressionBombError("Image size (9 pixels) exceeds limit of 2 pixels"),
                                     OSError("broken data stream when reading image file"), EOFError()])
def test_decoding_failure_after_opening_is_one_line(tmp_path, capsys, monkeypatch, failure):
    """Pillow can fail after the header too (counting a file's frames, decoding a later frame or a
    16-bit scan's pixels): the reader's one-line error, the right kind, the file closed, and the
    command line's one line and exit 1, never a traceback."""
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    opened = []

    def fails(src, img, what):
        opened.append(img)
        raise failure

    monkeypatch.setattr(fio, "_picture", fails)
    kind = fio.ImageTooLargeError if isinstance(failure, Image.DecompressionBombError) else fio.ImageIOError
    with pytest.raises(kind, match="cannot read image .*a.png"):
        fio.read_image(tmp_path / "a.png")
    assert opened and opened[0].fp is None  # closed
    assert run("inpaint", tmp_path / "a.png", "-o", tmp_path / "out.png") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastinpaint: error: cannot read image {tmp_path / 'a.png'}") and err.count("\n") == 1


def test_truncated_file_is_a_clear_error_and_is_closed(tmp_path):
    # Pillow opens the file and fails in load(): the reader closes it (the CLI printed Python's
    # "unclosed file" warning after its one-line error)
    import gc
    import warnings

    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(fio.ImageIOError, match="cannot read image .*cut.jpg"):
            fio.read_image(tmp_path / "cut.jpg")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


@pytest.mark.parametrize("ext", [".ico", ".icns", ".avif"])
def test_formats_that_would_change_the_picture_are_refused_up_front(tmp_path, capsys, ext):
    """ICO/ICNS shrink a result to icon sizes and Pillow's AVIF ignored the quality and the
    metadata: refused before any computing, naming what is written instead."""
    from PIL import Image as PILImage

    PILImage.init()
    if ext not in PILImage.registered_extensions():
        pytest.skip(f"this Pillow does not know {ext}")
    with pytest.raises(fio.ImageIOError, match="fastinpaint writes PNG, JPEG"):
        fio.check_destination(tmp_path / f"out{ext}")
    Image.fromarray(_photo()).save(tmp_path / "in.png")
    mask = np.zeros((H, W), np.uint8)
    mask[4:8, 4:8] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.png", tmp_path / "m.png", "-o", tmp_path / f"out{ext}") == 1
    assert "fastinpaint writes PNG" in capsys.readouterr().err and not (tmp_path / f"out{ext}").exists()


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_a_float_mask_is_read_on_the_float_images_scale(tmp_path, scale):
    """A 32-bit float mask (TIFF, or a PIL 'F' image through the API) is on the [0, 1] scale float
    images are read on: above 0.5 is a hole (0/1 and 0/255 masks both mark it; both were read on
    a 0..65535 scale and marked nothing)."""
    tifffile = pytest.importorskip("tifffile")
    box = np.zeros((H, W), bool)
    box[5:12, 6:15] = True
    tifffile.imwrite(tmp_path / "m.tif", box.astype(np.float32) * scale)
    np.testing.assert_array_equal(fio.read_mask(tmp_path / "m.tif"), box)
    np.testing.assert_array_equal(fio.hole_from_pil(Image.fromarray(box.astype(np.float32) * scale, mode="F")), box)


def test_a_format_that_cannot_hold_the_result_is_refused_before_computing(tmp_path, capsys, monkeypatch):
    """Float grey to PNG (Pillow has no such PNG mode) is a one-line error before the fill runs, not
    after it (the fill is never called)."""
    tifffile = pytest.importorskip("tifffile")
    rng, _ = _fresh_rng()
    tifffile.imwrite(tmp_path / "f.tif", rng.random((H, W)).astype(np.float32))
    mask = np.zeros((H, W), np.uint8)
    mask[4:8, 4:8] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    calls = []
    monkeypatch.setattr(fastinpaint, "inpaint", lambda *a, **k: calls.append(1))
    assert run("inpaint", tmp_path / "f.tif", tmp_path / "m.png", "-o", tmp_path / "out.png") == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and err.count("\n") == 1, err
    assert not calls and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".ppm"])
def test_alpha_to_a_format_without_it_is_dropped_with_a_note(tmp_path, mode, ext):
    """One rule for every format without alpha, grey + alpha included (LA to BMP/PPM was refused,
    RGBA to BMP/PPM and LA to JPEG dropped it silently)."""
    rng, _ = _fresh_rng()
    px = rng.integers(0, 256, (H, W, 4 if mode == "RGBA" else 2), dtype=np.uint8)
    with pytest.warns(UserWarning, match=f"alpha channel dropped: .* has no alpha"):
        fio.write_image(px, tmp_path / f"out{ext}")
    back = np.asarray(Image.open(tmp_path / f"out{ext}"))
    assert back.shape[:2] == (H, W) and (back.ndim == 2 or back.shape[2] == 3)
    if ext != ".jpg":  # lossless: the colour is the input's
        np.testing.assert_array_equal(back.reshape(H, W, -1)[..., :1 if mode == "LA" else 3],
                                      px[..., :1 if mode == "LA" else 3])


def test_grey_alpha_to_gif_keeps_its_transparency(tmp_path):
    px = np.zeros((H, W, 2), np.uint8)
    px[..., 0] = 128
    px[:, : W // 2, 1] = 255  # left half opaque, right half transparent
    fio.write_image(px, tmp_path / "out.gif")
    back = np.asarray(Image.open(tmp_path / "out.gif").convert("RGBA"))
    assert (back[:, : W // 2, 3] == 255).all() and (back[:, W // 2:, 3] == 0).all()


def test_an_unsupported_tiff_says_what_it_is(tmp_path):
    """A signed 32-bit colour TIFF (no reader of fastinpaint's decodes it) is named as such, not
    "cannot identify image file" (which reads as a corrupt file)."""
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "i.tif", np.zeros((H, W, 3), np.int32), photometric="rgb")
    with pytest.raises(fio.ImageIOError, match="3 channels of 32-bit signed integer samples, which is not supported"):
        fio.read_image(tmp_path / "i.tif")
    (tmp_path / "junk.tif").write_bytes(b"not an image")
    with pytest.raises(fio.ImageIOError, match="cannot read image .*junk.tif: cannot identify"):
        fio.read_image(tmp_path / "junk.tif")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_a_float_tiff_is_read_and_written_as_float(tmp_path, capsys, dtype, channels):
    """A float grey + alpha or colour TIFF (a float32 RGB one by tifffile, say), or a 16 or 64-bit
    float grey one, was refused ("not supported"): read as float on [0, 1], as 32-bit float grey
    is, in its EXIF orientation with its colour profile and EXIF, and the result written as float
    TIFF, known pixels bit for bit, upright, the profile and EXIF kept; to another format, a
    one-line refusal before the fill."""
    tifffile = pytest.importorskip("tifffile")
    rng, seed = _fresh_rng()
    stored = rng.random((H, W, channels)[: 2 if channels == 1 else 3]).astype(dtype)
    if channels in (2, 4):
        stored[..., -1] = 1  # opaque: the mask file is the hole
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tifffile.imwrite(tmp_path / "in.tif", stored, photometric="minisblack" if channels <= 2 else "rgb",
                     extrasamples=["unassalpha"] if channels in (2, 4) else None, iccprofile=icc,
                     extratags=[(271, "s", 0, "Cam Co", True), (274, "H", 1, 6, True)])
    shown = np.rot90(stored, -1)  # 6: 90 degrees clockwise
    pic = fio.read_image(tmp_path / "in.tif")
    assert pic.pixels.dtype == dtype and pic.icc_profile == icc
    np.testing.assert_array_equal(pic.pixels, shown, err_msg=f"seed {seed}")
    hole = np.zeros(shown.shape[:2], bool)
    hole[10:20, 8:16] = True
    Image.fromarray((hole * 255).astype(np.uint8)).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.tif", tmp_path / "m.png", "-o", tmp_path / "out.tif",
               "--method", "biharmonic") == 0
    out = tifffile.imread(tmp_path / "out.tif")  # an independent reader
    assert out.dtype == dtype and out.shape == shown.shape
    np.testing.assert_array_equal(out[~hole], shown[~hole], err_msg=f"seed {seed}")
    assert np.isfinite(out).all() and (out[hole] >= 0).all() and (out[hole] <= 1).all()
    exif = Image.Exif()
    exif.load((tmp_path / "out.tif").read_bytes())
    assert (exif.get(271), exif.get(274)) == ("Cam Co", 1)
    assert fio.read_image(tmp_path / "out.tif").icc_profile == icc
    capsys.readouterr()
    assert run("inpaint", tmp_path / "in.tif", tmp_path / "m.png", "-o", tmp_path / "out.png") == 1
    kind = {1: "grey", 2: "grey + alpha", 3: "colour", 4: "colour"}[channels]
    assert capsys.readouterr().err == (f"fastinpaint: error: cannot write float {kind} as PNG ({tmp_path / 'out.png'}): "
                                       "it holds integers; use .tif, which keeps float\n")
    assert not (tmp_path / "out.png").exists()


def test_a_float_tiffs_alpha_is_its_hole_and_premultiplied_alpha_is_made_straight(tmp_path, capsys):
    """Without a mask file a float TIFF's alpha is the hole, on [0, 1]: at most 0.5 (read as
    0..65535, every pixel was a hole). Associated (premultiplied) alpha is divided out, as Pillow's
    RGBa is, with a note, and the result written straight."""
    tifffile = pytest.importorskip("tifffile")
    y, x = np.mgrid[0:H, 0:W]
    colour = np.stack([x / W, y / H, (x + y) / (H + W)], -1).astype(np.float32)
    alpha = np.full((H, W, 1), 0.75, np.float32)
    alpha[6:14, 10:20] = 0.25
    tifffile.imwrite(tmp_path / "in.tif", np.concatenate([colour * alpha, alpha], -1), photometric="rgb",
                     extrasamples=["assocalpha"])
    pic = fio.read_image(tmp_path / "in.tif")
    np.testing.assert_allclose(pic.pixels[..., :3], colour, atol=1e-6)
    assert pic.notes == ["premultiplied alpha: the colour divided by it (written back straight)"]
    hole = alpha[..., 0] <= 0.5
    np.testing.assert_array_equal(fio.hole_from_alpha(pic.pixels[..., 3]), hole)
    assert run("inpaint", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--method", "biharmonic") == 0
    assert "premultiplied alpha" in capsys.readouterr().err
    out = tifffile.imread(tmp_path / "out.tif")
    np.testing.assert_array_equal(out[~hole], pic.pixels[~hole])
    assert not np.array_equal(out[hole], pic.pixels[hole])


def test_a_tiff_of_a_kind_read_keeps_pillows_error(tmp_path, monkeypatch):
    """A truncated 8-bit TIFF, and one over Pillow's size guard, were both "a TIFF of 3 channels of
    8-bit integer samples, which is not supported": that is said only of kinds fastinpaint does not
    read; these keep Pillow's error (too large: ImageTooLargeError, the server's 413)."""
    pytest.importorskip("tifffile")  # (without it no TIFF is described: Pillow's error stands anyway)
    Image.fromarray(_photo()).save(tmp_path / "a.tif")
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:len(data) // 2])
    with pytest.raises(fio.ImageIOError, match="cannot read image .*cut.tif: image file is truncated"):
        fio.read_image(tmp_path / "cut.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above 200 pixels
    with pytest.raises(fio.ImageTooLargeError, match=f"a.tif: Image size \\({H * W} pixels\\) exceeds limit of 200"):
        fio.read_image(tmp_path / "a.tif")


def test_colour_to_pgm_is_refused_and_grey_is_written(tmp_path):
    """.pgm is a grey map: a colour result is refused (Pillow wrote it as colour, P6), grey is kept."""
    rng, _ = _fresh_rng()
    with pytest.raises(fio.ImageIOError, match="PGM holds grey and the image is RGB; use .ppm"):
        fio.write_image(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), tmp_path / "c.pgm")
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    fio.write_image(grey, tmp_path / "g.pgm")
    assert (tmp_path / "g.pgm").read_bytes()[:2] == b"P5"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.pgm")), grey)


# ------------------------------------------------------------------------------------------------
# XMP (issue 15: nothing the user gave may be lost)
# ------------------------------------------------------------------------------------------------
def _xmp(orientation=None, padding=200):
    """An XMP packet as Lightroom/Photoshop write one (rating, keywords in UTF-8, copyright,
    editing history, whitespace padding), with ``tiff:Orientation`` as ``orientation`` says: None
    (none), ``("attribute", 6)``, ``("element", 6)``. Returns the packet and where the
    orientation's value lies (None without one)."""
    form, value = orientation or (None, None)
    attr = f' tiff:Orientation="{value}"' if form == "attribute" else ""
    elem = f"<tiff:Orientation>{value}</tiff:Orientation>" if form == "element" else ""
    text = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"'
            f' xmp:Rating="4"{attr}>{elem}'
            '<dc:subject><rdf:Bag><rdf:li>Gärten</rdf:li><rdf:li>東京</rdf:li></rdf:Bag></dc:subject>'
            '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">© A. Person 2024</rdf:li></rdf:Alt></dc:rights>'
            '<xmpMM:History><rdf:Seq><rdf:li stEvt:action="saved" stEvt:softwareAgent="Lightroom"/></rdf:Seq>'
            '</xmpMM:History></rdf:Description></rdf:RDF></x:xmpmeta>\n' + " " * padding + '\n<?xpacket end="w"?>')
    packet = text.encode("utf-8")
    at = None
    if form:
        marker = (b'tiff:Orientation="' if form == "attribute" else b"<tiff:Orientation>")
        at = packet.index(marker) + len(marker)
    return packet, at


def _xmp_upright(packet, at):
    """``packet`` with its orientation's one digit at ``at`` set to 1, nothing else changed."""
    return packet if at is None else packet[:at] + b"1" + packet[at + 1:]


def _save_with_xmp(pixels, path, packet, **kw):
    """``pixels`` saved to ``path`` with ``packet`` as its format stores XMP, by Pillow: JPEG APP1
    and WebP "XMP " chunk (``xmp=``), PNG iTXt "XML:com.adobe.xmp" (written raw, uncompressed),
    TIFF tag 700."""
    ext = Path(path).suffix
    if ext == ".png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + packet)
        kw["pnginfo"] = info
    elif ext == ".tif":
        kw["tiffinfo"] = {700: packet}
    else:
        kw["xmp"] = packet
    if ext == ".webp":
        kw["lossless"] = True
    Image.fromarray(pixels).save(path, **kw)


def _xmp_written(path):
    """The XMP packet of a written file, as stored: Pillow's for JPEG (APP1), PNG (iTXt) and WebP
    (its "XMP " chunk) read without loading (orienting) the image; tifffile's tag 700 for TIFF."""
    if Path(path).suffix == ".tif":
        tifffile = pytest.importorskip("tifffile")
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(700)
            return None if tag is None else bytes(tag.value)
    with Image.open(path) as img:
        return img.info.get("xmp")


@pytest.mark.parametrize("src_ext, ext", [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("jpg", "png"),
                                          ("png", "jpg"), ("webp", "tif"), ("tif", "tif"), ("tif", "jpg")])
def test_xmp_carried_byte_for_byte(tmp_path, src_ext, ext):
    """Issue 15: the XMP packet (ratings, keywords, copyright, editing history) was dropped; it
    comes out byte for byte, JPEG APP1, PNG iTXt, WebP chunk or TIFF tag 700 in, any of them out.
    A TIFF's XMP is its own tag 700, no longer carried inside the EXIF to a JPEG's."""
    packet, _ = _xmp()
    _save_with_xmp(_photo(), tmp_path / f"in.{src_ext}", packet)
    pic = fio.read_image(tmp_path / f"in.{src_ext}")
    assert pic.xmp == packet
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept: nothing to say
        fio.write_image(pic.pixels, tmp_path / f"out.{ext}", source=pic)
    assert _xmp_written(tmp_path / f"out.{ext}") == packet
    if ext == "jpg":
        with Image.open(tmp_path / f"out.{ext}") as out:
            assert 700 not in out.getexif()


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("src_ext, ext", [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("tif", "tif"),
                                          ("png", "tif")])
def test_xmp_orientation_set_to_1_and_pixels_upright(tmp_path, form, src_ext, ext):
    """An XMP ``tiff:Orientation`` 6 (the attribute or the element) without an EXIF orientation
    is shown as Pillow shows it (turned); the result, written upright, says 1 there: a viewer
    that reads it would have turned the upright pixels again. Every other byte of the packet is
    kept."""
    packet, at = _xmp(("element" if form == "element" else "attribute", 6))
    stored = _photo()
    _save_with_xmp(stored, tmp_path / f"in.{src_ext}", packet)
    pic = fio.read_image(tmp_path / f"in.{src_ext}")
    assert pic.pixels.shape == (W, H, 3)  # orientation 6 applied
    if src_ext != "jpg":
        np.testing.assert_array_equal(pic.pixels, np.rot90(stored, -1))
    fio.write_image(pic.pixels, tmp_path / f"out.{ext}", source=pic)
    written = _xmp_written(tmp_path / f"out.{ext}")
    assert written == _xmp_upright(packet, at) and written != packet
    back = fio.read_image(tmp_path / f"out.{ext}")  # Pillow would turn it by an XMP orientation 6
    assert back.pixels.shape == (W, H, 3)
    if ext != "jpg":
        np.testing.assert_array_equal(back.pixels, pic.pixels)


def test_xmp_and_exif_orientation_both_set_to_1_through_the_command_line(tmp_path):
    """A phone's JPEG says 6 in its EXIF and its XMP: ``fastinpaint inpaint`` fills it upright and
    says 1 in both, the rest of each kept."""
    packet, at = _xmp(("attribute", 6))
    block, exif_at = _exif_with_maker_note(b"II")
    Image.fromarray(_photo()).save(tmp_path / "in.jpg", quality=95, exif=block, xmp=packet)
    mask = np.zeros((W, H), np.uint8)  # displayed: turned
    mask[5:12, 5:12] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert run("inpaint", tmp_path / "in.jpg", tmp_path / "m.png", "-o", tmp_path / "out.jpg") == 0
    assert _xmp_written(tmp_path / "out.jpg") == _xmp_upright(packet, at)
    assert _exif_written(tmp_path / "out.jpg") == _upright(block, exif_at, b"II")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (H, W)


def test_xmp_orientation_under_another_prefix_is_set_to_1():
    """The TIFF namespace bound to another prefix, single quotes, spaces: still the one value."""
    packet = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:Description xmlns:t='http://ns.adobe.com/tiff/1.0/' "
              b"t:Orientation = ' 8 '/><t:Orientation> 3 </t:Orientation><u:Orientation>5</u:Orientation>"
              b"</x:xmpmeta>")
    assert fio._upright_xmp(packet) == packet.replace(b"8", b"1").replace(b"3", b"1")


def test_16bit_xmp_kept_in_png_and_tiff(tmp_path):
    """The 16-bit writers (OpenCV's PNG with chunks added, the grey + alpha PNG encoder, tifffile)
    carry the XMP too; and a TIFF only tifffile reads (16-bit grey + alpha) gives its XMP, its
    orientation applied and set to 1."""
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("cv2")
    packet, at = _xmp(("element", 6))
    rng, seed = _fresh_rng()
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(_png16_with_exif(rgb16, _camera_exif("<")))
    pic = fio.read_image(tmp_path / "in.png")
    pic.xmp = packet
    for ext in ("png", "tif"):
        fio.write_image(pic.pixels, tmp_path / f"out.{ext}", source=pic)
        assert _xmp_written(tmp_path / f"out.{ext}") == packet, ext
        assert fio.read_image(tmp_path / f"out.{ext}").pixels.dtype == np.uint16
    la16 = rng.integers(0, 65536, (H, W, 2), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "la.tif", la16, photometric="minisblack", extrasamples=["unassalpha"],
                     extratags=[(700, "B", len(packet), packet, True)])
    la = fio.read_image(tmp_path / "la.tif")
    np.testing.assert_array_equal(la.pixels, np.rot90(la16, -1), err_msg=f"seed {seed}")  # the XMP's 6
    assert la.xmp == _xmp_upright(packet, at)
    for ext in ("png", "tif"):
        fio.write_image(la.pixels, tmp_path / f"la_out.{ext}", source=la)
        assert _xmp_written(tmp_path / f"la_out.{ext}") == _xmp_upright(packet, at), ext


def test_xmp_over_a_jpeg_segment_is_dropped_with_a_note(tmp_path):
    """A JPEG's APP1 segment holds 65,504 bytes of XMP: a larger packet (a PNG's, a TIFF's) is
    dropped from a JPEG result with a one-line note (Pillow raised "XMP data is too long", and
    nothing was written); PNG keeps it whole. A JPEG's Extended XMP is said not to be read."""
    packet, _ = _xmp(padding=70_000)
    _save_with_xmp(_photo(), tmp_path / "in.png", packet)
    pic = fio.read_image(tmp_path / "in.png")
    with pytest.warns(UserWarning, match=r"XMP not kept: its \d+ bytes are more than a JPEG's APP1 segment "
                                         r"holds \(65504\); use .png"):
        fio.write_image(pic.pixels, tmp_path / "out.jpg", source=pic)
    assert _xmp_written(tmp_path / "out.jpg") is None
    fio.write_image(pic.pixels, tmp_path / "out.png", source=pic)
    assert _xmp_written(tmp_path / "out.png") == packet
    main, _ = _xmp()
    body = b"http://ns.adobe.com/xmp/extension/\0" + b"0" * 32 + struct.pack(">II", 5, 0) + b"<x/>\n"
    Image.fromarray(_photo()).save(tmp_path / "ext.jpg", xmp=main, extra=b"\xff\xe1" + struct.pack(">H", 2 + len(body)) + body)
    ext = fio.read_image(tmp_path / "ext.jpg")
    assert ext.xmp == main and any("Extended XMP" in n for n in ext.notes)


@pytest.mark.parametrize("ext", ["bmp", "gif", "ppm"])
def test_xmp_to_a_format_without_it_is_dropped_as_exif_is(tmp_path, ext):
    """BMP, GIF, PPM hold no XMP: dropped without a note, as the profile and EXIF are there."""
    packet, _ = _xmp()
    _save_with_xmp(_photo(), tmp_path / "in.png", packet)
    pic = fio.read_image(tmp_path / "in.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fio.write_image(pic.pixels if ext != "gif" else pic.pixels // 64 * 64, tmp_path / f"out.{ext}", source=pic)
    assert packet not in (tmp_path / f"out.{ext}").read_bytes()
