"""Image-level inpainting methods (NumPy / torch in, filled image out; non-zero mask = hole)."""

from fastinpaint.methods.biharmonic import inpaint_biharmonic

__all__ = ["inpaint_biharmonic"]
