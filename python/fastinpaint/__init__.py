"""fastinpaint: fast image inpainting for PyTorch.

Methods share one API (``fastinpaint.inpaint``) and one command line (``fastinpaint``); the
kernels are C++ (CPU) and CUDA, exposed as ops in :mod:`fastinpaint.ops`.

Mask convention for images, files and the command line: **non-zero / white = hole** (the pixels
to fill). The partial-convolution op and layer take the opposite (1 = valid), as in the paper.
"""

from fastinpaint._ext import _C  # noqa: F401  (imports torch, then the extension)
from fastinpaint import losses, models, nn, ops
from fastinpaint.backend import built_with_cuda, cuda_emulation
from fastinpaint.inpaint import available_methods, inpaint, register_method

__version__ = "0.1.0"

__all__ = ["ops", "nn", "losses", "models", "cuda_emulation", "built_with_cuda", "inpaint", "register_method",
           "available_methods", "__version__"]
