"""Building blocks shared by the model families."""
from .classifier import ClassifierHead
from .conv_norm_act import ConvBlock, ConvNormAct, conv_block, same_padding

__all__ = ["ClassifierHead", "ConvBlock", "ConvNormAct", "conv_block", "same_padding"]
