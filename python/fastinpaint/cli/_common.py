"""What every subcommand of the ``fastinpaint`` command line shares: how a user error is reported,
and reading and writing image files.

A user error (missing or unreadable file, size mismatch, existing output, a bad value) ends with one
``PROG: error: MESSAGE`` line on stderr and a non-zero exit status, never a traceback: a handler
raises :class:`CliError` (or lets one of the library errors it names escape), and
:func:`reports_user_errors` turns it into that line.
"""

from __future__ import annotations

import argparse
import codecs
import functools
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Type

from fastinpaint._terminal import draws_progress_bars  # noqa: F401 - the commands import it from here
from fastinpaint.io import MASK_THRESHOLD, ImageIOError  # noqa: F401 - MASK_THRESHOLD re-exported

#: The file endings taken as images when a folder is read.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".tga")


def is_image_file(path: Path) -> bool:
    """A file that folder listings (batch mode, the server's inputs) take as an image: an image
    suffix, and not hidden (``.name``: editors' and file managers' sidecars, such as macOS's
    ``._photo.jpg``)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()

Handler = Callable[..., int]

#: The error handler that :func:`escape_unprintable_output` gives stdout and stderr.
_ESCAPE = "fastinpaint.escape"


def _escape(err: UnicodeError):
    # A file name's byte that is not UTF-8 reaches Python as a lone surrogate U+DC80..U+DCFF (PEP 383):
    # shown as that byte, \xNN, as a user would look for it; any other character the stream cannot
    # encode as Python's backslashreplace shows it
    if not isinstance(err, UnicodeEncodeError):
        raise err
    shown = [f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
             else c.encode("ascii", "backslashreplace").decode("ascii")
             for c in err.object[err.start:err.end]]
    return "".join(shown), err.end


codecs.register_error(_ESCAPE, _escape)


def escape_unprintable_output() -> None:
    """Makes stdout and stderr print what they cannot encode as backslash escapes: messages name
    files, and a name that is not UTF-8 raised UnicodeEncodeError on stdout (``strict``) after the
    file was written. Called by the entry points, once, before any message."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a TextIOWrapper (not a StringIO put in its place)
            stream.reconfigure(errors=_ESCAPE)


def say(message: str) -> None:
    """Prints a note, warning or error line on stderr through tqdm, which first clears a progress
    bar being drawn there and draws it again below the line (printed straight to stderr, the line
    landed on the end of the bar's)."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class CliError(Exception):
    """A user-facing error: printed as one line, with a non-zero exit status (see :func:`reports_user_errors`)."""


def reports_user_errors(prog: str, *library_errors: Type[BaseException]) -> Callable[[Handler], Handler]:
    """Makes a subcommand handler report :class:`CliError` and ``library_errors`` as one line
    ``PROG: error: MESSAGE`` on stderr and return 1 instead of raising (every subcommand: 1 = the
    work failed; 2 stays argparse's, for a command line it cannot parse).

    The handler itself does it (not only :func:`fastinpaint.cli.main`), so that the subcommand
    behaves the same when another parser calls ``args.func(args)``.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(*args, **kwargs) -> int:
            try:
                return handler(*args, **kwargs)
            except (CliError, ImageIOError, *library_errors) as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return 1

        return run

    return decorate


def check_weights_file(path) -> None:
    """``--weights PATH`` names a file, checked once before any work (a missing one was reported
    for every file of a batch, or after scoring as a report error)."""
    if Path(path).is_dir():
        model = Path(path) / "model.pt"
        hint = f" (it holds a run's exported weights: --weights {model})" if model.is_file() else ""
        raise CliError(f"--weights {path}: a folder, not a weights file{hint}")
    if not Path(path).is_file():
        raise CliError(f"--weights {path}: the file does not exist")


def check_device(device: str) -> None:
    """``--device``, checked once before any work by the API's rule (:func:`fastinpaint.inpaint.
    check_device`: a GPU this process can use, with fastinpaint's CUDA kernels; a batch reported
    it for every file). Under torchrun, one process per GPU: ``--nproc-per-node`` at most their
    number."""
    from fastinpaint.inpaint import check_device as check

    try:
        check(device, who="--device")
    except (RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def int_argument(text: str) -> int:
    """An integer argument, or argparse's usage error naming what was given."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def seed_argument(text: str) -> int:
    """``--seed`` of the subcommands that call :func:`fastinpaint.inpaint`: its range, checked by
    the API's own rule at argument parsing, before any image is read."""
    from fastinpaint.inpaint import check_seed

    value = int_argument(text)
    try:
        return check_seed(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be between -2**62 and 2**62 - 1, got {value}") from None


def open_image(path: Path, what: str):
    """``PIL.Image`` of ``path``, fully read and as displayed (EXIF orientation applied); ``what``
    ("image", "mask") names it in errors."""
    from fastinpaint.io import _open_pil, orient

    return orient(_open_pil(path, what))


def save_atomic(img, out: Path, overwrite: bool) -> None:
    """Writes the ``PIL.Image`` ``img`` to ``out`` with :func:`fastinpaint.io.write_image` (a
    temporary file published without replacing unless ``overwrite``)."""
    import numpy as np

    from fastinpaint.io import write_image

    write_image(np.array(img), out, overwrite=overwrite)


def standalone_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                    handler: Handler, argv: Optional[Sequence[str]]) -> int:
    """One subcommand as a program of its own (``python -m fastinpaint.masks``, ``python -m
    fastinpaint.training``): its arguments, parsed from ``argv`` (default ``sys.argv[1:]``), go to
    ``handler``."""
    escape_unprintable_output()
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return handler(parser.parse_args(None if argv is None else list(argv)))
