"""``fastinpaint inpaint``: fill the masked region of an image, or of every image in a folder.

    fastinpaint inpaint IMAGE [MASK] -o OUT [--method patchmatch] [--seed N] [--device cpu|cuda]
    fastinpaint inpaint --images DIR --masks DIR --out DIR [...]

Files are read and written by :mod:`fastinpaint.io` (the mask rule is documented there). The
destination is checked before computing; outputs are published atomically and never replace an
existing file unless ``--overwrite`` (two processes writing one path: exactly one succeeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

import fastinpaint
from fastinpaint.hd import SIZED_STRATEGIES
from fastinpaint.hd import check_options as check_hd_options
from fastinpaint.inpaint import check_method_options
from fastinpaint.methods.patchmatch import PATCH_SIZES, check_method_patch_size
from fastinpaint.cli._common import (IMAGE_SUFFIXES, MASK_THRESHOLD, CliError, check_device, check_weights_file,
                                     draws_progress_bars, int_argument, is_image_file, reports_user_errors, say,
                                     seed_argument)
from fastinpaint.io import (ImageIOError, OutputExistsError, Picture, check_destination, check_encodable,
                            check_output_folder, grow_hole, alpha_hole, read_image, read_mask, write_image)


def _alpha_hole(pic: Picture, path: Path, invert: bool, dilate: int, no_mask: str) -> np.ndarray:
    """The hole of an image given no mask file (``no_mask`` says why, for the error): its alpha."""
    hole = alpha_hole(pic.pixels)
    if hole is None:
        raise CliError(f"{no_mask} and image {path} has no alpha channel; pass a mask file (white = hole)")
    return grow_hole(~hole if invert else hole, dilate)


def _inpaint_file(image_path: Path, mask_path: Optional[Path], out: Path, args, no_mask: str = "no MASK given",
                  looked_for: bool = False) -> str:
    """Returns a short status ("ok", "empty mask: copied", "skipped: exists"). Without
    ``mask_path`` the image's alpha is the mask; ``no_mask`` says why there is no mask file, in the
    error when there is no alpha either, and in a note when the alpha stands in for a mask file that
    was ``looked_for`` (batch mode with --masks)."""
    if args.skip_existing and os.path.lexists(out):
        return "skipped: exists"
    check_destination(out, args.overwrite)  # before any computing
    pic = read_image(image_path, "image")
    check_encodable(pic.pixels, out, source=pic, quality=args.quality)  # the format takes it: before computing
    for note in pic.notes:
        say(f"note: {image_path}: {note}")
    alpha_mask = mask_path is None
    if alpha_mask:
        hole = _alpha_hole(pic, image_path, args.invert_mask, args.dilate, no_mask)
        if looked_for:
            say(f"note: {image_path}: {no_mask}: its alpha channel is the mask (transparent = hole)")
    else:
        try:
            hole = read_mask(mask_path, pic.size, invert=args.invert_mask, dilate=args.dilate)
        except ImageIOError as exc:  # named after the mask; a batch pairs a.jpg with a.png's mask too
            raise CliError(f"{image_path}: {exc}") from None
    # The pixels that may be copied: the same file rule as masks (white = may copy), not inverted or
    # grown (those flags are about the hole)
    source = None if args.source_mask is None else read_mask(Path(args.source_mask), pic.size)
    write = functools.partial(write_image, out=out, overwrite=args.overwrite, source=pic, quality=args.quality)
    if not hole.any():
        warnings.warn(f"mask for {image_path} is empty: nothing to fill, writing the image unchanged")
        write(pic.pixels)
        return "empty mask: copied"
    if hole.all():
        if args.dilate:  # the grown hole covers it: the flag is the cause, whatever the mask
            raise CliError(f"--dilate {args.dilate} grows the hole over the whole image {image_path} "
                           f"({pic.size[0]}x{pic.size[1]}): there are no known pixels left to copy from")
        raise CliError(
            f"the mask covers the whole image {image_path}: there are no known pixels to copy from "
            "(white = hole; use --invert-mask for masks where white = keep)"
        )
    kwargs = _method_options(args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the empty-mask warning was handled above
            result = fastinpaint.inpaint(pic.pixels, hole, method=args.method, seed=args.seed, device=args.device,
                                         hd_strategy=args.hd_strategy, hd_size=args.hd_size, source_mask=source,
                                         **kwargs)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as exc:  # bad weights file included
        raise CliError(f"{image_path}: {exc}") from exc
    if alpha_mask:
        # The holes were transparent; now they hold colour, so make them opaque.
        result = result.copy()
        result[hole, -1] = np.iinfo(result.dtype).max if result.dtype.kind in "ui" else 1
    write(result)
    return "ok"


def _method_options(args) -> dict:
    """The method options the command line sets (only those given: each applies to some methods)."""
    # --blend none is every method's behaviour: a script may pass it whatever the method
    blend = None if args.blend == "none" else args.blend
    given = {"patch_size": args.patch_size, "weights": args.weights, "blend": blend}
    return {name: value for name, value in given.items() if value is not None}


def _check_method_options(args) -> None:
    """An option the method does not take (``--method biharmonic --patch-size 9``) is a usage
    error found once, before any file is read, by the API's own rule."""
    for name, value in _method_options(args).items():  # one at a time, to name its flag
        try:
            check_method_options(args.method, {name: value})
        except TypeError as exc:
            flag = "--" + name.replace("_", "-")
            raise CliError(f"{flag} does not apply to --method {args.method}: {exc}") from None
    if args.weights is not None:  # once, not once per file of a batch
        check_weights_file(args.weights)


class _MaskFolder:
    """The --masks folder of a batch, listed once (it was listed and sorted again for every image).
    An image's mask is the file of its name, else the first by name of the image files of its stem
    (``photo.png`` for ``photo.jpg``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.by_stem: Dict[str, List[Path]] = {}
        for path in sorted(folder.iterdir()):
            if is_image_file(path):
                self.by_stem.setdefault(path.stem, []).append(path)

    def find(self, image: Path) -> Tuple[Optional[Path], Optional[str]]:
        """The mask of ``image`` (None: there is none), and a note saying which was used when
        several of its stem (and none of its name) were there to choose from."""
        exact = self.folder / image.name
        if exact.is_file():
            return exact, None
        found = self.by_stem.get(image.stem, [])
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            return found[0], f"{len(found)} masks named {image.stem}.* in {self.folder} ({names}): used {found[0].name}"
        return (found[0] if found else None), None


@reports_user_errors("fastinpaint")
def run(args: argparse.Namespace) -> int:
    """The ``inpaint`` subcommand: one image, or a folder (batch mode)."""
    _check_method_options(args)
    try:
        check_hd_options(args.hd_strategy, args.hd_size)  # the API's rule (argparse checked the rest)
    except ValueError:
        raise CliError(f"--hd-size has no effect with --hd-strategy {args.hd_strategy}: it is the working size "
                       f"of {' and '.join(SIZED_STRATEGIES)} only") from None
    batch = args.images is not None or args.masks is not None or args.out is not None
    if batch:
        if args.image is not None or args.mask is not None or args.output is not None:
            raise CliError("use either IMAGE [MASK] -o OUT, or --images DIR --masks DIR --out DIR, not both")
        if args.images is None or args.out is None:
            raise CliError("batch mode needs --images DIR and --out DIR (and --masks DIR unless images have alpha)")
        if args.skip_existing and args.overwrite:
            raise CliError("--skip-existing and --overwrite contradict each other; pass one")
        if args.source_mask is not None:
            raise CliError("--source-mask is for one IMAGE (a file of that image's size); batch mode has none")
        return _run_batch(args)
    if args.image is None:
        raise CliError("give IMAGE [MASK] -o OUT, or --images DIR --masks DIR --out DIR")
    if args.output is None:
        raise CliError("give the output path with -o OUT")
    out = Path(args.output)
    if args.skip_existing and args.overwrite:
        raise CliError("--skip-existing and --overwrite contradict each other; pass one")
    check_device(args.device)
    rank, world = _rank_and_world()
    if rank > 0:  # under torchrun every rank runs the command: one writes the one output
        say(f"fastinpaint: note: rank {rank} of {world}: one IMAGE is inpainted by rank 0 only")
        return 0
    status = _inpaint_file(Path(args.image), Path(args.mask) if args.mask else None, out, args)
    print(f"{status}: wrote {out}" if status == "ok" else f"{status} -> {out}")
    return 0


def _run_batch(args) -> int:
    images_dir, out_dir = Path(args.images), Path(args.out)
    masks_dir = Path(args.masks) if args.masks else None
    for d, what in ((images_dir, "--images"), (masks_dir, "--masks")):
        if d is not None and not d.is_dir():
            if d.exists():  # a file: batch mode pairs a folder of images with a folder of masks
                raise CliError(f"{what} must be a folder, got a file: {d} (for one image: "
                               "fastinpaint inpaint IMAGE [MASK] -o OUT)")
            raise CliError(f"{what} folder not found: {d}")
    # The outputs have the inputs' names: written into the --images folder, the next run takes them as
    # inputs; a --masks folder that is the --images folder makes each image its own mask
    for (d, what), (other, other_what) in (((masks_dir, "--masks"), (images_dir, "--images")),
                                           ((out_dir, "--out"), (images_dir, "--images")),
                                           ((out_dir, "--out"), (masks_dir, "--masks"))):
        if d is not None and other is not None and _same_folder(d, other):
            raise CliError(f"{what} {d} is the {other_what} folder {other}: give {what} a folder of its own")
    # Under torchrun (or any launcher setting RANK / WORLD_SIZE) each process takes every
    # WORLD_SIZE-th file of the sorted list: every file is written exactly once, by one process,
    # with no communication (so it also spans nodes sharing the output folder) until the end,
    # where torchrun's processes wait for each other (_wait_for_the_other_ranks).
    rank, world = _rank_and_world()
    if world > 1 and args.device == "cuda":  # one GPU per local process, as torchrun intends
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    check_device(args.device)
    entries = list(images_dir.iterdir())
    images = sorted(p for p in entries if is_image_file(p))
    # Only the folder's own files are read; its subfolders (hidden ones aside, as hidden files) are
    # said to be left, or a folder of dated subfolders looked like an empty folder
    subfolders = sum(1 for p in entries if p.is_dir() and not p.name.startswith("."))
    unsearched = f"{subfolders} subfolder{'s' if subfolders > 1 else ''}"
    if not images:
        raise CliError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}"
                       + (f" ({unsearched} not searched: pass one as --images)" if subfolders else ""))
    masks = None if masks_dir is None else _MaskFolder(masks_dir)
    # Made only when there is work; checked once (a folder that takes no file was an error per file)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    check_output_folder(out_dir)
    if subfolders and rank == 0:  # once, not once per process
        say(f"note: {unsearched} of {images_dir} not searched: batch mode reads the folder's own image files")
    total = len(images)
    images = images[rank::world]
    tally = _inpaint_share(images, masks, masks_dir, out_dir, args, rank, world)
    share = "" if world == 1 else f" (rank {rank} of {world}: its share of {total})"
    if tally.interrupted:  # Ctrl-C (torchrun passes it to every rank): how far it got, how to finish
        instead = " instead of --overwrite" if args.overwrite else ""
        say(f"fastinpaint: interrupted after writing {tally.written} of {len(images)} images to {out_dir}{share}; "
            f"re-run with --skip-existing{instead} to finish")
        return 130
    print(tally.summary(len(images), out_dir) + share, flush=True)
    if world > 1:
        try:
            _wait_for_the_other_ranks(tally, rank, world, total, out_dir)
        except KeyboardInterrupt:
            say(f"fastinpaint: interrupted while rank {rank} waited for the other processes (its share is done); "
                "re-run with --skip-existing to finish theirs")
            return 130
    return 1 if tally.failed else 0


@dataclasses.dataclass
class _Tally:
    """What a batch (or one process's share of it) did, file by file."""
    written: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False

    def summary(self, of: int, out_dir: Path) -> str:
        """``wrote W of N images to OUT, skipped S existing, F failed`` (those two only when not zero)."""
        return (f"wrote {self.written} of {of} images to {out_dir}"
                + (f", skipped {self.skipped} existing" if self.skipped else "")
                + (f", {self.failed} failed" if self.failed else ""))


def _inpaint_share(images: List[Path], masks: Optional[_MaskFolder], masks_dir: Optional[Path], out_dir: Path,
                   args, rank: int, world: int) -> _Tally:
    """Inpaints ``images`` into ``out_dir``: a failed file is reported and counted, and the rest go
    on; Ctrl-C stops it, counted as ``interrupted``."""
    from tqdm import tqdm

    tally = _Tally()
    bar = tqdm(images, desc="inpainting" if world == 1 else f"inpainting [rank {rank}/{world}]", unit="image",
               position=rank if world > 1 else None, disable=not draws_progress_bars())
    with bar:  # closed before the summary, also on Ctrl-C
        try:
            for image_path in bar:
                _inpaint_one(image_path, masks, masks_dir, out_dir, args, tally)
        except KeyboardInterrupt:
            tally.interrupted = True
    return tally


def _inpaint_one(image_path: Path, masks: Optional[_MaskFolder], masks_dir: Optional[Path], out_dir: Path, args,
                 tally: _Tally) -> None:
    try:
        mask_path, which = (None, None) if masks is None else masks.find(image_path)
        if which:
            say(f"note: {image_path}: {which}")
        # no mask file for it: its alpha, if it has one, as for one IMAGE given without MASK
        no_mask = "no --masks folder" if masks is None else f"no mask named like {image_path.name} in {masks_dir}"
        status = _inpaint_file(image_path, mask_path, out_dir / image_path.name, args, no_mask,
                               looked_for=masks is not None)
        if status.startswith("skipped"):
            tally.skipped += 1
        else:
            tally.written += 1
    except OutputExistsError as exc:
        if not args.skip_existing:
            tally.failed += 1
            say(f"error: {exc}")
        else:  # another run (a second batch into the same folder) wrote it meanwhile: done once
            tally.skipped += 1
    except (CliError, ImageIOError) as exc:
        # one bad pair does not stop the batch: it is reported, and the exit status says so
        tally.failed += 1
        say(f"error: {exc}")


#: How long a process that has done its share of a batch waits for the others to finish theirs. A
#: process that dies makes torchrun stop the rest, so this bounds only a hang; the shares of a long
#: batch may end hours apart (30 minutes, torch's default, would end the wait with an error).
_WAIT_FOR_RANKS = datetime.timedelta(days=7)


def _wait_for_the_other_ranks(tally: _Tally, rank: int, world: int, total: int, out_dir: Path) -> None:
    """Under torchrun, waits until every process has done its share, and has rank 0 print the
    summary of the whole batch (``total`` images).

    Why: torchrun stops every process as soon as one exits with an error, so a process whose share
    had a failed file and ended first made the others leave theirs unwritten. A process started
    with RANK / WORLD_SIZE but not by torchrun (no MASTER_ADDR / MASTER_PORT: shares run one after
    another, or on machines that only share the folder) waits for nothing.
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not (dist.is_initialized() or
                                       (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT"))):
        return
    try:
        joined = not dist.is_initialized()
        if joined:  # gloo: on the CPU, whatever the --device (a few integers to add up)
            _answering_ctrl_c(dist.init_process_group, "gloo", timeout=_WAIT_FOR_RANKS)
        counts = torch.tensor([tally.written, tally.skipped, tally.failed], dtype=torch.int64)
        _answering_ctrl_c(dist.all_reduce, counts)  # returns once every process has added its counts
        if joined:
            # Every share is done: when a process with a failed file exits first with status 1,
            # torchrun sends the others SIGTERM; they finish exiting with their own status instead
            # of being reported as killed
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if rank == 0:
            print(f"all {world} processes: " + _Tally(*counts.tolist()).summary(total, out_dir), flush=True)
        _answering_ctrl_c(dist.barrier)  # no process exits (torchrun stopping the rest) before rank 0 printed
        if joined:
            dist.destroy_process_group()
    except (RuntimeError, ValueError, OSError) as exc:  # this share is done: its own status stands
        say(f"fastinpaint: warning: rank {rank} could not wait for the other processes: {exc}")


def _answering_ctrl_c(call, *args, **kwargs):
    """``call(*args, **kwargs)`` in a thread of its own, the main thread waiting for it in short
    steps. torch.distributed waits in C++, which holds off Python's Ctrl-C until it returns: a
    process waiting for one that Ctrl-C had stopped waited for torchrun's SIGKILL, 30 s later."""
    outcome = {}

    def run_call():
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - handed to the main thread, raised there
            outcome["error"] = exc

    thread = threading.Thread(target=run_call, name=f"fastinpaint {call.__name__}", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # a Ctrl-C raises KeyboardInterrupt here
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _same_folder(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one folder, however spelled (a symlink, ``..``, a trailing ``/.``)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)  # also a bind mount of it
    return a.resolve() == b.resolve()


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
            "Fill the masked region of an image. Mask: an image of the same (displayed) size, "
            f"converted to grey and thresholded at {MASK_THRESHOLD} (grey > {MASK_THRESHOLD} = hole), "
            "so anti-aliased and JPEG masks work. Without MASK, an image with an alpha channel uses it: "
            f"transparent (alpha <= {MASK_THRESHOLD}) = hole. Outputs are written atomically and never "
            "overwrite an existing file unless --overwrite."
        ),
    )
    p.add_argument("image", nargs="?", help="input image")
    p.add_argument("mask", nargs="?", help=f"mask image: white (> {MASK_THRESHOLD}) = hole; omit to use the image's alpha")
    p.add_argument("-o", "--output", help="output image path (format from its extension)")
    p.add_argument("--images", help="batch mode: folder of input images")
    p.add_argument("--masks", help="batch mode: folder of masks, matched to images by file name, else by stem "
                                    "(photo.png for photo.jpg); an image without one uses its alpha channel, as "
                                    "without MASK")
    p.add_argument("--out", help="batch mode: output folder, not --images or --masks (created if missing)")
    p.add_argument("--invert-mask", action="store_true", help="masks mark the pixels to KEEP (white = valid)")
    p.add_argument("--source-mask", metavar="FILE",
                   help=f"one IMAGE only: where fill may be copied from, white (> {MASK_THRESHOLD}) = may copy "
                        "(default: every known pixel); a same-size image, read by the mask rule")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave existing output files alone and skip their inputs (re-running a batch)")
    p.add_argument("--dilate", type=_non_negative, default=0, metavar="PX",
                   help="grow the hole by PX pixels (every pixel within PX of it), over anti-aliased edges and "
                        "shadows (default 0)")
    p.add_argument("--quality", type=_quality, default=None,
                   help="JPEG/WebP output quality 1-100 (JPEG default: the input's, if it was a JPEG, else 95; "
                        "WebP default: lossless, a quality makes it lossy)")
    p.add_argument("--patch-size", type=_patch_size, default=None,
                   help=f"--method patchmatch: patch side, odd, {PATCH_SIZES[0]} to {PATCH_SIZES[1]} (default 7)")
    p.add_argument("--weights", default=None, help="weights of a learned method (--method pconv/glcic): a checkpoint path "
                        "(default: the compact weights bundled with fastinpaint)")
    p.add_argument("--blend", choices=["none", "poisson"], default=None,
                   help="--method glcic: Poisson-blend the filled region into the image (the paper's post-processing)")
    p.add_argument("--method", default="patchmatch", choices=methods, help="inpainting method (default: patchmatch)")
    p.add_argument("--hd-strategy", default="auto", choices=["auto", "original", "crop", "resize"],
                   help="large images: auto (default: each hole's region at a scale suited to the method), "
                        "original (whole image as is), crop (regions at full resolution), resize (whole image "
                        "at --hd-size)")
    p.add_argument("--hd-size", type=_hd_size, default=None, metavar="PX",
                   help="working long side for --hd-strategy resize/auto (default: the method's own)")
    p.add_argument("--seed", type=seed_argument, default=0,
                   help="random seed, -2**62 to 2**62 - 1 (default 0); same seed, same result")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    p.set_defaults(func=run)
    return p


def _non_negative(text: str) -> int:
    value = int_argument(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _patch_size(text: str) -> int:
    value = int_argument(text)
    try:
        return check_method_patch_size(value)  # the API's and the server's rule
    except ValueError:
        lo, hi = PATCH_SIZES
        raise argparse.ArgumentTypeError(f"must be an odd integer between {lo} and {hi}, got {value}") from None


def _hd_size(text: str) -> int:
    value = int_argument(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be at least 16 pixels, got {value}")
    return value


def _quality(text: str) -> int:
    value = int_argument(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {value}")
    return value


