"""Training and evaluation."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .engine import Trainer, TrainingInterrupted, TrainResult, train
from .evaluation import evaluate
from .inference import EvaluationReport, LoadedModel, evaluate_checkpoint, load_trained_model, predict_targets

__all__ = ["EvaluationReport", "LoadedModel", "TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted",
           "evaluate", "evaluate_checkpoint", "load_checkpoint", "load_trained_model", "predict_targets",
           "save_checkpoint", "train"]
