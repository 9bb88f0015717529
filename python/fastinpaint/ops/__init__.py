"""fastinpaint's kernels as PyTorch ops (differentiable where it makes sense, torch.compile-able).

Mask conventions differ by op and are stated in each docstring: ``partial_conv2d`` takes
1 = valid (the partial-convolution convention); ``nnf`` takes ``source_valid`` (non-zero = may be
copied); image-level APIs take non-zero = hole.
"""

from fastinpaint.ops.partial_conv import PartialConv2dFunction, partial_conv2d
from fastinpaint.ops.patchmatch import nnf, valid_centres, vote

__all__ = ["partial_conv2d", "PartialConv2dFunction", "nnf", "vote", "valid_centres"]
