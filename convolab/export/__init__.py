"""Export for inference: batch-norm folding, ONNX, TorchScript and torch.export (.pt2) files checked against
PyTorch, and prediction with any of them."""
from .classifiers import (
    ExportedClassifier,
    OnnxClassifier,
    ProgramClassifier,
    TorchScriptClassifier,
    evaluate_exported,
    export_reading,
    predict_onnx,
    predict_program,
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
from .program import export_program, read_program_meta
from .to_safetensors import SafetensorsResult, export_safetensors

__all__ = ["RTOL", "TOLERANCE", "ExportError", "ExportMeta", "ExportResult", "ExportedClassifier", "OnnxClassifier",
           "ProgramClassifier", "SafetensorsResult", "TorchScriptClassifier", "conv_bn_pairs", "evaluate_exported",
           "export_onnx", "export_program", "export_reading", "export_safetensors", "export_torchscript",
           "fold_batchnorm", "model_from_checkpoint", "predict_onnx", "predict_program", "predict_torchscript",
           "read_program_meta", "read_torchscript_meta"]
