"""``fastinpaint serve``'s HTTP API, through the ASGI application itself (Starlette's test client and
httpx's ASGI transport): round trips on a development photo, IOPaint-shaped and multipart
requests, every error with its status, the source region, the queue, and the --input folder."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import json
import pathlib
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra (pip install 'fastinpaint[serve]') is not installed")
try:  # what Starlette's test client runs on: httpx2 (Starlette >= 1.x), else httpx
    import httpx2 as httpx
except ImportError:
    httpx = pytest.importorskip("httpx", reason="httpx2 (Starlette's test client) is not installed")
from starlette.testclient import TestClient  # noqa: E402

import fastinpaint  # noqa: E402
from fastinpaint.serve.app import ServeConfig, create_app  # noqa: E402
from fastinpaint.serve.decode import Limits  # noqa: E402
from fastinpaint.serve.jobs import JobQueue, QueueFull, ShuttingDown  # noqa: E402

PHOTO = "astronaut"
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"  # as conftest's shared_data


def png(arr_or_img, fmt="PNG", **params) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decoded(resp) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.content)))


@pytest.fixture(scope="module")
def pair():
    """(image uint8 (96, 128, 3), hole bool (96, 128)): a development photo and its mask at 128 px."""
    shared = SHARED_DATA
    if not shared.is_dir():
        pytest.skip(f"development data not found at {shared}")
    img = Image.open(shared / "photos" / f"{PHOTO}.png").convert("RGB")
    h = round(img.height * 128 / img.width)
    img = img.resize((128, h), Image.LANCZOS)
    mask = Image.open(shared / "masks" / f"{PHOTO}__irr_20_30.png").convert("L").resize((128, h), Image.NEAREST)
    return np.asarray(img).copy(), np.asarray(mask) > 127


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig())) as c:
        yield c


def body(image: np.ndarray, hole: np.ndarray, **fields) -> dict:
    return {"image": b64(png(image)), "mask": b64(png((hole * 255).astype(np.uint8))), **fields}


def error_of(resp) -> str:
    message = resp.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------
def test_round_trip_keeps_known_pixels_and_fills_the_hole(client, pair):
    image, hole = pair
    resp = client.post("/api/v1/inpaint", json=body(image, hole, seed=3))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    out = decoded(resp)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], image[~hole])  # known pixels, bit for bit
    changed = np.abs(out[hole].astype(int) - image[hole].astype(int)).max(axis=1) > 0
    assert changed.mean() > 0.5  # the hole holds new content, not the photo's own pixels
    # the same call as the library's, so no option was lost on the way
    assert np.array_equal(out, fastinpaint.inpaint(image, hole, seed=3))
    assert resp.headers["x-seed"] == "3"
    # a negative seed, as the API and the command line take (the server refused it)
    resp = client.post("/api/v1/inpaint", json=body(image, hole, seed=-7))
    assert resp.status_code == 200, resp.text
    assert np.array_equal(decoded(resp), fastinpaint.inpaint(image, hole, seed=-7))
    # the strategy header comes with every answer, also when the client chose none (the default)
    assert resp.headers["x-fastinpaint-hd-strategy"] == "auto -> auto (original)"


def test_16_bit_colour_comes_back_16_bit(client, pair):
    """A 48-bit PNG (Pillow would read it as 8-bit): decoded as fastinpaint.io reads files, the
    answer is a 16-bit PNG whose known pixels are the input's 16-bit values, bit for bit."""
    import cv2

    image, hole = pair
    deep = image.astype(np.uint16) * 257 + np.arange(image.size, dtype=np.uint16).reshape(image.shape) % 251
    ok, enc = cv2.imencode(".png", deep[..., ::-1])
    assert ok
    resp = client.post("/api/v1/inpaint", files={"image": ("i.png", enc.tobytes(), "image/png"),
                                                 "mask": ("m.png", png((hole * 255).astype(np.uint8)), "image/png")})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    out = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert out.dtype == np.uint16 and out.shape == deep.shape
    assert np.array_equal(out[~hole], deep[~hole])
    assert np.abs(out[hole].astype(int) // 257 - image[hole].astype(int)).mean() < 60  # a fill at 16-bit scale


def test_16_bit_grey_alpha_tiff_is_read_as_the_command_line_reads_it(client, pair):
    """A 16-bit grey + alpha TIFF, which Pillow cannot open (its header check used to refuse it
    with 400 while `fastinpaint inpaint` reads it): the answer keeps its 16 bits and its alpha."""
    import io as _io

    tifffile = pytest.importorskip("tifffile")
    from fastinpaint import io as fio

    image, hole = pair
    grey = image[..., 0].astype(np.uint16) * 257 + 3
    la = np.dstack([grey, np.full_like(grey, 65535)])
    buf = _io.BytesIO()
    tifffile.imwrite(buf, la, photometric="minisblack", extrasamples=["unassalpha"])
    resp = client.post("/api/v1/inpaint", files={"image": ("i.tif", buf.getvalue(), "image/tiff"),
                                                 "mask": ("m.png", png((hole * 255).astype(np.uint8)), "image/png")})
    assert resp.status_code == 200, resp.text
    out = fio.read_image(resp.content).pixels
    assert out.dtype == np.uint16 and out.shape == la.shape
    assert np.array_equal(out[~hole], la[~hole])


def test_float_colour_tiff_is_answered_as_float_tiff_within_the_size_limit(pair):
    """A float RGB TIFF (refused with 400, "not a readable image", before): read as the command line
    reads it, answered as float TIFF (the one format that keeps float), and its size checked
    against --max-pixels from its header, as Pillow's files are."""
    import io as _io

    tifffile = pytest.importorskip("tifffile")
    from fastinpaint import io as fio

    image, hole = pair
    rgb = image.astype(np.float32) / 255
    buf = _io.BytesIO()
    tifffile.imwrite(buf, rgb, photometric="rgb")
    files = {"image": ("i.tif", buf.getvalue(), "image/tiff"),
             "mask": ("m.png", png((hole * 255).astype(np.uint8)), "image/png")}
    pixels = image.shape[0] * image.shape[1]
    with TestClient(create_app(ServeConfig(limits=Limits(max_pixels=pixels)))) as c:
        resp = c.post("/api/v1/inpaint", files=files)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/tiff"
        out = fio.read_image(resp.content).pixels
        assert out.dtype == np.float32 and out.shape == rgb.shape
        assert np.array_equal(out[~hole], rgb[~hole])
    with TestClient(create_app(ServeConfig(limits=Limits(max_pixels=pixels - 1)))) as c:
        resp = c.post("/api/v1/inpaint", files=files)
        assert resp.status_code == 413 and f"limit of {pixels - 1} pixels" in error_of(resp)


def test_jpeg_answer_keeps_quality_and_colour_profile(client, pair):
    from fastinpaint.io import jpeg_quality

    image, hole = pair
    icc = b"\0" * 128 + b"a stand-in ICC profile"
    jpeg = png(image, "JPEG", quality=97, icc_profile=icc)
    resp = client.post("/api/v1/inpaint", json={"image": b64(jpeg), "mask": b64(png((hole * 255).astype(np.uint8)))})
    assert resp.status_code == 200, resp.text
    out = Image.open(io.BytesIO(resp.content))
    assert out.format == "JPEG" and out.info.get("icc_profile") == icc
    assert jpeg_quality(out) == jpeg_quality(Image.open(io.BytesIO(jpeg)))  # 97 in, 97 out (was always 95)


def test_data_url_prefix_and_jpeg_answered_as_jpeg(client, pair):
    image, hole = pair
    jpeg = png(image, "JPEG", quality=90)
    req = {"image": "data:image/jpeg;base64," + b64(jpeg),
           "mask": "data:image/png;base64," + b64(png((hole * 255).astype(np.uint8)))}
    resp = client.post("/api/v1/inpaint", json=req)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    out = Image.open(io.BytesIO(resp.content))
    assert out.format == "JPEG" and out.size == (image.shape[1], image.shape[0])
    original = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
    # JPEG is lossy: outside the hole the re-encoded result stays within a few levels of the input
    assert np.abs(np.asarray(out).astype(int) - original)[~hole].mean() < 3


def test_mask_is_thresholded_like_the_cli(client, pair):
    image, hole = pair
    grey = np.where(hole, 128, 127).astype(np.uint8)  # 128 is a hole, 127 is not
    resp = client.post("/api/v1/inpaint", json={"image": b64(png(image)), "mask": b64(png(grey))})
    assert resp.status_code == 200
    assert np.array_equal(decoded(resp), fastinpaint.inpaint(image, hole))


def test_rgba_image_keeps_its_alpha(client, pair):
    image, hole = pair
    rgba = np.dstack([image, np.full(hole.shape, 200, np.uint8)])
    resp = client.post("/api/v1/inpaint", json=body(rgba, hole))
    assert resp.status_code == 200
    out = decoded(resp)
    assert out.shape[2] == 4 and (out[..., 3] == 200).all()
    assert np.array_equal(out[~hole], rgba[~hole])


def test_rgba_image_without_mask_uses_its_alpha_as_the_cli_does(client, pair):
    """No mask: transparent (alpha <= 127) is the hole, fastinpaint.io's rule, said in the notes."""
    from fastinpaint.io import hole_from_alpha

    image, hole = pair
    alpha = np.where(hole, 0, 255).astype(np.uint8)
    alpha[0, 0] = 127  # transparent enough: a hole too
    rgba = np.dstack([image, alpha])
    expected_hole = hole_from_alpha(alpha)
    resp = client.post("/api/v1/inpaint", json={"image": b64(png(rgba))})
    assert resp.status_code == 200
    assert "alpha channel is the mask" in resp.headers["x-fastinpaint-notes"]
    with_mask = client.post("/api/v1/inpaint", json=body(rgba, expected_hole))
    assert np.array_equal(decoded(resp), decoded(with_mask))
    clear = np.dstack([image, np.zeros(hole.shape, np.uint8)])
    resp = client.post("/api/v1/inpaint", json={"image": b64(png(clear))})
    assert resp.status_code == 400 and "alpha channel" in error_of(resp) and "whole image" in error_of(resp)


def test_notes_the_cli_prints_are_answered_in_a_header(client, pair):
    image, hole = pair
    cases = []
    empty = client.post("/api/v1/inpaint", json=body(image, np.zeros_like(hole)))
    cases.append((empty, "empty mask"))
    cmyk = io.BytesIO()
    Image.fromarray(image).convert("CMYK").save(cmyk, format="JPEG")
    cases.append((client.post("/api/v1/inpaint", json={"image": b64(cmyk.getvalue()),
                                                       "mask": b64(png((hole * 255).astype(np.uint8)))}),
                  "CMYK image converted to RGB"))
    frames = io.BytesIO()
    Image.fromarray(image).save(frames, format="TIFF", save_all=True, append_images=[Image.fromarray(image[::-1])])
    cases.append((client.post("/api/v1/inpaint", json={"image": b64(frames.getvalue()),
                                                       "mask": b64(png((hole * 255).astype(np.uint8)))}),
                  "2 frames: only the first"))
    gif = io.BytesIO()
    Image.fromarray(image).save(gif, format="GIF")
    cases.append((client.post("/api/v1/inpaint", json={"image": b64(gif.getvalue()),
                                                       "mask": b64(png((hole * 255).astype(np.uint8)))}),
                  "GIF answered as PNG"))
    for resp, words in cases:
        assert resp.status_code == 200, error_of(resp)
        notes = resp.headers["x-fastinpaint-notes"]
        assert words in notes and "\n" not in notes and notes.isascii()
    plain = client.post("/api/v1/inpaint", json=body(image, hole))
    assert "x-fastinpaint-notes" not in plain.headers


def test_iopaint_shaped_request(client, pair):
    """The fields IOPaint's web page sends with every request; its default hd_strategy "Crop" is
    fastinpaint's "auto" (a small image stays whole), reported in a header."""
    image, hole = pair
    req = body(image, hole)
    req.update({
        "ldm_steps": 20, "ldm_sampler": "plms", "zits_wireframe": True, "hd_strategy": "Crop",
        "hd_strategy_crop_margin": 196, "hd_strategy_crop_trigger_size": 800, "hd_strategy_resize_limit": 2048,
        "prompt": "", "negative_prompt": "", "use_croper": False, "croper_x": 0, "croper_y": 0,
        "croper_height": 512, "croper_width": 512, "use_extender": False, "sd_scale": 1.0, "sd_mask_blur": 11,
        "sd_strength": 1.0, "sd_steps": 50, "sd_guidance_scale": 7.5, "sd_sampler": "uni_pc", "sd_seed": 42,
        "sd_match_histograms": False, "sd_lcm_lora": False, "cv2_flag": "INPAINT_NS", "cv2_radius": 5,
        "paint_by_example_example_image": None, "p2p_image_guidance_scale": 1.5, "enable_controlnet": False,
        "controlnet_conditioning_scale": 0.4, "controlnet_method": "", "enable_brushnet": False,
        "enable_powerpaint_v2": False,
    })
    resp = client.post("/api/v1/inpaint", json=req)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-fastinpaint-hd-strategy"] == "Crop -> auto (original)"  # 128 px: the whole image
    assert np.array_equal(decoded(resp), fastinpaint.inpaint(image, hole))


@pytest.mark.parametrize("value, status, strategy", [
    ("Original", 200, "original"), ("original", 200, "original"), ("CROP", 200, "auto"), ("Resize", 200, "resize"),
    ("auto", 200, "auto"), ("Tiles", 400, None), (3, 400, None)])
def test_hd_strategy(client, pair, value, status, strategy, caplog):
    image, hole = pair
    with caplog.at_level(logging.DEBUG, logger="fastinpaint.hd"):
        sized = {} if strategy == "original" else {"hd_size": 64}  # original has no working size
        resp = client.post("/api/v1/inpaint", json=body(image, hole, hd_strategy=value, **sized))
    assert resp.status_code == status
    if status == 400:
        assert "hd_strategy" in error_of(resp)
    else:
        # auto says what it ran: crops of this 128 px image at hd_size 64, as fastinpaint.hd logged it
        ran = "auto (crop)" if strategy == "auto" else strategy
        assert resp.headers["x-fastinpaint-hd-strategy"] == f"{value} -> {ran}"
        if strategy == "auto":
            assert "auto -> crop" in caplog.text
        assert np.array_equal(decoded(resp), fastinpaint.inpaint(image, hole, hd_strategy=strategy, **sized))


@pytest.mark.parametrize("value", ["Original", "original"])
def test_hd_size_with_original_is_refused(client, pair, value):
    """Original has no working size: an hd_size would be ignored, so it is a 400 naming both (Crop,
    fastinpaint's auto, uses it: accepted above)."""
    image, hole = pair
    resp = client.post("/api/v1/inpaint", json=body(image, hole, hd_strategy=value, hd_size=64))
    assert resp.status_code == 400
    assert error_of(resp) == (f"field 'hd_size' has no effect with hd_strategy {value!r}: it is the working size "
                              "of Crop, Resize, Auto only")


def test_multipart_request_equals_json_request(client, pair):
    image, hole = pair
    files = {"image": ("photo.png", png(image), "image/png"),
             "mask": ("mask.png", png((hole * 255).astype(np.uint8)), "image/png")}
    resp = client.post("/api/v1/inpaint", files=files, data={"seed": "5", "patch_size": "5"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    expected = client.post("/api/v1/inpaint", json=body(image, hole, seed=5, patch_size=5))
    assert resp.content == expected.content
    assert not np.array_equal(decoded(resp), fastinpaint.inpaint(image, hole, seed=5))  # patch_size was used


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------
def _bad_requests(image, hole):
    good_mask = b64(png((hole * 255).astype(np.uint8)))
    small_mask = b64(png((hole[:50, :60] * 255).astype(np.uint8)))
    return {
        "invalid base64": ({"image": "%%%not base64%%%", "mask": good_mask}, "not valid base64"),
        "not an image": ({"image": b64(b"hello, world"), "mask": good_mask}, "not a readable image"),
        "truncated image": ({"image": b64(png(image)[:300]), "mask": good_mask}, "not a readable image"),
        "mask size": ({"image": b64(png(image)), "mask": small_mask}, "same size"),
        "unknown method": ({"image": b64(png(image)), "mask": good_mask, "method": "lama"}, "unknown method"),
        "missing mask": ({"image": b64(png(image))}, "'mask' is missing and the image has no alpha channel"),
        "full mask": ({"image": b64(png(image)), "mask": b64(png(np.full(hole.shape, 255, np.uint8)))},
                      "whole image"),
        "even patch": ({"image": b64(png(image)), "mask": good_mask, "patch_size": 6}, "odd"),
        "seed not int": ({"image": b64(png(image)), "mask": good_mask, "seed": "abc"}, "integer"),
        # the API's limit (2**62 - 1): the server took up to 2**63 - 1, which inpaint then refused
        "seed too large": ({"image": b64(png(image)), "mask": good_mask, "seed": 2**62},
                           "between -4611686018427387904 and 4611686018427387903"),
        "seed too small": ({"image": b64(png(image)), "mask": good_mask, "seed": -2**62 - 1},
                           "between -4611686018427387904 and 4611686018427387903"),
        "patch too large": ({"image": b64(png(image)), "mask": good_mask, "patch_size": 33}, "between 3 and 31"),
        "weights not offered": ({"image": b64(png(image)), "mask": good_mask, "method": "pconv",
                                 "weights": "/etc/passwd"}, "unknown weights"),
        "source for biharmonic": ({"image": b64(png(image)), "mask": good_mask, "method": "biharmonic",
                                   "source_mask": good_mask}, "source_mask"),
    }


@pytest.mark.parametrize("case", ["invalid base64", "not an image", "truncated image", "mask size", "unknown method",
                                  "missing mask", "full mask", "even patch", "seed not int", "seed too large",
                                  "seed too small", "patch too large",
                                  "weights not offered", "source for biharmonic"])
def test_bad_request_is_400_with_one_line(client, pair, case):
    req, words = _bad_requests(*pair)[case]
    resp = client.post("/api/v1/inpaint", json=req)
    assert resp.status_code == 400
    assert words in error_of(resp)
    assert "object at 0x" not in error_of(resp)  # no repr of Pillow's in-memory file


@pytest.mark.parametrize("content, ctype, status, words", [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "JSON object"),
    (b"[" * 200_000, "application/json", 400, "not valid JSON (nested too deeply)"),  # not a RecursionError 500
    (b'{"image": ' + b"[" * 200_000, "application/json", 400, "not valid JSON"),
    (b"image=abc", "application/x-www-form-urlencoded", 415, "Content-Type"),
    (b"--xyz\r\nbroken", "multipart/form-data; boundary=xyz", 400, None),
])
def test_unreadable_body(client, content, ctype, status, words):
    resp = client.post("/api/v1/inpaint", content=content, headers={"Content-Type": ctype})
    assert resp.status_code == status
    message = error_of(resp)
    assert words is None or words in message


def test_too_many_pixels_is_413(pair):
    image, hole = pair
    limit = image.shape[0] * image.shape[1] - 1
    with TestClient(create_app(ServeConfig(limits=Limits(max_pixels=limit)))) as c:
        resp = c.post("/api/v1/inpaint", json=body(image, hole))
        assert resp.status_code == 413
        assert f"limit of {limit} pixels" in error_of(resp)
        # one pixel fewer in each direction and it is answered
        resp = c.post("/api/v1/inpaint", json=body(image[:-1], hole[:-1]))
        assert resp.status_code == 200


def _png_1bit(width, height) -> bytes:
    """A black 1-bit PNG, written here: 30000 x 30000 is 110 KB, and 900 MP once decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed bits
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("field", ["image", "mask"])
def test_decompression_bomb_is_413_in_this_servers_terms(client, pair, field):
    """A small file of huge dimensions, past Pillow's own guard (twice --max-pixels, which it is set
    from while reading): a 413 naming its size and this server's limit, as for any image over it,
    not Pillow's words."""
    image, hole = pair
    bomb = _png_1bit(30000, 30000)
    assert len(bomb) < 200_000
    req = body(image, hole)
    req[field] = b64(bomb)
    resp = client.post("/api/v1/inpaint", json=req)
    assert resp.status_code == 413
    assert error_of(resp) == (f"field '{field}': image of 30000x30000 = 900000000 pixels exceeds this server's "
                              "limit of 50000000 pixels (--max-pixels)")


@pytest.mark.parametrize("kind", ["png", "float tiff"])
def test_max_pixels_is_the_one_limit_above_or_below_pillows(pair, monkeypatch, kind):
    """--max-pixels is the one limit, Pillow's guard set from it while reading: a server taking
    more than Pillow opens by default answered "exceeds Pillow's limit" (its 179 MP, lowered here
    to 200 pixels) however high --max-pixels was; now an image within --max-pixels is answered, its
    mask too, and one above it is refused in the server's one line. Pillow's guard is restored
    after each request. A float TIFF (read with tifffile) meets the same limit."""
    import io as _io

    from PIL import Image

    image, hole = pair
    pixels = image.shape[0] * image.shape[1]
    if kind == "png":
        data = png(image)
    else:
        tifffile = pytest.importorskip("tifffile")
        buf = _io.BytesIO()
        tifffile.imwrite(buf, image.astype(np.float32) / 255, photometric="rgb")
        data = buf.getvalue()
    req = {"image": b64(data), "mask": b64(png((hole * 255).astype(np.uint8)))}
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above 200 pixels
    with TestClient(create_app(ServeConfig(limits=Limits(max_pixels=pixels)))) as c:
        resp = c.post("/api/v1/inpaint", json=req)
        assert resp.status_code == 200, resp.text
        assert Image.MAX_IMAGE_PIXELS == 100
    with TestClient(create_app(ServeConfig(limits=Limits(max_pixels=pixels - 1)))) as c:
        resp = c.post("/api/v1/inpaint", json=req)
        assert resp.status_code == 413
        assert error_of(resp) == (f"field 'image': image of {image.shape[1]}x{image.shape[0]} = {pixels} pixels "
                                  f"exceeds this server's limit of {pixels - 1} pixels (--max-pixels)")
        assert Image.MAX_IMAGE_PIXELS == 100


def test_pillow_bomb_message_of_other_wording():
    from fastinpaint.serve.decode import _too_large_for_pillow

    message = _too_large_for_pillow("image", ValueError("too big"), Limits(max_pixels=1000))
    assert message == "field 'image': image of more than 1000 pixels exceeds this server's limit of 1000 pixels " \
                      "(--max-pixels)"


def test_too_large_body_is_413(pair):
    image, hole = pair
    req = json.dumps(body(image, hole)).encode()
    with TestClient(create_app(ServeConfig(limits=Limits(max_body_bytes=len(req) - 1)))) as c:
        resp = c.post("/api/v1/inpaint", content=req, headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and "request body" in error_of(resp)

        def chunked():  # no Content-Length: counted while read
            for i in range(0, len(req), 4096):
                yield req[i:i + 4096]

        resp = c.post("/api/v1/inpaint", content=chunked(), headers={"Content-Type": "application/json"})
        assert "content-length" not in resp.request.headers
        assert resp.status_code == 413 and "request body" in error_of(resp)
    with TestClient(create_app(ServeConfig(limits=Limits(max_body_bytes=len(req))))) as c:
        assert c.post("/api/v1/inpaint", content=req, headers={"Content-Type": "application/json"}).status_code == 200


def test_failing_method_is_500_and_the_server_keeps_serving(pair, monkeypatch):
    import importlib

    api = importlib.import_module("fastinpaint.inpaint")  # (the package's `inpaint` is the function)

    def broken(image, hole, **options):
        raise RuntimeError("out of memory\nsomewhere")

    monkeypatch.setitem(api._REGISTERED, "broken", broken)  # (a broken weights file is refused at start-up)
    image, hole = pair
    with TestClient(create_app(ServeConfig())) as c:
        resp = c.post("/api/v1/inpaint", json=body(image, hole, method="broken"))
        assert resp.status_code == 500
        assert error_of(resp) == "method 'broken' failed: out of memory somewhere"
        resp = c.post("/api/v1/inpaint", json=body(image, hole))
        assert resp.status_code == 200


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """name -> path: copies of the bundled PConvUNet and GLCIC files, a log file, a training
    checkpoint (a torch file, not a network's)."""
    import shutil

    import torch

    from fastinpaint.weights import bundled_weights

    folder = tmp_path_factory.mktemp("weights")
    shutil.copy(bundled_weights("pconv"), folder / "mine_pconv.pt")
    shutil.copy(bundled_weights("glcic"), folder / "mine_glcic.pt")
    (folder / "serve.log").write_text("fastinpaint serve: open http://127.0.0.1:8080/\n")
    torch.save({"format": "fastinpaint.trainer/1", "step": 3}, folder / "trainer.pt")
    (folder / "hello.txt").write_text("hello\n")  # the weights-only unpickler trips with a KeyError on it
    return {p.name: str(p) for p in sorted(folder.iterdir())}


def test_weights_are_sorted_by_their_header(weights_files):
    from fastinpaint.serve.app import sort_weights

    by_method, notes = sort_weights(weights_files)
    assert by_method == {"pconv": {"mine_pconv.pt": weights_files["mine_pconv.pt"]},
                         "glcic": {"mine_glcic.pt": weights_files["mine_glcic.pt"]}}
    assert len(notes) == 3 and all("\n" not in n for n in notes)
    assert notes[0].startswith("--weights hello.txt left out: ") and "not a readable PyTorch checkpoint" in notes[0]
    assert notes[1].startswith("--weights serve.log left out: ") and "PyTorch checkpoint" in notes[1]
    assert notes[2].startswith("--weights trainer.pt left out: ") and "'fastinpaint.trainer/1'" in notes[2]


def test_each_weights_file_is_offered_and_taken_for_its_own_method_only(weights_files, pair):
    from fastinpaint.serve.app import sort_weights

    image, hole = pair
    with TestClient(create_app(ServeConfig(weights=sort_weights(weights_files)[0]))) as c:
        offered = {m["name"]: m["options"].get("weights", {}).get("choices")
                   for m in c.get("/api/v1/server-config").json()["methods"]}
        assert offered["pconv"] == ["", "mine_pconv.pt"] and offered["glcic"] == ["", "mine_glcic.pt"]
        resp = c.post("/api/v1/inpaint", json=body(image, hole, method="pconv", weights="mine_glcic.pt"))
        assert resp.status_code == 400  # was a 500 "method 'pconv' failed: ... is a 'fastinpaint.GLCIC' file"
        assert error_of(resp) == ("weights 'mine_glcic.pt' are for method 'glcic', not 'pconv'; this server offers "
                                  "for pconv: mine_pconv.pt (or no 'weights': the bundled network)")
        for chosen in ("serve.log", "nope.pt"):
            resp = c.post("/api/v1/inpaint", json=body(image, hole, method="glcic", weights=chosen))
            assert resp.status_code == 400
            assert error_of(resp).startswith(f"unknown weights {chosen!r} for method 'glcic'; this server offers "
                                             "for glcic: mine_glcic.pt")
        resp = c.post("/api/v1/inpaint", json=body(image, hole, method="glcic", weights="mine_glcic.pt"))
        assert resp.status_code == 200 and np.array_equal(decoded(resp)[~hole], image[~hole])
        assert resp.headers["x-fastinpaint-weights"] == "mine_glcic.pt"  # which network answered
        resp = c.post("/api/v1/inpaint", json=body(image, hole, method="glcic"))
        assert resp.status_code == 200 and resp.headers["x-fastinpaint-weights"] == "bundled"
        resp = c.post("/api/v1/inpaint", json=body(image, hole))
        assert "x-fastinpaint-weights" not in resp.headers  # patchmatch: no network


def test_weights_config_of_the_old_shape_is_refused(weights_files):
    with pytest.raises(ValueError, match="method -> {name: path}"):
        create_app(ServeConfig(weights={"mine_pconv.pt": weights_files["mine_pconv.pt"]}))


@pytest.mark.parametrize("method, name, words", [
    ("pconv", "mine_glcic.pt", "is a GLCIC checkpoint, for method 'glcic', not 'pconv'"),
    ("glcic", "serve.log", "PyTorch checkpoint"),
    ("glcic", "trainer.pt", "'fastinpaint.trainer/1'"),
    ("pconv", "gone.pt", "does not exist"),
])
def test_weights_given_in_code_are_checked_at_start_up(weights_files, tmp_path, method, name, words):
    """A ServeConfig built in code is checked as `fastinpaint serve --weights` is, when the app is
    made by either factory (it was taken as given: a missing file or another network's failed as a
    500 at the first request that chose it)."""
    from fastinpaint.serve import create_app as factory

    path = weights_files.get(name, str(tmp_path / name))
    for make in (create_app, factory):
        with pytest.raises(ValueError) as info:
            make(ServeConfig(weights={method: {name: path}}))
        message = str(info.value)
        assert message.startswith(f"ServeConfig.weights[{method!r}][{name!r}]: ") and words in message
        assert "\n" not in message


# --------------------------------------------------------------------------------------------------
# the source region
# --------------------------------------------------------------------------------------------------
def test_source_mask_is_honoured(client, pair):
    """The fill copies only from the allowed region: a solid colour that occurs nowhere else, so a
    fill pixel of any other colour came from elsewhere. Without the source mask the same fill is
    taken from the photo around the hole (the check can fail)."""
    image, _ = pair
    image = image.copy()
    colour = np.array([17, 201, 140], np.uint8)
    assert not (image == colour).all(axis=2).any()
    allowed = np.zeros(image.shape[:2], bool)
    allowed[:, 100:] = True
    image[allowed] = colour
    hole = np.zeros(image.shape[:2], bool)
    hole[30:60, 30:65] = True
    source = b64(png((allowed * 255).astype(np.uint8)))
    resp = client.post("/api/v1/inpaint", json=body(image, hole, source_mask=source))
    assert resp.status_code == 200, resp.text
    filled = decoded(resp)[hole]
    assert (filled == colour).all()
    free = decoded(client.post("/api/v1/inpaint", json=body(image, hole)))[hole]
    assert (free != colour).any(axis=1).mean() > 0.9


def test_source_mask_with_nothing_to_copy_is_400(client, pair):
    image, hole = pair
    resp = client.post("/api/v1/inpaint", json=body(image, hole, source_mask=b64(png((hole * 255).astype(np.uint8)))))
    assert resp.status_code == 400 and "source_mask" in error_of(resp)


# --------------------------------------------------------------------------------------------------
# concurrency and the queue
# --------------------------------------------------------------------------------------------------
async def _post_all(app, requests):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as c:
        return await asyncio.gather(*(c.post("/api/v1/inpaint", json=r) for r in requests))


def test_concurrent_requests_equal_sequential_ones(pair):
    image, hole = pair
    requests = [body(image, hole, seed=seed) for seed in range(8)]
    app = create_app(ServeConfig())  # the default queue takes 8 at once
    answers = asyncio.run(_post_all(app, requests))
    assert [a.status_code for a in answers] == [200] * 8
    with TestClient(app) as c:
        sequential = [c.post("/api/v1/inpaint", json=r).content for r in requests]
    assert [a.content for a in answers] == sequential
    assert len(set(sequential)) > 1  # the seeds mattered: the comparison is not between 8 copies


def test_full_queue_is_503(pair):
    image, hole = pair
    app = create_app(ServeConfig(max_waiting=1))
    release = threading.Event()

    async def scenario():
        jobs = app.state.jobs
        running = asyncio.ensure_future(jobs.run(lambda: release.wait(30)))
        waiting = asyncio.ensure_future(jobs.run(lambda: "waited"))
        await asyncio.sleep(0.1)
        assert jobs.pending == 2
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            health = (await c.get("/healthz")).json()
        assert health == {"status": "ok", "running": 1, "queued": 1}  # queued: waiting only
        refused = (await _post_all(app, [body(image, hole)]))[0]
        release.set()
        assert await running and await waiting == "waited"
        answered = (await _post_all(app, [body(image, hole)]))[0]
        return refused, answered

    refused, answered = asyncio.run(scenario())
    assert refused.status_code == 503 and "busy" in error_of(refused)
    assert "1 job is already waiting (limit 1)" in error_of(refused)
    assert refused.headers["retry-after"]
    assert answered.status_code == 200


def test_job_queue_runs_one_at_a_time_in_order():
    queue = JobQueue(max_waiting=10)
    running, overlap, order = [0], [], []
    lock = threading.Lock()

    def job(i):
        def fn():
            with lock:
                running[0] += 1
                overlap.append(running[0])
            time.sleep(0.01)
            order.append(i)
            with lock:
                running[0] -= 1
            return i
        return fn

    async def main():
        return await asyncio.gather(*(queue.run(job(i)) for i in range(8)))

    assert asyncio.run(main()) == list(range(8))
    assert max(overlap) == 1 and order == list(range(8))
    assert queue.pending == 0

    async def too_many():
        q = JobQueue(max_waiting=0)
        gate = threading.Event()
        first = asyncio.ensure_future(q.run(gate.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await q.run(lambda: None)
        gate.set()
        await first

    asyncio.run(too_many())


def test_stop_answers_every_job_at_once_and_saves_nothing(pair, tmp_path, monkeypatch):
    """A second Ctrl-C (JobQueue.stop): the running and the waiting requests are answered JSON 503
    at once, the waiting jobs never run, and the running one, finishing later, saves nothing."""
    image, hole = pair
    gate, started, calls = threading.Event(), threading.Event(), []
    real = fastinpaint.inpaint

    def slow(*args, **kwargs):
        calls.append(1)
        started.set()
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(fastinpaint, "inpaint", slow)
    app = create_app(ServeConfig(output_dir=tmp_path))

    async def scenario():
        answers = asyncio.ensure_future(_post_all(app, [body(image, hole, seed=s) for s in range(3)]))
        while app.state.jobs.pending < 3 or not started.is_set():
            await asyncio.sleep(0.01)
        assert (app.state.jobs.running, app.state.jobs.waiting) == (1, 2)
        t0 = time.monotonic()
        app.state.jobs.stop()
        done = await answers
        waited = time.monotonic() - t0
        gate.set()
        while app.state.jobs.running:
            await asyncio.sleep(0.01)
        return done, waited

    answers, waited = asyncio.run(scenario())
    assert waited < 5
    for a in answers:
        assert a.status_code == 503 and a.headers["content-type"] == "application/json"
        assert error_of(a) == "the server is shutting down; the job was cancelled"
    assert calls == [1] and list(tmp_path.iterdir()) == []

    async def refused():
        with pytest.raises(ShuttingDown):
            await app.state.jobs.run(lambda: None)

    asyncio.run(refused())


# --------------------------------------------------------------------------------------------------
# server information, --input, --output-dir
# --------------------------------------------------------------------------------------------------
def test_server_config_methods_healthz(client):
    config = client.get("/api/v1/server-config").json()
    assert [m["name"] for m in config["methods"]] == list(fastinpaint.available_methods())
    assert config["version"] == fastinpaint.__version__ and config["device"] == "cpu"
    assert config["limits"]["max_pixels"] == 50_000_000
    patchmatch = next(m for m in config["methods"] if m["name"] == "patchmatch")
    assert patchmatch["source_mask"] and patchmatch["options"]["patch_size"]["default"] == 7
    assert client.get("/api/v1/methods").json()["methods"] == list(fastinpaint.available_methods())
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_server_config_lists_every_hd_strategy_the_api_takes(client, pair):
    image, hole = pair
    listed = client.get("/api/v1/server-config").json()["hd_strategies"]
    assert sorted(listed) == ["Auto", "Crop", "Original", "Resize"]
    for name in listed:
        assert client.post("/api/v1/inpaint", json=body(image, hole, hd_strategy=name)).status_code == 200


def test_method_and_hd_strategy_take_any_case_alike(client, pair):
    image, hole = pair
    resp = client.post("/api/v1/inpaint", json=body(image, hole, method="PatchMatch", hd_strategy="oRiGiNaL"))
    assert resp.status_code == 200, error_of(resp)
    assert resp.headers["x-fastinpaint-method"] == "patchmatch"
    assert np.array_equal(decoded(resp), decoded(client.post("/api/v1/inpaint", json=body(image, hole))))


@pytest.mark.parametrize("field", ["image", "mask"])
def test_empty_base64_field_is_said_empty_not_missing(client, pair, field):
    image, hole = pair
    req = body(image, hole)
    req[field] = ""
    resp = client.post("/api/v1/inpaint", json=req)
    assert resp.status_code == 400 and error_of(resp) == f"field '{field}' is empty"


def test_a_field_sent_twice_in_multipart_is_refused_naming_it(client, pair):
    image, hole = pair
    files = [("image", ("a.png", png(image), "image/png")), ("image", ("b.png", png(image[::-1]), "image/png")),
             ("mask", ("m.png", png((hole * 255).astype(np.uint8)), "image/png"))]
    resp = client.post("/api/v1/inpaint", files=files)
    assert resp.status_code == 400 and "field 'image' is sent more than once" in error_of(resp)
    resp = client.post("/api/v1/inpaint", files=files[1:], data={"seed": ["1", "2"]})
    assert resp.status_code == 400 and "field 'seed' is sent more than once" in error_of(resp)


@pytest.mark.parametrize("verb, path, status, words", [
    ("GET", "/api/v1/nonexistent", 404, "no API endpoint /api/v1/nonexistent"),
    ("GET", "/api/v2/inpaint", 404, "no API endpoint"),
    ("GET", "/api/v1/inpaint", 405, "method GET is not allowed on /api/v1/inpaint; use POST"),
    ("DELETE", "/api/v1/server-config", 405, "method DELETE is not allowed"),
    ("POST", "/healthz", 405, "method POST is not allowed"),
])
def test_api_path_errors_are_json(client, verb, path, status, words):
    resp = client.request(verb, path)
    assert resp.status_code == status and resp.headers["content-type"] == "application/json"
    assert words in error_of(resp)
    if status == 405:
        assert resp.headers["allow"]


def test_page_path_errors_stay_plain_text(client):
    resp = client.get("/static/no-such-file.js")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/plain")
    assert client.get("/no-such-page").status_code == 404


@pytest.fixture
def input_dir(tmp_path):
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    a = png(np.full((8, 8, 3), 10, np.uint8))
    (inputs / "a.png").write_bytes(a)
    (inputs / "b.jpg").write_bytes(png(np.full((8, 8, 3), 20, np.uint8), "JPEG"))
    (inputs / "notes.txt").write_text("not an image")
    (inputs / "sub" / "c.png").write_bytes(a)
    (tmp_path / "secret.png").write_bytes(b"SECRET" + a)
    (inputs / "link.png").symlink_to(tmp_path / "secret.png")
    return inputs


def test_input_folder_lists_its_images_by_name(input_dir):
    with TestClient(create_app(ServeConfig(inputs=input_dir))) as c:
        assert c.get("/api/v1/inputs").json()["images"] == ["a.png", "b.jpg"]
        assert c.get("/api/v1/server-config").json()["inputs"] == ["a.png", "b.jpg"]
        resp = c.get("/api/v1/inputs/a.png")
        assert resp.status_code == 200 and resp.content == (input_dir / "a.png").read_bytes()


@pytest.mark.parametrize("path", [
    "../secret.png", "..%2Fsecret.png", "%2E%2E%2Fsecret.png", "..%5Csecret.png", "sub/c.png", "sub%2Fc.png",
    "link.png", "notes.txt", "%2Fetc%2Fpasswd", "/etc/passwd", "a.png%00.txt", "A.PNG",
])
def test_input_path_traversal_is_rejected(input_dir, path):
    with TestClient(create_app(ServeConfig(inputs=input_dir))) as c:
        resp = c.get("/api/v1/inputs/" + path)
        assert resp.status_code == 404
        assert b"SECRET" not in resp.content and b"root:" not in resp.content


def test_static_files_do_not_leave_their_folder(client):
    for path in ("/static/../app.py", "/static/%2E%2E/app.py", "/static/..%2Fapp.py", "/static/%2E%2E%2F__init__.py"):
        resp = client.get(path)
        assert resp.status_code == 404 and b"create_app" not in resp.content


def test_output_dir_saves_results_under_server_names(tmp_path, pair):
    image, hole = pair
    out = tmp_path / "results"
    out.mkdir()
    with TestClient(create_app(ServeConfig(output_dir=out))) as c:
        resp = c.post("/api/v1/inpaint", json=body(image, hole, output="../escape.png", path="/tmp/x.png"))
    assert resp.status_code == 200
    saved = resp.headers["x-fastinpaint-saved-as"]
    assert [p.name for p in out.iterdir()] == [saved]
    assert (out / saved).read_bytes() == resp.content
    assert not (tmp_path / "escape.png").exists()


def test_servers_sharing_output_dir_never_overwrite_each_other(tmp_path, pair, monkeypatch):
    """Two servers (two applications, each with its own counter) saving in one folder in the same
    second: each result under its own name, as each answer says; a file already there is kept."""
    import fastinpaint.serve.app as app_module

    image, hole = pair
    out = tmp_path / "shared"
    out.mkdir()
    monkeypatch.setattr(app_module.time, "strftime", lambda fmt, *t: "20250101-120000")  # the same second
    (out / "fastinpaint-20250101-120000-0002.png").write_bytes(b"a user's file")
    answers = []
    for flip in (False, True):
        with TestClient(create_app(ServeConfig(output_dir=out))) as c:
            flipped = (image[:, ::-1], hole[:, ::-1]) if flip else (image, hole)
            resp = c.post("/api/v1/inpaint", json=body(*flipped))
        assert resp.status_code == 200 and "x-fastinpaint-not-saved" not in resp.headers
        answers.append((resp.headers["x-fastinpaint-saved-as"], resp.content))
    assert answers[0][1] != answers[1][1]
    assert [name for name, _ in answers] == ["fastinpaint-20250101-120000-0001.png",
                                             "fastinpaint-20250101-120000-0003.png"]
    for name, content in answers:
        assert (out / name).read_bytes() == content
    assert (out / "fastinpaint-20250101-120000-0002.png").read_bytes() == b"a user's file"
    assert sorted(p.name for p in out.iterdir()) == sorted(["fastinpaint-20250101-120000-0002.png",
                                                            *(name for name, _ in answers)])  # no temporary left


def test_result_that_cannot_be_saved_is_answered_and_said_not_saved(tmp_path, pair, caplog):
    """The output folder removed while serving: not "method failed" (500) but the computed image,
    200, with X-FastInpaint-Not-Saved naming the folder and why."""
    image, hole = pair
    out = tmp_path / "results"
    out.mkdir()
    with TestClient(create_app(ServeConfig(output_dir=out))) as c:
        out.rmdir()
        with caplog.at_level(logging.ERROR, logger="fastinpaint.serve"):
            resp = c.post("/api/v1/inpaint", json=body(image, hole))
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    filled = decoded(resp)
    assert np.array_equal(filled[~hole], image[~hole])
    assert "x-fastinpaint-saved-as" not in resp.headers
    note = resp.headers["x-fastinpaint-not-saved"]
    assert note.startswith(f"could not save the result to {out}: ") and "No such file" in note
    assert "failed" not in note and "Traceback" not in caplog.text and note in caplog.text


def test_page_reads_the_saving_headers_the_server_sends():
    """The page shows in its status line whether a result was saved (the browser test runs it): it
    reads the very headers the server sends (a 200 is all a failed save was to it)."""
    from fastinpaint.serve.app import STATIC

    server = (pathlib.Path(fastinpaint.__file__).parent / "serve" / "app.py").read_text()
    page = (STATIC / "app.js").read_text()
    for header in ("X-FastInpaint-Saved-As", "X-FastInpaint-Not-Saved"):
        assert f'headers["{header}"]' in server and f'resp.headers.get("{header}")' in page


def test_input_file_exposes_that_file_only(input_dir):
    with TestClient(create_app(ServeConfig(inputs=input_dir / "a.png"))) as c:
        assert c.get("/api/v1/inputs").json()["images"] == ["a.png"]
        assert c.get("/api/v1/inputs/a.png").content == (input_dir / "a.png").read_bytes()
        assert c.get("/api/v1/inputs/b.jpg").status_code == 404


def test_page_files_ship_in_the_wheel():
    """scikit-build-core copies every file of the `wheel.packages` folders that git does not ignore
    (as it ships the bundled weights): the page's files must be inside the package, not ignored,
    and not excluded."""
    import subprocess

    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    from fastinpaint.serve.app import STATIC

    repo = pathlib.Path(__file__).resolve().parents[1]
    settings = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["scikit-build"]
    assert "python/fastinpaint" in settings["wheel"]["packages"]
    assert not settings["wheel"].get("exclude") and not settings.get("sdist", {}).get("exclude")
    files = [STATIC / name for name in ("index.html", "app.js", "style.css")]
    assert all(f.is_file() and f.is_relative_to(repo / "python" / "fastinpaint") for f in files)
    if (repo / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", *map(str, files)], cwd=repo, capture_output=True, text=True)
        assert ignored.stdout == ""


@pytest.mark.parametrize("server", ["127.0.0.1", "[::1]", "127.0.0.2"])
def test_app_itself_refuses_other_host_names_on_loopback(server):
    """The application as ``uvicorn --factory fastinpaint.serve:create_app`` builds it (no config):
    on a loopback connection a page under another name (DNS rebinding) is refused, the loopback
    names (any port) are answered."""
    from fastinpaint.serve import create_app as factory

    with TestClient(factory(), base_url=f"http://{server}:8080") as c:
        assert c.get("/healthz").status_code == 200
        for host in ("localhost:8080", "LOCALHOST", "127.0.0.1", "[::1]:8080"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8080", "localhost.evil.example", "", "[::2]:8080"):
            resp = c.get("/api/v1/server-config", headers={"Host": host})
            assert resp.status_code == 400, host
            assert "not accepted" in error_of(resp)
        assert c.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_host_names_are_not_checked_off_loopback_or_when_disabled():
    """A connection to another address (--host 0.0.0.0 reached from another machine) may come by
    any name; allowed_hosts=None (a reverse proxy on this machine) turns the check off."""
    with TestClient(create_app(ServeConfig()), base_url="http://192.0.2.7:8080") as c:
        assert c.get("/healthz", headers={"Host": "inpaint.example"}).status_code == 200
    with TestClient(create_app(ServeConfig(allowed_hosts=None)), base_url="http://127.0.0.1:8080") as c:
        assert c.get("/healthz", headers={"Host": "inpaint.example"}).status_code == 200
