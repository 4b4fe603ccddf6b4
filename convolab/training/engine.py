"""The training engine: data resident on the device, batches by indexing, augmentation per batch,
learning rate as a pure function of the step, full-state checkpoints that resume exactly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import create_model
from ..data import ImageData, load_data, per_class_subset
from ..data.augment import AugmentConfig, BatchTransform
from ..data.stream import StreamingImageData, epoch_permutation
from ..errors import CheckpointError, ConfigError, ConvolabError
from .checkpoint import atomic_write, load_checkpoint, save_checkpoint, served_weights
from .config import TrainConfig
from .distributed import Distributed
from .metrics import plot_curves, write_metrics
from .optim import ModelEma, build_optimizer, lr_factor, param_groups
from .sync_bn import convert_sync_batchnorm

log = logging.getLogger("convolab")

# Auxiliary-classifier loss weights from the papers (GoogLeNet section 5; Inception-v3 section 4).
PAPER_AUX_WEIGHTS = {"googlenet": 0.3, "googlenet_tv": 0.3, "inception_v3": 0.4}


class TrainingInterrupted(ConvolabError):
    """Ctrl-C or SIGTERM: the state was saved and the run can be resumed."""


class NonFiniteLoss(ConvolabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    best_acc: float
    best_epoch: int
    test_acc: float
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def device_clock(device: torch.device) -> float:
    """The host clock once the device has finished the work queued so far.

    CUDA runs kernels asynchronously: without waiting, a clock read after `loss.backward()` would stop
    while the step is still queued, and images/s would count unfinished work.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the device runs it fast (CUDA), fp16 only on CUDA; 'auto' leaves the CPU in fp32."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        return torch.float16
    return torch.bfloat16


def augment_for(mode: str, image_shape: tuple[int, int, int], erasing: float) -> AugmentConfig:
    """'auto': crop with padding size/8 and flips for colour images; none for grey digits, where
    short runs learn faster without (a mirrored 2 is not a 2, and a shifted digit costs epochs)."""
    pad = max(1, round(image_shape[-1] / 8))
    if mode == "auto":
        mode = "crop-flip" if image_shape[0] == 3 else "none"
    return AugmentConfig(crop_padding=pad if "crop" in mode else 0, flip="flip" in mode, erasing=erasing)


def next_free_dir(stem: str, parent: str | Path = "runs") -> Path:
    """parent/stem, or stem-2, stem-3... beside the ones that exist."""
    path, n = Path(parent) / stem, 2
    while path.exists():
        path, n = Path(parent) / f"{stem}-{n}", n + 1
    return path


def data_stem(data: str) -> str:
    """A short name for a data source: `cifar10` for ../shared/data/cifar10-jpg.tar.gz."""
    return Path(data).name.split(".")[0]


def default_run_dir(config: TrainConfig) -> Path:
    return next_free_dir(f"{config.model}-{data_stem(config.data)}")


def prepare_run_dir(output: str | Path) -> Path:
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is a file; give a folder for the run (it will be created)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--output {path} cannot be created ({err.strerror}); choose another folder") from None
    return path


def load_config_data(config: TrainConfig) -> ImageData:
    """The data a training config names, as every training verb loads it (and the subsets it asks for)."""
    data = load_data(config.data, config.data_dir, config.download, config.skip_bad_images, config.val_fraction,
                     config.image_size, config.loader, config.workers)
    if config.train_subset is None and config.test_subset is None:
        return data
    if isinstance(data, StreamingImageData):
        raise ConfigError(f"--train-subset and --test-subset take images held in memory; {config.data} is "
                          "streamed from its files: add --loader cache, or give a folder of fewer images")
    train = data.train.subset(per_class_subset(data.train.labels, config.train_subset or len(data.train)))
    test = data.test.subset(per_class_subset(data.test.labels, config.test_subset or len(data.test)))
    log.info("a subset: %d of %d training and %d of %d test images", len(train), len(data.train), len(test),
             len(data.test))
    return ImageData(data.name, train, test, data.classes)


def model_outputs(model: nn.Module, x: torch.Tensor, want_aux: bool) -> dict[str, torch.Tensor]:
    if want_aux and hasattr(model, "forward_outputs"):
        return model.forward_outputs(x)
    return {"main": model(x)}


class TrainingOutputs(nn.Module):
    """`model_outputs` as a module: what torch.compile and DistributedDataParallel wrap, so both
    see the auxiliary heads' outputs the loss uses."""

    def __init__(self, model: nn.Module, want_aux: bool):
        super().__init__()
        self.model, self.want_aux = model, want_aux

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return model_outputs(self.model, x, self.want_aux)


def split_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels, indices) of in-memory data, in order."""
    for start in range(0, len(labels), batch_size):
        stop = min(start + batch_size, len(labels))
        yield images[start:stop], labels[start:stop], torch.arange(start, stop, device=labels.device)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor | None, labels: torch.Tensor, transform: BatchTransform,
             batch_size: int, device: torch.device, amp_dtype: torch.dtype | None = None,
             return_logits: bool = False, targets: dict[str, torch.Tensor] | None = None,
             batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
             tta: str = "none") -> dict[str, Any]:
    """Loss and top-1 accuracy of `model` (eval mode) on uint8 images; logits too if asked.

    `targets` ({output name: labels}) also scores those outputs of `model.forward_outputs`: `acc_<name>`.
    `batches` ((uint8 images, labels, indices into `labels`), e.g. streamed from files) replaces `images`.
    `tta="flip"`: each output is the mean of the logits of the image and of its mirror image.
    """
    model.eval()
    targets = targets or {}
    # Sums stay on the device: one synchronization at the end, not two per batch.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    correct_by = {name: torch.zeros((), dtype=torch.long, device=device) for name in targets}
    count, outputs = 0, []
    for images_u8, y, index in batches if batches is not None else split_batches(images, labels, batch_size):
        x = transform(images_u8.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        with _autocast(device, amp_dtype):
            named = model.forward_outputs(x) if targets else {"main": model(x)}
            if tta == "flip":
                mirrored = model.forward_outputs(x.flip(3)) if targets else {"main": model(x.flip(3))}
                named = {k: (v.float() + mirrored[k].float()) / 2 for k, v in named.items()}
        logits = named["main"].float()
        total_loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
        for name, target in targets.items():
            t = target[index.to(target.device)].to(device, non_blocking=True)
            correct_by[name] += (named[name].argmax(1) == t).sum()
        if return_logits:
            outputs.append(logits.cpu())
    n = max(1, count)
    result: dict[str, Any] = {"loss": total_loss.item() / n, "acc": correct.item() / n}
    result.update({f"acc_{name}": c.item() / n for name, c in correct_by.items()})
    if return_logits:
        result["logits"] = torch.cat(outputs) if outputs else torch.empty(0)
    return result


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Trainer:
    """Runs one training job described by a TrainConfig; `Trainer.resume(run_dir)` continues one."""

    def __init__(self, config: TrainConfig, data: ImageData | None = None, model: nn.Module | None = None):
        self.started = time.perf_counter()  # elapsed_seconds counts from here: data loading included
        self.config = config
        self.init_report = None  # what config.init_from loaded and skipped
        self.device = resolve_device(config.device)
        # Several processes under torchrun: join the job, one GPU per process.
        self.dist = Distributed.from_env(self.device)
        self.dist.check_batch_size(config.batch_size)
        self.device = self.dist.device(self.device)
        if not self.dist.is_main:
            log.setLevel(logging.WARNING)  # rank 0 reports for all
        self.amp_dtype = resolve_amp(config.amp, self.device)
        if self.device.type == "cuda":  # fixed input shapes: cuDNN times its algorithms once and keeps the fastest
            torch.backends.cudnn.benchmark = True
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.data = data if data is not None else self._load_data(config)
        if model is None:
            options = dict(config.model_options)
            model = create_model(config.model, num_classes=self.data.num_classes,
                                 in_chans=self.data.image_shape[0], **options)
            if config.init_from:
                self.init_report = self._init_from(model, config.init_from)
        self.model = model.to(self.device)
        channels_last = config.channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        data_cfg = getattr(self.model, "data_config", None)
        size = config.image_size or (data_cfg.input_size[-1] if data_cfg else self.data.image_shape[-1])
        in_chans = getattr(self.model, "in_chans", self.data.image_shape[0])
        augment = augment_for(config.augment, self.data.image_shape, config.random_erasing)
        # Large images stream from their files: workers decode each straight to the input size, a
        # random-resized crop standing in for the padded crop of cached data.
        self.streaming = isinstance(self.data, StreamingImageData)
        if self.streaming:  # the workers crop and mirror each image as they decode it
            crop = augment.crop_padding > 0
            self.data.configure(size, random_crop=crop, min_scale=config.min_crop_scale, flip=augment.flip and crop)
            augment = dataclasses.replace(augment, crop_padding=0, flip=augment.flip and not crop)
        if config.normalize == "model" and data_cfg is not None:
            mean, std = data_cfg.mean, data_cfg.std
        else:
            mean, std = self.data.channel_stats()
            if len(mean) != in_chans:  # stats follow the channel conversion
                mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size = (size, size)
        self.transform = BatchTransform(in_chans, self.image_size, self.mean, self.std, augment, channels_last)
        self.eval_transform = BatchTransform(in_chans, self.image_size, self.mean, self.std, AugmentConfig(),
                                             channels_last)
        self.aux_weight = config.aux_weight if config.aux_weight is not None else \
            PAPER_AUX_WEIGHTS.get(getattr(self.model, "model_name", config.model), 0.0)
        self.train_targets, self.test_targets = self._extra_targets()
        self.loss_weights = self._loss_weights()
        self.want_aux = any(w > 0 for name, w in self.loss_weights.items() if name != "main")
        # Outputs scored per epoch besides main: each trained output, against its own target or the labels.
        self.scored_outputs = [n for n in self.loss_weights if n != "main"] if self.want_aux else []
        groups = param_groups(self.model, config.weight_decay, config.decay_norm_and_bias)
        if config.freeze_backbone or config.backbone_lr_scale is not None:
            from ..finetune.freeze import backbone_lr_groups, freeze_backbone

            if config.freeze_backbone:
                freeze_backbone(self.model)
                groups = param_groups(self.model, config.weight_decay, config.decay_norm_and_bias)
            if config.backbone_lr_scale is not None:
                groups = backbone_lr_groups(self.model, groups, config.backbone_lr_scale)
        self.optimizer = build_optimizer(groups, config.optimizer, config.base_lr, config.momentum,
                                         config.nesterov)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if config.sync_bn and self.dist.enabled:  # BN statistics of the global batch, as one process has
            self.model = convert_sync_batchnorm(self.model, self.device)
        self.ema = ModelEma(self.model, config.ema_decay) if config.ema_decay else None
        forward = TrainingOutputs(self.model, self.want_aux)
        if self.dist.enabled:
            forward = self.dist.wrap(self.model, forward)
            torch.manual_seed(config.seed + self.dist.rank)  # own dropout masks per rank (same init before)
        self.forward_model = torch.compile(forward) if config.compile else forward
        # Data live on the device as uint8 and batches are taken by indexing; or, streamed, worker
        # processes decode each batch from the files.
        self.train_labels = self.data.train.labels.to(self.device)
        self.test_labels = self.data.test.labels.to(self.device)
        if self.streaming:
            self.train_images, self.test_images = None, None
            self.train_loader, self.train_sampler = self.data.train_loader(
                config.batch_size, config.seed, self.dist.rank, self.dist.world_size,
                pin_memory=self.device.type == "cuda")
        else:
            self.train_images = self.data.train.images.to(self.device)
            self.test_images = self.data.test.images.to(self.device)
        n = len(self.train_labels)
        self.steps_per_epoch = max(1, n // config.batch_size)  # the last partial batch is dropped
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = min(round(config.warmup_epochs * self.steps_per_epoch), self.total_steps // 2)
        self.aug_generator = torch.Generator(device=self.device).manual_seed(
            config.seed + 1 + self.dist.rank * 1_000_003)
        # Rank 0 names and creates the run folder (a default name depends on what exists).
        run_dir = prepare_run_dir(config.output or default_run_dir(config)) if self.dist.is_main else None
        self.run_dir = Path(self.dist.broadcast(str(run_dir) if run_dir else None))
        # Progress through the run (all of it goes into the checkpoint).
        self.epoch = 0  # epochs completed
        self.step = 0
        self.batch_in_epoch = 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.history: list[dict[str, Any]] = []
        # Training loss and accuracy every 10 steps (He et al. plot training error by iteration).
        self.step_history: list[dict[str, Any]] = []
        self.best_acc, self.best_epoch, self.epochs_since_best = -1.0, 0, 0
        self.wall_seconds = 0.0
        self._stop_signal: int | None = None
        self.tensorboard = self._open_tensorboard() if config.tensorboard and self.dist.is_main else None

    def _load_data(self, config: TrainConfig) -> ImageData:
        """The run's data; with several processes rank 0 loads first, so that a --download, an image
        cache or a decompressed archive is made once and the other ranks find it ready."""
        if self.dist.is_main:
            data = load_config_data(config)
        self.dist.barrier()
        if not self.dist.is_main:
            data = load_config_data(config)
        return data

    # ----- transfer and several outputs --------------------------------------------------------
    @staticmethod
    def _init_from(model: nn.Module, path: str) -> Any:
        """Load the weights of `path` that match `model` by name and shape; log every skipped name."""
        from ..finetune.loading import load_matching

        report = load_matching(model, served_weights(load_checkpoint(path)))
        log.info("init from %s: %s", path, report.summary())
        return report

    def _extra_targets(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The derived targets of the outputs that have their own (e.g. `parity`), on the device."""
        names = list(self.config.extra_targets)
        outputs = ("main", *getattr(self.model, "aux_names", ()))
        for name in names:
            if name not in outputs:
                raise ConfigError(f"--extra-target {name}: the model has no output named {name!r} "
                                  f"(its outputs: {', '.join(outputs)})")
        for name in getattr(self.model, "task_classes", {}):
            if name not in names:
                raise ConfigError(f"the model's output {name!r} predicts its own target: "
                                  f"add --extra-target {name}")
        if not names:
            return {}, {}
        from ..finetune.targets import derive_target

        train, test = {}, {}
        for name in names:
            train[name] = derive_target(name, self.data.train.labels, self.data.classes).to(self.device)
            test[name] = derive_target(name, self.data.test.labels, self.data.classes).to(self.device)
        return train, test

    def _loss_weights(self) -> dict[str, float]:
        """Each output's loss weight: main 1, auxiliary heads the aux weight, task heads 1; --loss overrides."""
        aux = getattr(self.model, "aux_names", ())
        weights = {"main": 1.0} | {n: 1.0 if n in self.train_targets else self.aux_weight for n in aux}
        unknown = sorted(set(self.config.loss_weights) - set(weights))
        if unknown:
            raise ConfigError(f"--loss names {', '.join(unknown)}, which the model does not output "
                              f"(its outputs: {', '.join(weights)})")
        return weights | {k: float(v) for k, v in self.config.loss_weights.items()}

    # ----- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        model = getattr(self.model, "module", self.model)
        state = {
            "model": model.state_dict(),
            "model_name": getattr(model, "model_name", self.config.model),
            "model_options": dict(self.config.model_options),
            "num_classes": self.data.num_classes,
            "in_chans": getattr(model, "in_chans", self.data.image_shape[0]),
            "classes": list(self.data.classes),
            "image_size": list(self.image_size),
            # how a file becomes the input: squashed to the size, or (streamed data) its centre crop
            "preprocess": "center-crop" if self.streaming else "resize",
            "mean": list(self.mean),
            "std": list(self.std),
            "data": self.config.data,
            "config": json.dumps(self.config.to_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "partial": dict(self.partial),
            "history": json.dumps(self.history),
            "step_history": json.dumps(self.step_history),
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.epochs_since_best,
            "wall_seconds": self.wall_seconds,
            "rng_cpu": torch.get_rng_state(),
            "rng_aug": self.aug_generator.get_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            state["ema"] = self.ema.module.state_dict()
        if self.dist.enabled:  # every rank's random streams (a collective: all ranks call state_dict)
            state["rng_ranks"] = self.dist.gather(self._rng_state())
        return state

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state(), "aug": self.aug_generator.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        getattr(self.model, "module", self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.partial = dict(state["partial"])
        self.history = json.loads(state["history"])
        self.step_history = json.loads(state.get("step_history", "[]"))
        self.best_acc, self.best_epoch = float(state["best_acc"]), int(state["best_epoch"])
        self.epochs_since_best = int(state["epochs_since_best"])
        self.wall_seconds = float(state["wall_seconds"])
        torch.set_rng_state(state["rng_cpu"])
        self.aug_generator.set_state(state["rng_aug"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        if self.ema is not None and "ema" in state:
            self.ema.module.load_state_dict(state["ema"])
        if self.dist.enabled:
            ranks = state.get("rng_ranks")
            if ranks is not None and len(ranks) == self.dist.world_size:
                mine = ranks[self.dist.rank]
                torch.set_rng_state(mine["cpu"])
                self.aug_generator.set_state(mine["aug"])
                if "cuda" in mine and self.device.type == "cuda":
                    torch.cuda.set_rng_state(mine["cuda"], self.device)
            elif self.dist.rank:  # saved by another number of processes: fresh streams for this rank
                torch.manual_seed(self.config.seed + self.dist.rank + self.step * 1_000_003)
                self.aug_generator.manual_seed(self.config.seed + 1 + self.dist.rank * 1_000_003 + self.step)

    @classmethod
    def resume(cls, run_dir: str | Path, data: ImageData | None = None, **overrides: Any) -> Trainer:
        """Continue the run in `run_dir` from its last.pt: model, optimizer, schedule, RNG, metrics;
        `data` (the run's data set, already loaded) spares loading it again."""
        run_dir = Path(run_dir)
        config = TrainConfig.from_run(run_dir)
        config.output = str(run_dir)
        for key, value in overrides.items():
            setattr(config, key, value)
        state = load_checkpoint(run_dir / "last.pt")
        # The network the state was saved from (a fine-tuned one keeps its checkpoint's input channels,
        # which need not be the data's); the saved weights replace any initial ones, so the
        # init_from checkpoint is neither read nor needed.
        try:
            model = create_model(str(state["model_name"]), num_classes=int(state["num_classes"]),
                                 in_chans=int(state["in_chans"]), **dict(state.get("model_options", {})))
        except KeyError as err:
            raise CheckpointError(f"{run_dir / 'last.pt'} lacks {err}; it was not written by convolab train") from None
        trainer = cls(dataclasses.replace(config, init_from=None), data=data, model=model)
        trainer.config = config
        trainer.load_state_dict(state)
        return trainer

    def save(self, name: str) -> None:
        state = self.state_dict()  # on every rank: it gathers their random streams
        if self.dist.is_main:
            save_checkpoint(state, self.run_dir / name)

    # ----- the loop ----------------------------------------------------------------------------
    def _train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels, indices) of this rank's share of each remaining batch of the epoch,
        on the device; the order comes from (seed, epoch), so a resumed run needs no other state."""
        cfg = self.config
        if self.streaming:
            self.train_sampler.set_epoch(self.epoch, self.batch_in_epoch)
            for images, labels, index in self.data.batches(self.train_loader, self.data.train):
                yield (images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True),
                       index.to(self.device, non_blocking=True))
            return
        perm = epoch_permutation(len(self.train_labels), cfg.seed, self.epoch).to(self.device)
        while True:
            b = self.batch_in_epoch
            idx = self.dist.shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size])  # rank r of W: idx[r::W]
            yield self.train_images[idx], self.train_labels[idx], idx

    def _set_lr(self) -> float:
        lr = self.config.base_lr * lr_factor(self.step, self.total_steps, self.config.schedule, self.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # e.g. a fine-tuned backbone's lower rate
        return lr

    def _loss(self, outputs: dict[str, torch.Tensor], y: torch.Tensor,
              targets: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Weighted sum of each output's cross-entropy against its own target, else the labels."""
        smoothing, targets = self.config.label_smoothing, targets or {}
        weights = self.loss_weights
        loss = weights["main"] * F.cross_entropy(outputs["main"].float(), y, label_smoothing=smoothing)
        for name, logits in outputs.items():
            if name != "main":
                loss = loss + weights[name] * F.cross_entropy(
                    logits.float(), targets.get(name, y), label_smoothing=smoothing)
        return loss

    def _train_step(self, x: torch.Tensor, y: torch.Tensor,
                    targets: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(self.device, self.amp_dtype):
            outputs = self.forward_model(x)
        loss = self._loss(outputs, y, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        correct = (outputs["main"].detach().argmax(1) == y).sum()
        return loss.detach(), correct

    def _run_epoch(self) -> bool:
        """Train the rest of the current epoch; False if a stop signal arrived first."""
        cfg = self.config
        batches = self._train_batches()
        lr = self._set_lr()
        bar = _progress(self.steps_per_epoch, f"epoch {self.epoch + 1}/{cfg.epochs}",
                        cfg.progress and self.dist.is_main, initial=self.batch_in_epoch)
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device, dtype=torch.long)
        seen, start = 0, device_clock(self.device)
        self.model.train()
        try:
            while self.batch_in_epoch < self.steps_per_epoch:
                # Stop only where the partial sums were just folded, so a resumed run adds the
                # same numbers in the same order as an uninterrupted one.
                if seen == 0 and self._should_stop():
                    return False
                images, y, idx = next(batches)
                if len(y):  # (a streamed batch whose images were all unreadable and skipped is empty)
                    x = self.transform(images, train=True, generator=self.aug_generator)
                    targets = {name: t[idx] for name, t in self.train_targets.items()}
                    lr = self._set_lr()
                    loss, correct = self._train_step(x, y, targets)
                    loss_sum += loss * len(y)
                    correct_sum += correct
                    seen += len(y)
                self.step += 1
                self.batch_in_epoch += 1
                if self.batch_in_epoch % 10 == 0 or self.batch_in_epoch == self.steps_per_epoch:
                    now = device_clock(self.device)  # the queued steps are done: they count in full
                    self._fold_partial(loss_sum, correct_sum, seen, now - start, lr)
                    loss_sum.zero_()
                    correct_sum.zero_()
                    seen, start = 0, time.perf_counter()
                    p = self.partial
                    if not math.isfinite(p["loss"]):
                        raise NonFiniteLoss(
                            f"the training loss became {p['loss']} at step {self.step} (epoch {self.epoch + 1}); "
                            f"lower --lr (now {cfg.base_lr:g}) or add --clip-grad; {self.run_dir / 'last.pt'} "
                            "holds the last good state")
                    if bar is not None:
                        bar.set_postfix(loss=f"{p['loss'] / p['seen']:.4f}", acc=f"{p['correct'] / p['seen']:.4f}",
                                        lr=f"{lr:.2e}", img_s=f"{p['seen'] / max(p['seconds'], 1e-9):.0f}",
                                        refresh=False)
                        bar.update(self.batch_in_epoch - bar.n)
        finally:
            batches.close()
            if bar is not None:
                bar.close()
        return True

    def _fold_partial(self, loss_sum: torch.Tensor, correct_sum: torch.Tensor, seen: int, seconds: float,
                      lr: float) -> None:
        # Summed over the ranks; the seconds averaged, so that every rank sees the same clock
        # (a time budget must stop all of them after the same epoch).
        loss, correct, seen, seconds = self.dist.sum(loss_sum.item(), correct_sum.item(), seen, seconds)
        self.partial["loss"] += loss
        self.partial["correct"] += round(correct)
        self.partial["seen"] += round(seen)
        self.partial["seconds"] += seconds / self.dist.world_size
        if seen:
            self.step_history.append({
                "step": self.step, "epoch": self.epoch + self.batch_in_epoch / self.steps_per_epoch, "lr": lr,
                "train_loss": loss / seen, "train_acc": correct / seen, "train_error": 1 - correct / seen,
                "images": round(seen)})

    def _should_stop(self) -> bool:
        """A stop signal arrived (on any rank: all must stop at the same step, or the others would
        wait forever in the next all-reduce)."""
        stop = self.dist.any(self._stop_signal is not None)
        if stop and self._stop_signal is None:
            self._stop_signal = signal.SIGTERM
        return stop

    def _evaluate(self, model: nn.Module) -> dict[str, Any]:
        """Test loss and accuracy; with several processes each evaluates its share of the test set."""
        size = max(256, self.config.batch_size)
        targets = {name: self.test_targets.get(name, self.test_labels) for name in self.scored_outputs}
        if not self.dist.enabled:
            return evaluate(model, self.test_images, self.test_labels, self.eval_transform, size, self.device,
                            self.amp_dtype, targets=targets, batches=self._test_batches(size), tta=self.config.tta)
        self.dist.sync_buffers(model)  # rank 0's BN statistics, the ones its checkpoint holds
        labels = self.dist.shard(self.test_labels)
        shards = {name: self.dist.shard(t) for name, t in targets.items()}
        images = self.dist.shard(self.test_images) if self.test_images is not None else None
        result = evaluate(model, images, labels, self.eval_transform, size, self.device, self.amp_dtype,
                          targets=shards, batches=self._test_batches(size, shard=True), tta=self.config.tta)
        n = len(labels)
        keys = ["acc"] + [f"acc_{name}" for name in targets]
        loss, n_all, *corrects = self.dist.sum(result["loss"] * n, n, *(result[k] * n for k in keys))
        accs = {k: round(c) / max(1, n_all) for k, c in zip(keys, corrects, strict=True)}
        return {"loss": loss / max(1, n_all)} | accs

    def _test_batches(self, batch_size: int, shard: bool = False) -> Iterator | None:
        """Streamed data: the test split's batches (this rank's share), decoded by the workers; else None."""
        if not self.streaming:
            return None
        split = self.dist.shard(self.data.test) if shard else self.data.test
        return self.data.eval_batches(split, batch_size, pin_memory=self.device.type == "cuda")

    def _end_epoch(self) -> dict[str, Any]:
        eval_model = self.ema.module if self.ema is not None else self.model
        eval_start = device_clock(self.device)
        test = self._evaluate(eval_model)
        now = device_clock(self.device)
        eval_seconds = now - eval_start
        p = self.partial
        self.wall_seconds += p["seconds"]
        row = {
            "epoch": self.epoch + 1, "step": self.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": p["loss"] / max(1, p["seen"]), "train_acc": p["correct"] / max(1, p["seen"]),
            "test_loss": test["loss"], "test_acc": test["acc"],
            # What each time covers: train_seconds the training steps of this epoch (data waits
            # included, the device synchronized); eval_seconds the test-set evaluation; epoch_seconds
            # both; wall_seconds the training steps of all epochs so far (what --budget-seconds
            # counts); elapsed_seconds this command's time since the trainer began (data loading,
            # checkpoints and plots of earlier epochs included; a resumed run counts from its restart).
            "train_seconds": p["seconds"], "eval_seconds": eval_seconds, "epoch_seconds": p["seconds"] + eval_seconds,
            "images_per_second": p["seen"] / max(p["seconds"], 1e-9),
            "wall_seconds": self.wall_seconds, "elapsed_seconds": now - self.started,
        }
        row.update({f"test_acc_{name}": test[f"acc_{name}"] for name in self.scored_outputs})
        self.history.append(row)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        improved = row["test_acc"] > self.best_acc + self.config.min_delta
        if improved:
            self.best_acc, self.best_epoch, self.epochs_since_best = row["test_acc"], row["epoch"], 0
        else:
            self.epochs_since_best += 1
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        if self.dist.is_main:
            write_metrics(self.run_dir, self.history, self.step_history)
            title = f"{self.config.model} on {self.config.data}"
            plot_curves(self.history, self.run_dir / "curves.png", title)
        if self.tensorboard is not None:
            for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_second"):
                self.tensorboard.add_scalar(key, row[key], row["epoch"])
            self.tensorboard.flush()
        log.info("epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.0f img/s  %.1fs "
                 "(train %.1fs + test %.1fs; %.1fs since start)",
                 row["epoch"], self.config.epochs, row["train_loss"], row["train_acc"], row["test_loss"],
                 row["test_acc"], row["images_per_second"], row["epoch_seconds"], row["train_seconds"],
                 row["eval_seconds"], row["elapsed_seconds"])
        if self.scored_outputs:
            log.info("  test acc per output: %s",
                     ", ".join(f"{n} {row[f'test_acc_{n}']:.4f}" for n in self.scored_outputs))
        return row

    def fit(self) -> TrainResult:
        """Train to the configured number of epochs (or early stop, or the time budget); SIGINT/SIGTERM
        save and stop."""
        if self.dist.is_main:
            self._write_config()
        stopped_early = False
        with self._signals():
            while self.epoch < self.config.epochs:
                # Checked before each epoch, so a resumed run whose budget is spent trains no more.
                budget = self.config.budget_seconds
                if budget is not None and self.wall_seconds >= budget:
                    stopped_early = True
                    log.info("time budget of %gs reached after epoch %d (%.1fs of training)", budget,
                             self.epoch, self.wall_seconds)
                    break
                if not self._run_epoch():
                    self.save("last.pt")
                    raise TrainingInterrupted(
                        f"stopped by signal {self._stop_signal} in epoch {self.epoch + 1}; state saved to "
                        f"{self.run_dir / 'last.pt'}; continue with: convolab train --resume {self.run_dir}")
                self._end_epoch()
                if self.config.patience is not None and self.epochs_since_best >= self.config.patience:
                    stopped_early = self.epoch < self.config.epochs
                    if stopped_early:
                        log.info("early stop: no improvement of test accuracy for %d epochs", self.config.patience)
                    break
        if self.tensorboard is not None:
            self.tensorboard.close()
        last = self.history[-1] if self.history else {"test_acc": float("nan")}
        return TrainResult(self.run_dir, self.history, self.best_acc, self.best_epoch, last["test_acc"],
                           stopped_early)

    def _write_config(self) -> None:
        resolved = self.config.to_dict() | {"output": str(self.run_dir), "resolved": {
            "lr": self.config.base_lr, "device": str(self.device),
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
            "image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std),
            "augment": vars(self.transform.augment), "aux_weight": self.aux_weight,
            "steps_per_epoch": self.steps_per_epoch, "torch": torch.__version__,
            "processes": self.dist.world_size, "loss_weights": self.loss_weights,
            "init_from": self.init_report.to_dict() if self.init_report is not None else None,
        }}
        text = json.dumps(resolved, indent=1, default=str)
        atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(text))

    @contextlib.contextmanager
    def _signals(self):
        def handler(signum, _frame):
            self._stop_signal = signum

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _open_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return SummaryWriter(str(self.run_dir / "tensorboard"))


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, leave=False, dynamic_ncols=True, unit="batch")


def train(config: TrainConfig) -> TrainResult:
    """Build data and model from `config` and train."""
    return Trainer(config).fit()
