"""Neural-network building blocks of fastinpaint."""

from fastinpaint.nn.glcic import GLCIC, GLCICDiscriminator, GlobalDiscriminator, LocalDiscriminator
from fastinpaint.nn.partial_conv import PartialConv2d
from fastinpaint.nn.pconv_unet import PConvBlock, PConvUNet

__all__ = ["PartialConv2d", "PConvUNet", "PConvBlock", "GLCIC", "GLCICDiscriminator", "GlobalDiscriminator",
           "LocalDiscriminator"]
