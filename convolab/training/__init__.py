"""Training and evaluation."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .engine import Trainer, TrainingInterrupted, TrainResult, train
from .evaluation import evaluate

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "evaluate", "load_checkpoint",
           "save_checkpoint", "train"]
