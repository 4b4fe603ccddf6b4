"""Export for inference: batch-norm folding, ONNX and TorchScript files checked against PyTorch,
and prediction with an exported ONNX or TorchScript model."""
from .classifiers import (
    ExportedClassifier,
    OnnxClassifier,
    TorchScriptClassifier,
    evaluate_exported,
    export_reading,
    predict_onnx,
    predict_torchscript,
)
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
from .to_safetensors import SafetensorsResult, export_safetensors

__all__ = ["RTOL", "TOLERANCE", "ExportError", "ExportMeta", "ExportResult", "ExportedClassifier", "OnnxClassifier",
           "SafetensorsResult", "TorchScriptClassifier", "conv_bn_pairs", "evaluate_exported", "export_onnx",
           "export_reading", "export_safetensors", "export_torchscript", "fold_batchnorm", "model_from_checkpoint",
           "predict_onnx", "predict_torchscript", "read_torchscript_meta"]
