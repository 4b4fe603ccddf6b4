"""Export for inference: batch-norm folding, ONNX and TorchScript files checked against PyTorch,
and prediction with an exported ONNX model."""
from .exporters import (
                        RTOL,
                        TOLERANCE,
                        ExportError,
                        ExportMeta,
                        ExportResult,
                        export_onnx,
                        export_torchscript,
                        model_from_checkpoint,
                        read_torchscript_meta,
)
from .fold import conv_bn_pairs, fold_batchnorm
from .onnx_predict import OnnxClassifier, predict_onnx
from .to_safetensors import SafetensorsResult, export_safetensors

__all__ = ["RTOL", "TOLERANCE", "ExportError", "ExportMeta", "ExportResult", "OnnxClassifier", "SafetensorsResult",
           "conv_bn_pairs", "export_onnx", "export_safetensors", "export_torchscript", "fold_batchnorm",
           "model_from_checkpoint", "predict_onnx", "read_torchscript_meta"]
