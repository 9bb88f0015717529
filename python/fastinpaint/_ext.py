"""Loads the compiled extension ``fastinpaint._C`` (torch must be imported first: the extension
links against torch's libraries without an RPATH to them)."""

import torch  # noqa: F401  (loads libtorch before _C)

try:
    from fastinpaint import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastinpaint's compiled extension (fastinpaint._C) could not be loaded. It must be built "
        "against the torch you run: reinstall with `pip install --no-build-isolation .` "
        f"(installed torch: {torch.__version__}). Original error: {exc}"
    ) from exc

__all__ = ["_C"]
