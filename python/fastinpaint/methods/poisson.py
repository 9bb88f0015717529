"""Deprecated location of :func:`fastinpaint.blending.poisson_blend` (a blending step, not a
method); kept for one release."""

import warnings

from fastinpaint.blending import poisson_blend

__all__ = ["poisson_blend"]

warnings.warn("fastinpaint.methods.poisson is deprecated; import poisson_blend from fastinpaint.blending",
              DeprecationWarning, stacklevel=2)
