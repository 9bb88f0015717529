"""Inpainting methods, one module each; ``fastinpaint.inpaint(method=...)`` dispatches to them.

Image-level APIs take a hole mask with **non-zero = hole**.
"""

from fastinpaint.methods.biharmonic import inpaint_biharmonic

__all__ = ["inpaint_biharmonic"]
