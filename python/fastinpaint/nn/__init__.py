"""Neural-network building blocks of fastinpaint."""

from fastinpaint.nn.partial_conv import PartialConv2d

__all__ = ["PartialConv2d"]
