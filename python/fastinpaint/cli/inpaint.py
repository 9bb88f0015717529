"""``fastinpaint inpaint``: fill the masked region of an image, or of every image in a folder.

    fastinpaint inpaint IMAGE [MASK] -o OUT [--method patchmatch] [--seed N] [--device cpu|cuda]
    fastinpaint inpaint --images DIR --masks DIR --out DIR [...]

Outputs are written atomically (:func:`~fastinpaint.cli._common.save_atomic`) and never replace
an existing file unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

import fastinpaint
from fastinpaint.cli._common import (IMAGE_SUFFIXES, MASK_THRESHOLD, CliError, open_image, reports_user_errors,
                                     save_atomic)


def _mask_from_file(path: Path, size: Tuple[int, int], invert: bool) -> np.ndarray:
    """(H, W) bool hole mask: grey value > 127 is a hole (anti-aliased / JPEG masks welcome)."""
    m = open_image(path, "mask")
    if m.size != size:
        raise CliError(
            f"mask size {m.size[0]}x{m.size[1]} differs from image size {size[0]}x{size[1]} (mask {path})"
        )
    if m.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(m).astype(np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        hole = arr > (MASK_THRESHOLD if hi <= 255 else hi / 2)
    else:
        if m.mode in ("RGBA", "LA", "PA") or (m.mode == "P" and "transparency" in m.info):
            m = m.convert("RGBA").convert("RGB")
        hole = np.asarray(m.convert("L")) > MASK_THRESHOLD
    return ~hole if invert else hole


def _mask_from_alpha(img, path: Path, invert: bool) -> np.ndarray:
    bands = img.getbands()
    if "A" not in bands and not (img.mode == "P" and "transparency" in img.info):
        raise CliError(
            f"no MASK given and image {path} has no alpha channel; pass a mask file (non-zero/white = hole)"
        )
    alpha = np.asarray(img.convert("RGBA").getchannel("A"))
    hole = alpha <= MASK_THRESHOLD  # transparent = hole
    return ~hole if invert else hole


def _inpaint_file(image_path: Path, mask_path: Optional[Path], out: Path, args) -> str:
    """Returns a short status ("ok", "empty mask: copied")."""
    if out.exists() and not args.overwrite:
        raise CliError(f"output {out} already exists; pass --overwrite to replace it")
    img = open_image(image_path, "image")
    alpha_mask = mask_path is None
    hole = _mask_from_alpha(img, image_path, args.invert_mask) if alpha_mask else _mask_from_file(
        mask_path, img.size, args.invert_mask
    )
    if not hole.any():
        warnings.warn(f"mask for {image_path} is empty: nothing to fill, writing the image unchanged")
        save_atomic(img, out, args.overwrite)
        return "empty mask: copied"
    if hole.all():
        raise CliError(
            f"the mask covers the whole image {image_path}: there are no known pixels to copy from "
            "(white/non-zero = hole; use --invert-mask for masks where white = keep)"
        )
    kwargs = {}
    if args.patch_size is not None:
        kwargs["patch_size"] = args.patch_size
    if args.weights is not None:
        kwargs["weights"] = args.weights
    if args.blend is not None:
        kwargs["blend"] = args.blend
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the empty-mask warning was handled above
            result = fastinpaint.inpaint(img, hole, method=args.method, seed=args.seed, device=args.device, **kwargs)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as exc:  # bad weights file included
        raise CliError(f"{image_path}: {exc}") from exc
    if alpha_mask and "A" in result.getbands():
        # The holes were transparent; now they hold colour, so make them opaque.
        a = np.asarray(result.getchannel("A")).copy()
        a[hole] = 255
        from PIL import Image

        result.putalpha(Image.fromarray(a, mode="L"))
    save_atomic(result, out, args.overwrite)
    return "ok"


def _find_mask(masks_dir: Path, image_path: Path) -> Optional[Path]:
    exact = masks_dir / image_path.name
    if exact.is_file():
        return exact
    for cand in sorted(masks_dir.iterdir()):
        if cand.is_file() and cand.stem == image_path.stem and cand.suffix.lower() in IMAGE_SUFFIXES:
            return cand
    return None


@reports_user_errors("fastinpaint")
def run(args: argparse.Namespace) -> int:
    """The ``inpaint`` subcommand: one image, or a folder (batch mode)."""
    batch = args.images is not None or args.masks is not None or args.out is not None
    if batch:
        if args.image is not None or args.mask is not None or args.output is not None:
            raise CliError("use either IMAGE [MASK] -o OUT, or --images DIR --masks DIR --out DIR, not both")
        if args.images is None or args.out is None:
            raise CliError("batch mode needs --images DIR and --out DIR (and --masks DIR unless images have alpha)")
        return _run_batch(args)
    if args.image is None:
        raise CliError("give IMAGE [MASK] -o OUT, or --images DIR --masks DIR --out DIR")
    if args.output is None:
        raise CliError("give the output path with -o OUT")
    out = Path(args.output)
    status = _inpaint_file(Path(args.image), Path(args.mask) if args.mask else None, out, args)
    print(f"{status}: wrote {out}" if status == "ok" else f"{status} -> {out}")
    return 0


def _run_batch(args) -> int:
    from tqdm import tqdm

    images_dir, out_dir = Path(args.images), Path(args.out)
    masks_dir = Path(args.masks) if args.masks else None
    for d, what in ((images_dir, "--images"), (masks_dir, "--masks")):
        if d is not None and not d.is_dir():
            raise CliError(f"{what} folder not found: {d}")
    out_dir.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise CliError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    # Under torchrun (or any launcher setting RANK / WORLD_SIZE) each process takes every
    # WORLD_SIZE-th file of the sorted list: every file is written exactly once, by one process,
    # with no communication between them (so it also spans nodes sharing the output folder).
    rank, world = _rank_and_world()
    if world > 1 and args.device == "cuda":  # one GPU per local process, as torchrun intends
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    total = len(images)
    images = images[rank::world]
    failures: List[str] = []
    for image_path in tqdm(images, desc="inpainting" if world == 1 else f"inpainting [rank {rank}/{world}]",
                           unit="image", position=rank if world > 1 else None):
        try:
            mask_path = None
            if masks_dir is not None:
                mask_path = _find_mask(masks_dir, image_path)
                if mask_path is None:
                    raise CliError(f"no mask named like {image_path.name} in {masks_dir}")
            _inpaint_file(image_path, mask_path, out_dir / image_path.name, args)
        except CliError as exc:
            # one bad pair does not stop the batch: it is reported, and the exit status says so
            failures.append(str(exc))
            tqdm.write(f"error: {exc}", file=sys.stderr)
    done = len(images) - len(failures)
    share = "" if world == 1 else f" (rank {rank} of {world}: its share of {total})"
    print(f"wrote {done} of {len(images)} images to {out_dir}{share}")
    return 1 if failures else 0


def _rank_and_world() -> Tuple[int, int]:
    """This process's share of a batch: (RANK, WORLD_SIZE) from torchrun's environment, else (0, 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError as exc:
        raise CliError(f"RANK / WORLD_SIZE must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise CliError(f"invalid RANK={rank} for WORLD_SIZE={world}")
    return rank, world


def add_subcommand(subparsers, methods: List[str]) -> argparse.ArgumentParser:
    """Adds ``inpaint`` to an ``argparse`` subparsers object; ``methods``: the ``--method`` choices."""
    p = subparsers.add_parser(
        "inpaint",
        help="fill the masked region of an image (or of every image in a folder)",
        description=(
            "Fill the masked region of an image. Mask: a single-channel image of the same size, "
            f"white/non-zero = hole. Grey values are thresholded at {MASK_THRESHOLD} (> {MASK_THRESHOLD} = hole), "
            "so anti-aliased and JPEG masks work. Without MASK, an image with an alpha channel uses it: "
            f"transparent (alpha <= {MASK_THRESHOLD}) = hole. Outputs are written atomically and never "
            "overwrite an existing file unless --overwrite."
        ),
    )
    p.add_argument("image", nargs="?", help="input image")
    p.add_argument("mask", nargs="?", help=f"mask image: white (> {MASK_THRESHOLD}) = hole; omit to use the image's alpha")
    p.add_argument("-o", "--output", help="output image path (format from its extension)")
    p.add_argument("--images", help="batch mode: folder of input images")
    p.add_argument("--masks", help="batch mode: folder of masks, matched to images by file name")
    p.add_argument("--out", help="batch mode: output folder (created if missing)")
    p.add_argument("--invert-mask", action="store_true", help="masks mark the pixels to KEEP (white = valid)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--patch-size", type=int, default=None, help="patch side for patch-based methods (odd)")
    p.add_argument("--weights", default=None, help="weights of a learned method (--method pconv/glcic): a checkpoint path "
                        "(default: the compact weights bundled with fastinpaint)")
    p.add_argument("--blend", choices=["none", "poisson"], default=None,
                   help="--method glcic: Poisson-blend the filled region into the image (the paper's post-processing)")
    p.add_argument("--method", default="patchmatch", choices=methods, help="inpainting method (default: patchmatch)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same result")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    p.set_defaults(func=run)
    return p
