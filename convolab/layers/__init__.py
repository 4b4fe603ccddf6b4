"""Building blocks shared by the model families."""
from .aux_head import GoogLeNetAux, InceptionV3Aux
from .classifier import ClassifierHead
from .conv_norm_act import ConvBlock, ConvNormAct, conv_block, same_padding
from .dense import DenseBlock, DenseLayer, Transition
from .inception import (
    REDUCTION_A,
    BNInception,
    BNInceptionSpec,
    InceptionResnetA,
    InceptionResnetASpec,
    InceptionResnetB,
    InceptionResnetBSpec,
    InceptionResnetC,
    InceptionResnetCSpec,
    InceptionSpec,
    InceptionV1,
    InceptionV3A,
    InceptionV3ASpec,
    InceptionV3B,
    InceptionV3BSpec,
    InceptionV3C,
    InceptionV3CSpec,
    InceptionV3D,
    InceptionV3DSpec,
    InceptionV3E,
    InceptionV3ESpec,
    InceptionV4A,
    InceptionV4ASpec,
    InceptionV4B,
    InceptionV4BSpec,
    InceptionV4C,
    InceptionV4CSpec,
    InceptionV4ReductionB,
    InceptionV4ReductionBSpec,
    Mixed3a,
    Mixed4a,
    Mixed5a,
    ReductionA,
    ReductionASpec,
    ResidualInception,
    ResnetReductionB,
    ResnetReductionBSpec,
)
from .mlpconv import MlpConv
from .residual import BasicBlock, Bottleneck, PadShortcut, PreActBasicBlock, PreActBottleneck, make_stage

__all__ = ["ClassifierHead", "ConvBlock", "ConvNormAct", "conv_block", "same_padding"]
__all__ += ["GoogLeNetAux", "InceptionV3Aux", "REDUCTION_A", "BNInception", "BNInceptionSpec",
            "InceptionResnetA", "InceptionResnetASpec", "InceptionResnetB", "InceptionResnetBSpec",
            "InceptionResnetC", "InceptionResnetCSpec", "InceptionSpec", "InceptionV1", "InceptionV3A",
            "InceptionV3ASpec", "InceptionV3B", "InceptionV3BSpec", "InceptionV3C", "InceptionV3CSpec",
            "InceptionV3D", "InceptionV3DSpec", "InceptionV3E", "InceptionV3ESpec", "InceptionV4A",
            "InceptionV4ASpec", "InceptionV4B", "InceptionV4BSpec", "InceptionV4C", "InceptionV4CSpec",
            "InceptionV4ReductionB", "InceptionV4ReductionBSpec", "Mixed3a", "Mixed4a", "Mixed5a",
            "ReductionA", "ReductionASpec", "ResidualInception", "ResnetReductionB", "ResnetReductionBSpec"]
__all__ += ["BasicBlock", "Bottleneck", "DenseBlock", "DenseLayer", "MlpConv", "PadShortcut",
            "PreActBasicBlock", "PreActBottleneck", "Transition", "make_stage"]
