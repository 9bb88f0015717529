"""Inpainting methods, one module each; ``fastinpaint.inpaint(method=...)`` dispatches to them."""
