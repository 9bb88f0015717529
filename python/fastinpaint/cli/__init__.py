"""The ``fastinpaint`` command line: one entry point, one module per subcommand.

    fastinpaint inpaint IMAGE [MASK] -o OUT [--method patchmatch] [--seed N] [--device cpu|cuda]
    fastinpaint IMAGE [MASK] -o OUT [...]           (the same: an image file first implies inpaint)
    fastinpaint inpaint --images DIR --masks DIR --out DIR [...]
    fastinpaint demo [-o OUT]
    fastinpaint masks --out DIR --count N [...]
    fastinpaint eval --method NAMES --images DIR (--masks DIR | --generate N) [...]
    fastinpaint train [--config FILE] [...]
    fastinpaint serve [--host 127.0.0.1] [--port 8080] [--input FILE|DIR] [...]

Modules: :mod:`~fastinpaint.cli.inpaint`, :mod:`~fastinpaint.cli.demo`,
:mod:`~fastinpaint.cli.masks`, :mod:`~fastinpaint.cli.eval`, :mod:`~fastinpaint.cli.train`,
:mod:`~fastinpaint.cli.serve` (each
``add_subcommand(subparsers, …)`` and its handler), and :mod:`~fastinpaint.cli._common` (error
reporting, image files). The library modules they call hold no command-line code.

Every failure a user can cause (missing or unreadable file, size mismatch, existing output, a mask
that leaves nothing to copy from) ends with one ``error:`` line and a non-zero exit status, never
a traceback. Outputs are written to a temporary file in the target folder and renamed into place,
so an interrupted run never leaves a half-written image. Messages show a file name's bytes that
are not UTF-8 as ``\\xNN`` escapes.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import fastinpaint
from fastinpaint.cli import demo, inpaint, masks, serve, train
from fastinpaint.cli import eval as eval_command  # (the module's name is the subcommand's)
from fastinpaint.cli._common import IMAGE_SUFFIXES, MASK_THRESHOLD, CliError, escape_unprintable_output, say

__all__ = ["main", "build_parser", "CliError", "MASK_THRESHOLD"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fastinpaint`` parser with every subcommand; ``args.func(args)`` runs the one given."""
    parser = argparse.ArgumentParser(prog="fastinpaint", description="Fast image inpainting (fill masked regions).")
    parser.add_argument("--version", action="version", version=f"fastinpaint {fastinpaint.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    inpaint.add_subcommand(sub, fastinpaint.available_methods())
    demo.add_subcommand(sub)
    masks.add_subcommand(sub)
    eval_command.add_subcommand(sub, fastinpaint.inpaint)
    train.add_subcommand(sub)
    serve.add_subcommand(sub, fastinpaint.available_methods())
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """The command ``fastinpaint`` (the console script, through :mod:`_fastinpaint_cli`; ``python -m
    fastinpaint``; ``python -m fastinpaint.cli``); returns the exit status."""
    escape_unprintable_output()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("-") and Path(argv[0]).suffix.lower() in IMAGE_SUFFIXES:
        # `fastinpaint photo.jpg mask.png -o out.jpg`: what a user types first; no subcommand is
        # named like an image file, so this cannot shadow one
        argv = ["inpaint"] + argv
    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:  # (said in _fastinpaint_cli's words too, for a Ctrl-C while this is imported)
        print("fastinpaint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastinpaint eval ... | head`: the reader has gone, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # one line for the user, not the source location of the library's warnings.warn call
    say(f"fastinpaint: warning: {message}")
