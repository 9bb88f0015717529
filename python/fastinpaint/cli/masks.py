"""``fastinpaint masks`` (also ``python -m fastinpaint.masks``): write an irregular-mask test set
with :func:`fastinpaint.masks.write_mask_set`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from fastinpaint.cli._common import CliError, reports_user_errors, standalone_main
from fastinpaint.masks import parse_buckets, parse_size, write_mask_set, write_masks_for_images

DESCRIPTION = ("Write irregular hole masks (free-form strokes, ellipses, lines) whose hole ratio lies in a "
               "bucket, as PNGs (255 = hole) plus manifest.csv.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (PNG masks, 255 = hole, + manifest.csv)")
    p.add_argument("--count", type=int, required=True, help="number of masks (with --images: per image)")
    p.add_argument("--size", type=str, default=None, help="H or HxW (default 512; not with --images)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="write masks for the images of DIR instead, each of its image's size and named "
                        "IMAGE__BUCKET_J.png, so that `fastinpaint eval --images DIR --masks OUT` pairs them")
    p.add_argument("--bucket", type=str, default="0.1-0.2",
                   help="hole-ratio bucket LO-HI, e.g. 0.1-0.2 (ratio in (LO, HI]); several separated by ';', "
                        "or 'all' for the six protocol buckets in turn (default 0.1-0.2)")
    p.add_argument("--border", action="store_true", help="keep holes away from the image border")
    p.add_argument("--margin", type=int, default=None, help="border margin in pixels (default: shorter side / 32)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")


@reports_user_errors("fastinpaint masks", ValueError)
def run(args: argparse.Namespace) -> int:
    if args.margin is not None:  # checked before any mask is drawn
        if args.margin < 0:
            raise CliError(f"--margin must be >= 0 pixels, got {args.margin}")
        if not args.border:
            raise CliError("--margin is the border margin: it needs --border (else it has no effect)")
    if Path(args.out).exists() and not Path(args.out).is_dir():  # it was "[Errno 17] File exists"
        raise CliError(f"--out {args.out} is a file: --out must be a folder (the masks and manifest.csv go in it)")
    options = dict(seed=args.seed, border=args.border, overwrite=args.overwrite, margin=args.margin)
    try:
        if args.images is not None:
            if args.size is not None:
                raise CliError("--size and --images contradict each other: with --images each mask has its image's size")
            paths = write_masks_for_images(args.out, args.images, args.count, parse_buckets(args.bucket), **options)
        else:
            paths = write_mask_set(args.out, args.count, parse_size(args.size or "512"), parse_buckets(args.bucket),
                                   **options)
    except FileExistsError as exc:  # the API names its argument; a command line user needs the flag
        raise CliError(str(exc).replace("overwrite=True", "--overwrite")) from None
    for_images = f" for the images of {args.images}" if args.images is not None else ""
    print(f"wrote {len(paths)} masks to {args.out}{for_images} (manifest.csv)")
    return 0


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Adds ``masks`` to an ``argparse`` subparsers object; the handler is ``args.func(args) -> int``.

    Example:
        >>> import argparse
        >>> from fastinpaint.cli.masks import add_subcommand
        >>> parser = argparse.ArgumentParser(prog="fastinpaint")
        >>> add_subcommand(parser.add_subparsers(dest="command"))  # doctest: +ELLIPSIS
        ArgumentParser(...)
        >>> args = parser.parse_args(["masks", "--out", "m", "--count", "3", "--size", "64"])
        >>> args.func(args)
        wrote 3 masks to m (manifest.csv)
        0
    """
    p = subparsers.add_parser("masks", help="write an irregular-mask test set (PNG, 255 = hole)",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fastinpaint.masks ...``: the ``masks`` subcommand on its own."""
    return standalone_main("python -m fastinpaint.masks", "Write an irregular-mask test set (PNG, 255 = hole).",
                           add_arguments, run, argv)
