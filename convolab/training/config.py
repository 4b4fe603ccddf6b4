"""The resolved configuration of a training run (written to the run folder as config.json)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.stream import LOADERS, MIN_CROP_SCALE
from ..errors import ConfigError
from .optim import DEFAULT_LR, OPTIMIZERS, SCHEDULES

AMP_MODES = ("auto", "off", "bf16", "fp16")
AUGMENT_MODES = ("auto", "none", "crop", "flip", "crop-flip")
TTA_MODES = ("none", "flip")


@dataclass
class TrainConfig:
    model: str
    data: str = "mnist5k"
    data_dir: str | None = None
    download: bool = False
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    optimizer: str = "adamw"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False
    schedule: str = "onecycle"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    aux_weight: float | None = None  # None: the paper's weight for models with auxiliary heads
    clip_grad: float | None = None
    ema_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True  # NHWC: several times faster convolutions on CPU (oneDNN) and CUDA
    compile: bool = False
    threads: int | None = None  # torch.set_num_threads in each process (None: PyTorch's default)
    image_size: int | None = None  # None: the model's input size
    normalize: str = "data"  # "data": the training set's statistics; "model": the model's data config
    augment: str = "auto"
    random_erasing: float = 0.0
    tta: str = "none"  # test-time augmentation: "flip" scores the mean of the logits of image and mirror
    recipe: str | None = None  # the named recipe whose values this run took (convolab.training.recipes)
    patience: int | None = None  # early stopping, in epochs without improvement of test accuracy
    budget_seconds: float | None = None  # stop after the epoch in which training time reaches this
    min_delta: float = 0.0
    output: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    skip_bad_images: bool = False
    val_fraction: float = 0.1
    train_subset: int | None = None  # train on this many training images (classes balanced, seeded)
    test_subset: int | None = None  # evaluate on this many test images
    loader: str = "auto"  # image folders: "cache" small images in memory, "stream" large ones from the files
    workers: int | None = None  # DataLoader processes that decode streamed images (None: min(8, CPUs))
    min_crop_scale: float = MIN_CROP_SCALE  # streamed training images: random-resized crops of this much area up
    sync_bn: bool = False  # several processes: batch-norm statistics over the whole global batch
    tensorboard: bool = False
    progress: bool = True
    # Transfer and several outputs (convolab/finetune).
    init_from: str | None = None  # checkpoint whose weights matching by name and shape are loaded
    freeze_backbone: bool = False  # train the heads only; frozen BN stays in eval mode
    backbone_lr_scale: float | None = None  # the backbone's learning rate is lr x this
    loss_weights: dict[str, float] = field(default_factory=dict)  # per output, e.g. {"main": 1, "aux1": 0.3}
    extra_targets: list[str] = field(default_factory=list)  # derived targets of task heads, e.g. ["parity"]

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise ConfigError(f"--budget-seconds must be a positive number, got {self.budget_seconds}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.augment not in AUGMENT_MODES:
            raise ConfigError(f"--augment must be one of {', '.join(AUGMENT_MODES)}, got {self.augment!r}")
        if self.tta not in TTA_MODES:
            raise ConfigError(f"--tta must be one of {', '.join(TTA_MODES)}, got {self.tta!r}")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads <= 0):
            raise ConfigError(f"--threads must be a positive integer, got {self.threads}")
        if self.loader not in LOADERS:
            raise ConfigError(f"--loader must be one of {', '.join(LOADERS)}, got {self.loader!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if not 0 < self.min_crop_scale <= 1:
            raise ConfigError(f"--min-crop-scale must be in (0, 1], got {self.min_crop_scale}")
        if self.normalize not in ("data", "model"):
            raise ConfigError(f"--normalize must be 'data' or 'model', got {self.normalize!r}")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("--weight-decay must be >= 0 and --label-smoothing in [0, 1)")
        if self.backbone_lr_scale is not None and not 0 < self.backbone_lr_scale < float("inf"):
            raise ConfigError(f"--backbone-lr-scale must be a positive number, got {self.backbone_lr_scale}")
        bad = {k: v for k, v in self.loss_weights.items() if not 0 <= v < float("inf")}
        if bad:
            raise ConfigError(f"--loss weights must be numbers >= 0, got {bad}")

    @property
    def base_lr(self) -> float:
        """--lr, else the model's registered default, else the optimizer's."""
        if self.lr is not None:
            return self.lr
        from .._registry import get_entry

        return get_entry(self.model).train_defaults.get("lr", DEFAULT_LR[self.optimizer])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_run(cls, run_dir: str | Path) -> TrainConfig:
        path = Path(run_dir) / "config.json"
        if not path.is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.json); "
                              "give the --output folder of a `convolab train` run")
        return cls.from_dict(json.loads(path.read_text()))
