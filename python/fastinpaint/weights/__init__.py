"""Weights that ship inside the package, so a fresh install has working learned models offline.

``fastinpaint.inpaint(..., method="pconv")`` and ``method="glcic"`` (and the CLI's ``--method
pconv`` / ``--method glcic``) use these when no ``weights`` are given. They are compact networks
trained on a CPU in this repository, stored with float16 parameters; their training data, recipe
and scores are in ``docs/model_card_pconv.md`` and ``docs/model_card_glcic.md``.

Example:
    >>> from fastinpaint.weights import bundled_weights
    >>> from fastinpaint.models import load_pconv_checkpoint
    >>> net = load_pconv_checkpoint(bundled_weights("pconv"))
"""

from __future__ import annotations

import pathlib

__all__ = ["BUNDLED", "bundled_weights"]

#: method name -> file in this folder
BUNDLED = {"pconv": "pconv_compact.pt", "glcic": "glcic_compact.pt"}


def bundled_weights(method: str) -> pathlib.Path:
    """Path of the bundled weights of ``method`` (``"pconv"`` or ``"glcic"``).

    Raises:
        ValueError: no weights ship for ``method``.
        FileNotFoundError: the file is missing from this installation (a stripped build).
    """
    if method not in BUNDLED:
        raise ValueError(f"no bundled weights for method {method!r}; bundled: {sorted(BUNDLED)}")
    path = pathlib.Path(__file__).with_name(BUNDLED[method])
    if not path.is_file():
        raise FileNotFoundError(f"the bundled {method} weights ({path}) are missing from this installation; "
                                f"pass weights=PATH (--weights PATH)")
    return path
