"""Inpainting methods behind :func:`fastinpaint.inpaint`.

Every method is a function ``fn(image, hole, *, seed, source_mask, **options) -> Tensor`` on
``(C, H, W)`` float32 tensors (colour channels only) and an ``(H, W)`` bool hole on one device;
it returns the filled ``(C, H, W)`` image. Type conversion, alpha, empty/full masks and copying
the known pixels back exactly are the dispatcher's job (``fastinpaint/inpaint.py``).
"""

from fastinpaint.methods.biharmonic import inpaint_biharmonic

__all__ = ["inpaint_biharmonic"]
