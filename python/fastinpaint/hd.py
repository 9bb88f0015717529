"""High-resolution strategies: how a method is run on a photo larger than it works well at.

The dispatcher (:mod:`fastinpaint.inpaint`) calls :func:`run_strategy` around the method, on the
``(C, H, W)`` float colour and the ``(H, W)`` bool hole. Strategies:

* ``original``: the whole image, as is (the behaviour before strategies existed).
* ``crop``: the holes grouped into regions (connected components whose context boxes overlap
  are merged); each region's box (the holes' bounding box plus a margin) processed alone, at full
  resolution. Only the context near the hole is processed, so cost follows the hole, not the photo.
* ``resize``: the whole image downscaled to a long side of ``hd_size``, filled, the fill upscaled.
* ``auto`` (default): ``original`` when the image's long side is at most the method's working
  size; else ``crop`` with each region brought to the method's working scale: the learned
  networks (``fn.working_size``, 512 px: they were trained on small crops and leave a flat
  rectangle in a hole far wider than anything they saw) at a long side of that size; the others at
  full resolution unless a crop exceeds the method's pixel budget (``fn.hd_max_pixels``).

Known pixels are never altered here: the fill (upscaled where a crop was downscaled) is written
into hole pixels only, and the dispatcher copies the input's own bits everywhere else. There is no
seam at a crop's edge because the crop's edge lies in known pixels, which are kept.
Every choice is logged on the ``fastinpaint.hd`` logger at debug level.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger("fastinpaint.hd")

STRATEGIES = ("auto", "original", "crop", "resize")
#: Long side under which ``auto`` keeps a method without a working size on the whole image:
#: a megapixel is affordable for PatchMatch and biharmonic, and the whole image is the most context.
DEFAULT_TRIGGER = 1024
#: Long side ``resize`` works at for a method without a working size.
DEFAULT_RESIZE = 1024
#: A region's margin: at least this many pixels, and at least this fraction of the box's long side
#: (a method needs context in proportion to the hole to continue structure into it).
MIN_MARGIN = 32
MARGIN_FRACTION = 0.5

Box = Tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive)


def check_options(strategy, size) -> Tuple[str, Optional[int]]:
    """The validated ``(hd_strategy, hd_size)``; clear one-line errors."""
    if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
        raise ValueError(f"inpaint: unknown hd_strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(f"inpaint: hd_size must be an int (a long side in pixels) or None, got {size!r}")
        if size < 16:
            raise ValueError(f"inpaint: hd_size must be at least 16 pixels, got {size}")
        size = int(size)
    return strategy.lower(), size


def run_strategy(fn: Callable[..., Tensor], colour: Tensor, hole: Tensor, *, strategy: str, size: Optional[int],
                 seed: int, source_mask: Optional[Tensor], options: dict) -> Tensor:
    """``(C, H, W)``: ``colour`` with the hole filled by ``fn`` under ``strategy`` (see the module)."""
    h, w = hole.shape
    name = getattr(fn, "__name__", "method")
    working = size if size is not None else getattr(fn, "working_size", None)
    budget = getattr(fn, "hd_max_pixels", None)

    def call(img, hl, src, s):
        return fn(img, hl, seed=s, source_mask=src, **options)

    if strategy == "auto":
        trigger = working if working is not None else DEFAULT_TRIGGER
        strategy = "original" if max(h, w) <= trigger else "crop"
        log.debug("%s: auto -> %s (image %dx%d, working size %s, budget %s px)", name, strategy, w, h, working, budget)
        limit = working
    else:
        log.debug("%s: hd_strategy %s (image %dx%d)", name, strategy, w, h)
        limit = None  # an explicit "crop" is full resolution, as IOPaint's
        budget = None
    if strategy == "original":
        return call(colour, hole, source_mask, seed)
    if strategy == "resize":
        target = size if size is not None else (working or DEFAULT_RESIZE)
        if max(h, w) <= target:
            log.debug("%s: resize: long side %d <= %d, processed as is", name, max(h, w), target)
            return call(colour, hole, source_mask, seed)
        scale = target / max(h, w)
        log.debug("%s: resize to long side %d (scale %.3f)", name, target, scale)
        return _scaled(call, colour, hole, source_mask, seed, scale)
    # crop
    out = colour.clone()
    boxes = regions(hole.cpu().numpy())
    log.debug("%s: %d region(s): %s", name, len(boxes), boxes)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        hole_c = hole[y0:y1, x0:x1]
        img_c = placeholder(colour[:, y0:y1, x0:x1], hole_c)
        src_c = None if source_mask is None else source_mask[y0:y1, x0:x1]
        paste = hole_c
        if src_c is not None and not bool((src_c & ~hole_c).any()):
            # nothing to copy from inside the box: this region takes the whole image's context
            # (every hole stays a hole there), and only its own box's hole pixels are pasted
            log.debug("%s: region %d has no source pixel in its box; using the whole image", name, i)
            y0, y1, x0, x1 = 0, h, 0, w
            img_c, hole_c, src_c = colour, hole, source_mask
            paste = hole & _box_mask(hole, boxes[i])
        bh, bw = y1 - y0, x1 - x0
        scale = 1.0
        if limit is not None:
            scale = min(scale, limit / max(bh, bw))
        if budget is not None:
            scale = min(scale, math.sqrt(budget / (bh * bw)))
        log.debug("%s: region %d box y %d:%d x %d:%d (%dx%d) at scale %.3f", name, i, y0, y1, x0, x1, bw, bh, scale)
        fill = (call(img_c, hole_c, src_c, seed + i) if scale >= 1.0
                else _scaled(call, img_c, hole_c, src_c, seed + i, scale))
        out[:, y0:y1, x0:x1] = torch.where(paste[None], fill, out[:, y0:y1, x0:x1])
    return out


def placeholder(img: Tensor, hole: Tensor, known: Optional[Tensor] = None) -> Tensor:
    """``img`` ``(C, H, W)`` with its hole set to the mean of its known pixels (``known``: those
    pixels, ``(C, N)``, when the caller has them already). The dispatcher does this for the whole
    image, so that hole values (NaN included) never reach a method; each crop gets the same, so a
    method given a crop sees what it would see given that crop as an image."""
    if known is None:
        known = img[:, ~hole]
    return torch.where(hole[None], known.mean(dim=1)[:, None, None], img)


def _box_mask(hole: Tensor, box: Box) -> Tensor:
    m = torch.zeros_like(hole)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = True
    return m


def _scaled(call, img: Tensor, hole: Tensor, src: Optional[Tensor], seed: int, scale: float) -> Tensor:
    """``img`` with its hole filled at ``scale`` (< 1): downscaled with area averaging, filled, the fill
    upscaled bicubically and clamped to the known colour range (bicubic overshoots); known pixels
    stay ``img``'s own."""
    _, h, w = img.shape
    lh, lw = max(1, round(h * scale)), max(1, round(w * scale))
    hf = hole[None, None].float()
    # area coverage: a low-resolution pixel touched by the hole is hole, so no known low-res pixel
    # carries the placeholder values under the hole; one partly outside the source is no source.
    hole_lo = F.interpolate(hf, size=(lh, lw), mode="area")[0, 0] > 0
    if bool(hole_lo.all()):
        hole_lo = F.interpolate(hf, size=(lh, lw), mode="area")[0, 0] > 0.5
    img_lo = placeholder(F.interpolate(img[None], size=(lh, lw), mode="area")[0], hole_lo)
    src_lo = None
    if src is not None:
        src_lo = F.interpolate(src[None, None].float(), size=(lh, lw), mode="area")[0, 0] >= 1 - 1e-6
    fill_lo = call(img_lo.contiguous(), hole_lo, src_lo, seed)
    up = F.interpolate(fill_lo[None], size=(h, w), mode="bicubic", align_corners=False)[0]
    known = img[:, ~hole]
    lo, hi = known.min(dim=1).values, known.max(dim=1).values
    up = torch.maximum(torch.minimum(up, hi[:, None, None]), lo[:, None, None])
    return torch.where(hole[None], up, img)


def regions(hole: np.ndarray) -> List[Box]:
    """Boxes ``(y0, y1, x0, x1)`` of the hole's regions: each connected component's bounding box
    grown by its margin and clipped to the image; boxes that overlap are merged (their union box,
    again until none overlap), so that every hole pixel lies in exactly one box and no box holds
    another region's hole."""
    from scipy import ndimage

    h, w = hole.shape
    labels, n = ndimage.label(hole, structure=np.ones((3, 3), bool))
    boxes: List[Box] = []
    for sl in ndimage.find_objects(labels):
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        m = max(MIN_MARGIN, int(MARGIN_FRACTION * max(y1 - y0, x1 - x0)))
        boxes.append((max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)))
    merged = True
    while merged:
        merged = False
        out: List[Box] = []
        for b in boxes:
            for j, o in enumerate(out):
                if b[0] < o[1] and o[0] < b[1] and b[2] < o[3] and o[2] < b[3]:
                    out[j] = (min(b[0], o[0]), max(b[1], o[1]), min(b[2], o[2]), max(b[3], o[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return sorted(boxes)
