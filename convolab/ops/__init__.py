"""Core operations: shape arithmetic of convolution and pooling."""
from .functional import batch_norm, conv1x1_as_matmul, conv2d, corr2d, pool2d
from .shapes import conv_output_size, pool_output_size

__all__ = ["conv_output_size", "pool_output_size"]
# Reference implementations in NumPy, checked against torch.nn.functional (ops/functional.py).
__all__ += ["batch_norm", "conv1x1_as_matmul", "conv2d", "corr2d", "pool2d"]
