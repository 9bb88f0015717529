"""What every subcommand of the ``fastinpaint`` command line shares: how a user error is reported,
and reading and writing image files.

A user error (missing or unreadable file, size mismatch, existing output, a bad value) ends with one
``PROG: error: MESSAGE`` line on stderr and a non-zero exit status, never a traceback: a handler
raises :class:`CliError` (or lets one of the library errors it names escape), and
:func:`reports_user_errors` turns it into that line.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence, Type

#: Grey values above this are holes in mask files; alpha at or below it is a hole.
MASK_THRESHOLD = 127
#: The file endings taken as images when a folder is read.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".tga")

Handler = Callable[..., int]


class CliError(Exception):
    """A user-facing error: printed as one line, with a non-zero exit status (see :func:`reports_user_errors`)."""


def reports_user_errors(prog: str, *library_errors: Type[BaseException],
                        status: int = 1) -> Callable[[Handler], Handler]:
    """Makes a subcommand handler report :class:`CliError` and ``library_errors`` as one line
    ``PROG: error: MESSAGE`` on stderr and return ``status`` instead of raising.

    The handler itself does it (not only :func:`fastinpaint.cli.main`), so that the subcommand
    behaves the same when another parser calls ``args.func(args)``.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(*args, **kwargs) -> int:
            try:
                return handler(*args, **kwargs)
            except (CliError, *library_errors) as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return status

        return run

    return decorate


def open_image(path: Path, what: str):
    """``PIL.Image`` of ``path``, fully read; ``what`` ("image", "mask") names it in errors."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise CliError(f"{what} file not found: {path}")
    if path.is_dir():
        raise CliError(f"{what} path is a directory, not an image file: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CliError(f"cannot read {what} {path}: {exc}") from exc
    return img


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomic(img, out: Path, overwrite: bool) -> None:
    """Writes ``img`` to ``out`` (format from its extension) through a temporary file in the same
    folder renamed into place, so an interrupted run never leaves a half-written image."""
    from PIL import Image

    if out.exists() and not overwrite:
        raise CliError(f"output {out} already exists; pass --overwrite to replace it")
    if out.is_dir():
        raise CliError(f"output {out} is a directory")
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None:
        raise CliError(f"cannot tell the image format of output {out} from its extension; use e.g. .png")
    if fmt == "JPEG" and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")  # JPEG has no alpha and no 16-bit
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"output folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, (OSError, ValueError, KeyError)):
            raise CliError(f"cannot write {out}: {exc}") from exc
        raise


def standalone_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                    handler: Handler, argv: Optional[Sequence[str]]) -> int:
    """One subcommand as a program of its own (``python -m fastinpaint.masks``, ``python -m
    fastinpaint.training``): its arguments, parsed from ``argv`` (default ``sys.argv[1:]``), go to
    ``handler``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return handler(parser.parse_args(None if argv is None else list(argv)))
