"""Core operations: shape arithmetic of convolution and pooling."""
from .shapes import conv_output_size, pool_output_size

__all__ = ["conv_output_size", "pool_output_size"]
