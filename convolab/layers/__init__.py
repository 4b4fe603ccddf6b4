"""Building blocks shared by the model families."""
from .classifier import ClassifierHead
from .conv_norm_act import ConvBlock, ConvNormAct, conv_block, same_padding
from .dense import DenseBlock, DenseLayer, Transition
from .inception import InceptionV3A, InceptionV3ASpec, ReductionA, ReductionASpec, avg_pool_3x3, tower
from .mlpconv import MlpConv
from .residual import BasicBlock, Bottleneck, PadShortcut, PreActBasicBlock, PreActBottleneck, make_stage

__all__ = ["ClassifierHead", "ConvBlock", "ConvNormAct", "conv_block", "same_padding"]
__all__ += ["InceptionV3A", "InceptionV3ASpec", "ReductionA",
            "ReductionASpec", "avg_pool_3x3", "tower"]
__all__ += ["BasicBlock", "Bottleneck", "DenseBlock", "DenseLayer", "MlpConv", "PadShortcut",
            "PreActBasicBlock", "PreActBottleneck", "Transition", "make_stage"]
