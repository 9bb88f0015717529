"""``fastinpaint eval`` (also ``python -m fastinpaint.evaluate``): score inpainting methods with
:func:`fastinpaint.evaluate.evaluate` on an image folder with a mask folder or a generated mask set."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import fastinpaint

from fastinpaint.cli._common import (CliError, check_weights_file, draws_progress_bars, int_argument,
                                     reports_user_errors, say, standalone_main)
from fastinpaint.evaluate import BASELINES, InpaintFn, ReportWriteError, evaluate, images_without_masks, load_pairs
from fastinpaint.masks import parse_buckets


def resolve_methods(names: str, inpaint_fn: Optional[Callable], weights: Optional[str]) -> Dict[str, InpaintFn]:
    """``--method a,b`` and ``--weights`` as ``{name: fn(image, mask)}``: the baselines of
    :mod:`fastinpaint.evaluate` as they are, every other name through ``inpaint_fn(..., method=name)``.

    ``--weights PATH`` goes to the only learned method; ``NAME=PATH[,NAME=PATH]`` to the one named.
    """
    methods: Dict[str, InpaintFn] = {}
    listed = [n.strip() for n in names.split(",") if n.strip()]
    per_method: Dict[str, str] = {}
    if weights:
        learned = [n for n in listed if _takes_weights(n, inpaint_fn)]
        for item in weights.split(","):
            name, sep, path = item.partition("=")
            if sep and name.strip() in listed:
                per_method[name.strip()] = path
            elif len(learned) == 1:
                per_method[learned[0]] = item
            elif learned:
                raise CliError(f"--weights {item!r}: say which method it is for, e.g. --weights {learned[0]}={item}")
            else:
                raise CliError(f"--weights applies only to the learned methods ({_learned_methods()}), "
                               f"not to --method {names}")
        for name in per_method:
            if not _takes_weights(name, inpaint_fn):
                raise CliError(f"--weights applies only to the learned methods ({_learned_methods()}), not to {name}")
            if inpaint_fn is fastinpaint.inpaint:  # before any scoring
                check_weights_file(per_method[name])
    if inpaint_fn is fastinpaint.inpaint:  # before any work, naming the baselines too
        unknown = [n for n in listed if n not in BASELINES and n not in fastinpaint.available_methods()]
        if unknown:
            raise CliError(f"unknown method {unknown[0]!r}: available are {', '.join(fastinpaint.available_methods())} "
                           f"and the baselines {', '.join(sorted(BASELINES))}")
    for name in listed:
        if name in BASELINES:
            methods[name] = BASELINES[name]
        elif inpaint_fn is None:
            raise CliError(f"unknown method {name!r}: available here are the baselines {', '.join(sorted(BASELINES))}")
        else:
            kw = {"weights": per_method[name]} if name in per_method else {}
            methods[name] = functools.partial(inpaint_fn, method=name, **kw)
    if not methods:
        raise CliError("no method given")
    return methods


def _takes_weights(name: str, inpaint_fn: Optional[Callable]) -> bool:
    """Whether method ``name`` takes ``weights=`` (a learned method), by the dispatcher's own rule
    for method options; a name the dispatcher does not know counts as learned here (its own
    error comes when it is resolved)."""
    if name in BASELINES or inpaint_fn is None:
        return False
    if inpaint_fn is not fastinpaint.inpaint:  # another dispatcher: it decides
        return True
    from fastinpaint.inpaint import check_method_options

    try:
        check_method_options(name, {"weights": "-"})
    except TypeError:
        return False
    except ValueError:  # unknown method: reported when it is resolved
        return True
    return True


def _learned_methods() -> str:
    """The methods of :func:`fastinpaint.inpaint` that take weights, for messages."""
    return ", ".join(m for m in fastinpaint.available_methods() if _takes_weights(m, fastinpaint.inpaint))


# The library's errors are the user's here: a bad folder, an unreadable file, a method that needs
# a package not installed (OpenCV for telea), an unknown method name of the dispatcher.
@reports_user_errors("fastinpaint eval", ValueError, FileNotFoundError, ImportError, TypeError)
def run(args: argparse.Namespace, inpaint_fn: Optional[Callable]) -> int:
    if (args.masks is None) == (args.generate is None):
        raise CliError("give exactly one of --masks DIR and --generate N")
    for flag, path in (("--csv", args.csv), ("--per-image-csv", args.per_image_csv)):
        _check_report_destination(flag, path)
    methods = resolve_methods(args.method, inpaint_fn, args.weights)
    pairs = load_pairs(args.images, args.masks, generate=args.generate or 0, buckets=parse_buckets(args.bucket),
                       seed=args.seed, border=args.border, max_size=args.max_size, limit=args.limit)
    if not pairs:
        raise CliError("no (image, mask) pairs found")
    if args.masks is not None:  # the reverse, a mask with no image, is an error of match_pairs
        unscored = images_without_masks(args.images, args.masks)
        if unscored:
            names = ", ".join(str(p.relative_to(args.images)) for p in unscored[:5]) + (", …" if len(unscored) > 5 else "")
            say(f"fastinpaint eval: note: {len(unscored)} image(s) have no mask and are not scored: {names}")
    try:
        evaluate(methods, pairs, csv_path=args.csv, per_image_csv=args.per_image_csv, print_table=True,
                 progress=not args.quiet and draws_progress_bars())
    except BrokenPipeError:  # the table's reader went away (`| head`): fastinpaint.cli.main's
        raise
    except ReportWriteError as exc:  # the reports' folder changed under us, or a full disk: one line
        raise CliError(str(exc)) from None
    except OSError as exc:  # a file a method or a pair needed while scoring (not a report)
        where = f" {exc.filename}" if exc.filename else ""
        raise CliError(f"evaluation failed:{where} {exc.strerror or exc}") from None
    written = [f"summary written to {args.csv}"] if args.csv else []
    if args.per_image_csv:
        written.append(f"per-image scores written to {args.per_image_csv}")
    if written:
        print("; ".join(written))
    return 0


def _check_report_destination(flag: str, path: Optional[str]) -> None:
    """A report's path, checked before any scoring (it used to fail after it, with a traceback)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise CliError(f"{flag} {path} is a directory; give a file name")
    if target.suffix.lower() != ".csv":  # rep.json got CSV, silently
        raise CliError(f"{flag} {path}: the report is CSV; give a file name ending in .csv")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"{flag} {path}: folder {parent} is not writable")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True,
                   help="method name, or several separated by commas (telea, telea5, pypatchmatch, mean, and every method of "
                        "fastinpaint.inpaint, e.g. patchmatch, pconv)")
    p.add_argument("--weights", default=None,
                   help="weights file for the learned method (passed as weights=PATH); with several learned "
                        "methods, NAME=PATH[,NAME=PATH]")
    p.add_argument("--images", required=True, help="folder of images (recursive)")
    p.add_argument("--masks", default=None,
                   help="folder of masks (grey > 127 = hole), matched by file name or by its manifest.csv "
                        "(image,mask columns)")
    p.add_argument("--generate", type=_positive_int, default=None, metavar="N",
                   help="instead of --masks: N generated masks per image (N >= 1)")
    p.add_argument("--bucket", default="all", help="buckets for --generate: LO-HI, several separated by ';', or 'all'")
    p.add_argument("--border", action="store_true", help="generated masks keep away from the border")
    p.add_argument("--seed", type=int, default=0, help="seed for --generate (default 0)")
    p.add_argument("--max-size", type=int, default=None, help="downscale images whose longer side exceeds this")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="score only the first N pairs (N >= 1)")
    p.add_argument("--csv", default=None, help="write the summary table here (a report: replaced if it exists)")
    p.add_argument("--per-image-csv", default=None,
                   help="write one row per image and method here (replaced if it exists)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal)")


def _positive_int(text: str) -> int:
    value = int_argument(text)
    if value < 1:  # 0 would score every pair, a negative number silently drop the last ones
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_subcommand(subparsers, inpaint_fn: Optional[Callable] = None) -> argparse.ArgumentParser:
    """Adds ``eval`` to an ``argparse`` subparsers object; the handler is ``args.func(args) -> int``.

    Args:
        subparsers: from ``parser.add_subparsers()``.
        inpaint_fn: the generic dispatcher ``fastinpaint.inpaint(image, mask, method=..., **kw)``;
            methods other than the baselines of :mod:`fastinpaint.evaluate` (``telea``, ``telea5``, ``pypatchmatch``, ``mean``)
            are called through it (``--weights`` is passed as ``weights=``). None: baselines only.

    Example:
        >>> import argparse, fastinpaint
        >>> from fastinpaint.cli.eval import add_subcommand
        >>> parser = argparse.ArgumentParser(prog="fastinpaint")
        >>> add_subcommand(parser.add_subparsers(dest="command"), fastinpaint.inpaint)  # doctest: +ELLIPSIS
        ArgumentParser(...)
        >>> args = parser.parse_args(["eval", "--method", "mean,biharmonic", "--images", "photos", "--generate", "1"])
        >>> args.method, args.generate, args.bucket
        ('mean,biharmonic', 1, 'all')
    """
    p = subparsers.add_parser("eval", help="score methods: PSNR/SSIM/L1/sharpness/SWD per hole-ratio bucket",
                              description="Score inpainting methods on an image folder with a mask folder or a "
                                          "generated mask set: PSNR, SSIM and L1 on the composite image, and "
                                          "sharpness and SWD (texture, inside the hole; the table shows SWD x1000), "
                                          "overall and per hole-ratio bucket.")
    add_arguments(p)
    p.set_defaults(func=functools.partial(run, inpaint_fn=inpaint_fn))
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fastinpaint.evaluate ...``: the ``eval`` subcommand on its own."""
    return standalone_main("python -m fastinpaint.evaluate", "Score inpainting methods.", add_arguments,
                           functools.partial(run, inpaint_fn=fastinpaint.inpaint), argv)
