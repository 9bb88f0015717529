"""``fastinpaint demo``: inpaint the photo that ships with fastinpaint and say where the result is."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Tuple

import numpy as np

import fastinpaint
from fastinpaint.cli._common import (MASK_THRESHOLD, check_device, open_image, reports_user_errors, save_atomic,
                                     seed_argument)
from fastinpaint.io import check_destination

#: The bundled photo and its mask (fastinpaint/data, see SOURCES.md there).
DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_NAME = "fastinpaint_demo.png"


def _before_after(out: Path) -> Path:
    return out.with_name(out.stem + "_before_after" + out.suffix)


def _free_names(out: Path) -> Tuple[Path, Path]:
    """``out`` and its before | after picture, or, where either name is taken, the first free pair
    ``STEM-2``, ``STEM-3``, ...: a second run (the README's first command, run again) succeeds, and
    a file of that name, the user's or an earlier run's, is never replaced."""
    result, n = out, 1
    while os.path.lexists(result) or os.path.lexists(_before_after(result)):
        n += 1
        result = out.with_name(f"{out.stem}-{n}{out.suffix}")
    return result, _before_after(result)


@reports_user_errors("fastinpaint")
def run(args: argparse.Namespace) -> int:
    """Writes the result and a before | after picture beside it, under the next free names (or
    those given, replaced, with ``--overwrite``)."""
    from PIL import Image

    check_device(args.device)
    image_path, mask_path = DATA / "astronaut.png", DATA / "astronaut_mask.png"
    out = Path(args.output)
    if out.is_dir():  # -o results/: the default name in it
        out = out / DEFAULT_NAME
    wanted = out
    out, side = (out, _before_after(out)) if args.overwrite else _free_names(out)
    for path in (out, side):  # before computing: a known extension, a folder that takes files
        check_destination(path, args.overwrite)
    img = open_image(image_path, "demo image")
    mask = np.asarray(open_image(mask_path, "demo mask").convert("L")) > MASK_THRESHOLD
    result = fastinpaint.inpaint(img, mask, seed=args.seed, device=args.device)
    # Side by side: the photo with its hole shown in magenta, and the result.
    before = np.asarray(img.convert("RGB")).copy()
    before[mask] = (255, 0, 255)
    pair = Image.new("RGB", (img.width * 2 + 8, img.height), (255, 255, 255))
    pair.paste(Image.fromarray(before), (0, 0))
    pair.paste(result.convert("RGB"), (img.width + 8, 0))
    # published by a step that fails if the name exists (a file made meanwhile is not replaced either)
    save_atomic(result, out, overwrite=args.overwrite)
    save_atomic(pair, side, overwrite=args.overwrite)
    print(f"inpainted the bundled photo {image_path.name} (NASA, public domain) with mask {mask_path.name}")
    kept = "" if out == wanted else f" ({wanted.name} or {_before_after(wanted).name} exists: kept, not replaced)"
    print(f"wrote {out.resolve()}{kept}")
    print(f"wrote {side.resolve()} (before | after)")
    return 0


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Adds ``demo`` to an ``argparse`` subparsers object."""
    d = subparsers.add_parser("demo", help="inpaint a photo that ships with fastinpaint and say where the result is")
    d.add_argument("-o", "--output", default=DEFAULT_NAME,
                   help=f"result path, or a folder for {DEFAULT_NAME} in it (default ./{DEFAULT_NAME}); the "
                        "before | after picture goes beside it as STEM_before_after.png. Where either name is "
                        "taken, the first free STEM-2, STEM-3, ... is used: no file is replaced")
    d.add_argument("--overwrite", action="store_true", help="replace the two files at -o instead of picking free names")
    d.add_argument("--seed", type=seed_argument, default=0, help="random seed, -2**62 to 2**62 - 1 (default 0)")
    d.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    d.set_defaults(func=run)
    return d
