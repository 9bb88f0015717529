"""Whether progress bars are drawn: one rule for every command with a bar (``inpaint``'s batch,
``eval``, ``train``), below both the command line and the training loop that use it."""

from __future__ import annotations

import sys


def draws_progress_bars() -> bool:
    """True only when stderr is a terminal. To a log file or a pipe (CI, ``2> log``) every redraw
    was kept, a line of its own glued to the messages."""
    isatty = getattr(sys.stderr, "isatty", None)  # (None under pythonw; a stand-in stream may lack it)
    return bool(isatty and isatty())
