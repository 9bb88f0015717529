"""Old public names kept for one release: each warns once per call site, then does what the new
name does."""

from __future__ import annotations

import functools
import warnings
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def deprecated_alias(new: F, old_name: str, new_name: str) -> F:
    """``new`` under the name ``old_name``, with a DeprecationWarning that points to ``new_name``."""

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warnings.warn(f"{old_name} is deprecated; use {new_name}", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated alias of :func:`{new_name}`, kept for one release."
    return alias  # type: ignore[return-value]
