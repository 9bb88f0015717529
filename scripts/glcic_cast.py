#!/usr/bin/env python
"""The bundled GLCIC's colour cast, stage by stage (docs/model_card_glcic.md, "Colour cast").

For each (photo, mask) pair: the mean fill colour minus the ground truth's over the hole, per
channel, in grey levels (:func:`fastinpaint.metrics.fill_mean_offset`), averaged over the pairs and
over the large holes (30-60 % and centre squares), for: the network at 256 px upsampled (no
correction); the first offset correction, which took the network's residual on the *known* pixels
(written out here: it is no longer in the package); the shipped fill; the biharmonic fill alone;
and the network's mean residual on the known pixels, at full size and at the network's size.

    python scripts/glcic_cast.py --photos astronaut,cold_pier,dahlia,moss        # held out, 512 px
    python scripts/glcic_cast.py --max-size 256                                  # all 16, 256 px
    python scripts/glcic_cast.py --photos moss --picture docs/images/glcic_cast.png  # the figure

``--picture`` draws the first ``center25`` pair: the photo, the raw network, the network's red
error on the known pixels, and the fill with the first and the current offset correction.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch

import fastinpaint
from fastinpaint import metrics
from fastinpaint.evaluate import load_pairs
from fastinpaint.methods import learned
from fastinpaint.methods.glcic import BLEND_FLOOR, BORDER_BLEND, NET_SIZE
from fastinpaint.smooth_fill import pushpull_fill
from fastinpaint.nn.glcic import GLCIC

DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
LARGE = ("irr_30_40", "irr_40_50", "irr_50_60", "center25")


def _known_residual_correction(x, h, pred):
    """The first offset correction: the residual on the known pixels, push-pulled into the hole."""
    known = ~h[0, 0]
    residual = torch.where(known, x[0] - pred[0], torch.zeros_like(pred[0]))
    return torch.where(h, pred + pushpull_fill(residual, known)[None], pred)


def _picture(p, net, path) -> None:
    from PIL import Image, ImageDraw

    img, mask = p.image, p.mask
    x = torch.from_numpy(np.where(mask[..., None], 0, img)).permute(2, 0, 1).float()[None] / 255
    h = torch.from_numpy(mask)[None, None]
    with learned.evaluating(net):
        pred = learned.at_net_size(x, h, NET_SIZE, lambda a, b: net(a, b.float()).clamp_(0, 1)).clone()
    ref = learned.border_reference(x, h)

    def u8(t):
        return np.where(mask[..., None], (t.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round(), img).astype(np.uint8)

    old = u8(learned.border_blend(x, h, _known_residual_correction(x, h, pred), BORDER_BLEND, BLEND_FLOOR, ref))
    new = u8(learned.border_blend(x, h, learned.offset_correct(x, h, pred, ref), BORDER_BLEND, BLEND_FLOOR, ref))
    red = np.clip((x - pred)[0, 0].numpy() * 255 / 60, -1, 1)  # image - network, red, +-60 levels
    err = np.zeros_like(img)
    err[..., 0], err[..., 2] = (np.clip(red, 0, 1) * 255).astype(np.uint8), (np.clip(-red, 0, 1) * 255).astype(np.uint8)
    err[mask] = 128
    cast = lambda a: "fill - truth: R %+.1f G %+.1f B %+.1f grey levels" % tuple(255 * metrics.fill_mean_offset(a, img, mask))
    panels = [(img, "ground truth", ""), (u8(pred), "raw network (256 px)", cast(u8(pred))),
              (err, "network's red error on the KNOWN pixels", "image - network: blue = network too red (60+ levels)"),
              (old, "first correction: offset from the known pixels", cast(old)),
              (new, "now: offset from the hole's first rings", cast(new))]
    hh, ww = mask.shape
    canvas = Image.new("RGB", (3 * ww, 2 * (hh + 36)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (a, title, sub) in enumerate(panels):
        ox, oy = (i % 3) * ww, (i // 3) * (hh + 36)
        canvas.paste(Image.fromarray(a), (ox, oy + 36))
        draw.text((ox + 4, oy + 2), title, fill="black")
        draw.text((ox + 4, oy + 18), sub, fill="black")
    draw.text((2 * ww + 8, hh + 56), f"{p.name}, {max(hh, ww)} px.\nThe network is trained on the hole only: its outputs\n"
              "on the known pixels say nothing about its error in the\nhole, yet the first correction added that residual\n"
              "to the hole. One pair says little about a cast: the\naverages over many pairs are in the model card.", fill="black")
    canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(DATA / "photos"))
    ap.add_argument("--masks", default=str(DATA / "masks"))
    ap.add_argument("--photos", default="", help="comma-separated photo names (default: all)")
    ap.add_argument("--max-size", type=int, default=None)
    ap.add_argument("--picture", default=None, help="write the figure of the first centre-square pair here")
    args = ap.parse_args()
    keep = set(filter(None, args.photos.split(",")))
    pairs = [p for p in load_pairs(args.images, args.masks, max_size=args.max_size)
             if not keep or p.name.split("/")[0] in keep]
    net = learned.network("glcic", None, GLCIC, GLCIC.load, torch.device("cpu"))
    stages: dict = {}
    for p in pairs:
        given = np.where(p.mask[..., None], 0, p.image)
        x = torch.from_numpy(given).permute(2, 0, 1).float()[None] / 255
        h = torch.from_numpy(p.mask)[None, None]
        with learned.evaluating(net):
            pred = learned.at_net_size(x, h, NET_SIZE, lambda a, b: net(a, b.float()).clamp_(0, 1)).clone()
        ref = learned.border_reference(x, h)
        old = learned.border_blend(x, h, _known_residual_correction(x, h, pred), BORDER_BLEND, BLEND_FLOOR, ref)
        fills = {"network at 256 px, no correction": pred,
                 "+ first offset correction (known-pixel residual)": _known_residual_correction(x, h, pred),
                 "  + border blend (the fill before issue 18's 2nd pass)": old,
                 "shipped (offset on the hole's first rings + blend)": None,
                 "biharmonic fill alone": ref.smooth}
        for name, fill in fills.items():
            out = (fastinpaint.inpaint(given, p.mask, method="glcic") if fill is None else
                   (fill.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            stages.setdefault(name, []).append((p.name, 255 * metrics.fill_mean_offset(out, p.image, p.mask)))
        known = ~h[0, 0]
        stages.setdefault("network's residual on the known pixels", []).append(
            (p.name, 255 * (x[0] - pred[0])[:, known].mean(1).numpy()))
    if args.picture:
        _picture(next(p for p in pairs if p.name.endswith("center25")), net, args.picture)
    print(f"{len(pairs)} pairs; grey levels R / G / B: all pairs | large holes (30-60 %, centre)")
    for name, rows in stages.items():
        a = np.mean([v for _, v in rows], 0)
        large = [v for n, v in rows if n.split("__")[-1] in LARGE]
        b = np.mean(large, 0) if large else np.full(3, np.nan)
        print(f"{name:<58} {a[0]:+6.1f} {a[1]:+6.1f} {a[2]:+6.1f} | {b[0]:+6.1f} {b[1]:+6.1f} {b[2]:+6.1f}")


if __name__ == "__main__":
    main()
