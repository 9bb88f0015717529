"""The ``fastinpaint`` console script's entry point, outside the ``fastinpaint`` package.

Importing anything from ``fastinpaint`` first runs the package's ``__init__``, which imports torch
(a second or more): a Ctrl-C then, before :func:`fastinpaint.cli.main` can catch it, ended in a
traceback through torch's import. Here nothing is imported before the ``try``.
"""

import sys


def main() -> int:
    """``fastinpaint ...``: :func:`fastinpaint.cli.main`, and Ctrl-C while it is imported said in one
    line (the words and exit status 130 of the command's own Ctrl-C)."""
    try:
        from fastinpaint.cli import main as command
    except KeyboardInterrupt:
        print("fastinpaint: interrupted", file=sys.stderr)
        return 130
    return command()
