"""Inpainting methods behind :func:`fastinpaint.inpaint`.

Every method is one function ``fn(image, hole, *, seed, source_mask, **options) -> Tensor`` on a
``(C, H, W)`` float32 tensor (colour channels only) and an ``(H, W)`` bool hole on one device;
it returns the filled ``(C, H, W)`` image. Type conversion, alpha, value ranges, empty/full
masks and copying the known pixels back exactly are the dispatcher's job
(``fastinpaint/inpaint.py``), where the methods are registered:

* :func:`~fastinpaint.methods.patchmatch.inpaint_patchmatch` (``"patchmatch"``),
* :func:`~fastinpaint.methods.biharmonic.inpaint_biharmonic` (``"biharmonic"``),
* :func:`~fastinpaint.methods.pconv.inpaint_pconv` (``"pconv"``),
* :func:`~fastinpaint.methods.glcic.inpaint_glcic` (``"glcic"``).

``learned.py`` holds what the learned methods share (weights, inference, compositing). GLCIC's
optional Poisson blending is :mod:`fastinpaint.blending`, a post-processing step, not a method.
"""

from fastinpaint.methods.biharmonic import inpaint_biharmonic

__all__ = ["inpaint_biharmonic"]
