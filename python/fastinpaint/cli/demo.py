"""``fastinpaint demo``: inpaint the photo that ships with fastinpaint and say where the result is."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fastinpaint
from fastinpaint.cli._common import MASK_THRESHOLD, open_image, reports_user_errors, save_atomic, seed_argument

#: The bundled photo and its mask (fastinpaint/data, see SOURCES.md there).
DATA = Path(__file__).resolve().parent.parent / "data"


@reports_user_errors("fastinpaint")
def run(args: argparse.Namespace) -> int:
    """Writes the result and a before | after picture beside it (both replaced if present)."""
    from PIL import Image

    image_path, mask_path = DATA / "astronaut.png", DATA / "astronaut_mask.png"
    out = Path(args.output)
    img = open_image(image_path, "demo image")
    mask = np.asarray(open_image(mask_path, "demo mask").convert("L")) > MASK_THRESHOLD
    result = fastinpaint.inpaint(img, mask, seed=args.seed, device=args.device)
    # Side by side: the photo with its hole shown in magenta, and the result.
    before = np.asarray(img.convert("RGB")).copy()
    before[mask] = (255, 0, 255)
    pair = Image.new("RGB", (img.width * 2 + 8, img.height), (255, 255, 255))
    pair.paste(Image.fromarray(before), (0, 0))
    pair.paste(result.convert("RGB"), (img.width + 8, 0))
    save_atomic(result, out, overwrite=True)
    side = out.with_name(out.stem + "_before_after" + out.suffix)
    save_atomic(pair, side, overwrite=True)
    print(f"inpainted the bundled photo {image_path.name} (NASA, public domain) with mask {mask_path.name}")
    print(f"wrote {out.resolve()}")
    print(f"wrote {side.resolve()} (before | after)")
    return 0


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Adds ``demo`` to an ``argparse`` subparsers object."""
    d = subparsers.add_parser("demo", help="inpaint a photo that ships with fastinpaint and say where the result is")
    d.add_argument("-o", "--output", default="fastinpaint_demo.png", help="result path (default ./fastinpaint_demo.png; replaced if present)")
    d.add_argument("--seed", type=seed_argument, default=0, help="random seed, -2**62 to 2**62 - 1 (default 0)")
    d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    d.set_defaults(func=run)
    return d
