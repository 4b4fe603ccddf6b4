"""Building a training run from its config: every part the loop reads, made once, in a fixed order.

`build_run` goes: the process (device, process group, precision, threads, seed), the data, the model
(and the weights it starts from), the input (size, batch source, normalization, transforms), the
outputs (targets and loss weights), the optimization (SyncBN, freezing, optimizer, scaler, EMA,
DDP and torch.compile), the schedule's lengths, and the run folder. The order is part of the result:
the random streams are drawn in it, so the same config gives the same run.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._paths import probe_output, writable_output
from .._registry import train_defaults
from ..data.augment import AugmentConfig, BatchTransform
from ..data.autoaugment import resolve_policy
from ..data.base import LabelledImages
from ..data.labels_csv import TabularImages
from ..errors import ConfigError, DataError, FieldError, UnknownModelError, way_on
from ..layers.checkpointing import set_grad_checkpointing
from ..models import DataConfig, create_model
from ..models._features import FeatureListNet
from ..models._modes import modes_kept
from ..models._probe import probe_forward
from .batches import BatchSource, VectorBatches, VectorInputs, batch_source, unused_options
from .checkpoint import check_layout, load_checkpoint, served_weights
from .config import TrainConfig
from .device import check_threads, resolve_amp, resolve_device, start_compiling
from .distributed import Distributed
from .forecast import check_batch_statistics, check_cost, main_output
from .input_size import check_input_size, check_size_before_data
from .mixing import MixConfig
from .optim import ModelEma, optimizer_of, param_groups, warmup_length
from .process import streams_held
from .run_data import check_batch_size, config_subsets, load_run_data, validation_split
from .rundir import default_run_dir, prepare_run_dir, refuse_output_inside_data
from .sync_bn import convert_sync_batchnorm
from .targets import extra_targets
from .transfer import LoadReport, backbone_lr_groups, freeze_backbone, load_matching

log = logging.getLogger("convolab")


@dataclass(kw_only=True)
class Run:
    """The parts of a training run, as `build_run` made them; what the loop and the checkpoint read. (Built by
    keyword: several fields share a type, and a field put in the wrong place would be taken silently.)"""

    config: TrainConfig
    started: float  # perf_counter at the start of building: elapsed_seconds counts data loading too
    device: torch.device
    dist: Distributed
    amp_dtype: torch.dtype | None
    data: LabelledImages  # as the batch source holds them (streamed images: decoded as the model needs)
    model: nn.Module
    init_report: LoadReport | None  # what config.init_from loaded and skipped
    batches: BatchSource
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    transform: BatchTransform  # training batches: augmentation, then normalization
    eval_transform: BatchTransform
    aux_weight: float
    train_targets: dict[str, torch.Tensor]  # derived targets of the outputs that have their own
    test_targets: dict[str, torch.Tensor]
    loss_weights: dict[str, float]
    want_aux: bool  # the forward pass returns the auxiliary outputs (some have a loss weight)
    scored_outputs: list[str]  # outputs scored per epoch besides main
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEma | None
    forward_model: nn.Module  # the model's training outputs, under DDP and torch.compile if asked
    steps_per_epoch: int  # optimizer steps (each --accumulate batches)
    total_steps: int
    warmup_steps: int
    aug_generator: torch.Generator
    run_dir: Path | None  # None: a run that writes nothing (lr-find's)
    tensorboard: Any  # a SummaryWriter on rank 0 with --tensorboard, else None
    mixing: MixConfig  # mixup and CutMix of the transformed training batches
    batches_per_epoch: int  # the batches an epoch trains: steps_per_epoch x --accumulate
    step_images: Any = 0.0  # the images of the optimizer step under way, where its batches add their sums (loop.py)

    def resolved(self) -> dict[str, Any]:
        """What the options became, for config.json."""
        return {
            "lr": self.config.base_lr, "device": str(self.device), "threads": torch.get_num_threads(),
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
            "image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std),
            "augment": vars(self.transform.augment), "aux_weight": self.aux_weight,
            "steps_per_epoch": self.steps_per_epoch, "batches_per_epoch": self.batches_per_epoch,
            "warmup_steps": self.warmup_steps,  # --warmup-epochs in steps, at most half the run's
            "effective_batch_size": self.config.batch_size * self.config.accumulate,
            "mixing": vars(self.mixing), "torch": torch.__version__,
            "processes": self.dist.world_size, "loss_weights": self.loss_weights,
            "init_from": self.init_report.to_dict() if self.init_report is not None else None,
            # --val-fraction's validation images held out of data with a test split of their own (None: none)
            "validation": None if self.data.unseen_test is None else {
                "images": len(self.data.test), "unseen_test_images": len(self.data.unseen_test)},
            "test_split": "held out" if self.data.held_out and self.data.unseen_test is None else "own",
        }


@streams_held  # (it seeds torch's global streams, then draws the split and weights: one build at a time, any thread)
def check_given_outputs(model: nn.Module, data: LabelledImages, size: int | None = None) -> None:
    """One line where a model given to train has other outputs than the data have classes (else torch's IndexError
    at the first step for fewer, and outputs no image trains for more): its `num_classes`, as convolab's and timm's
    models say it, or, for a model without one, the width of its logits for one zero image (in eval mode)."""
    if isinstance(model, FeatureListNet):  # (its maps probed at the data's size: "too small" for digits' 8 px)
        raise ConfigError("the model given gives feature maps (built with features_only=True), not logits: build it "
                          "without features_only to train it, or put a head of your own on it")
    if isinstance(data, TabularImages):
        return
    classes, outputs = len(data.classes), getattr(model, "num_classes", None)
    if isinstance(outputs, int):
        if outputs != classes:
            raise ConfigError(f"the model given has {outputs} outputs (`num_classes`) and {data.name} has {classes} "
                              f"classes: build it with num_classes={classes}, or call its reset_classifier({classes})")
        return
    channels, height, width = data.image_shape
    logits = probe_forward(model, (channels, size or height, size or width), run=main_output)
    logits = logits[0] if isinstance(logits, (tuple, list)) and logits else logits
    if isinstance(logits, torch.Tensor) and logits.dim() == 2 and logits.shape[1] != classes:
        raise ConfigError(f"the model given gives {logits.shape[1]} outputs an image and {data.name} has {classes} "
                          f"classes: make its last layer give {classes}")


def materialized(model: nn.Module, data: LabelledImages, size: int | None) -> None:
    """A model given with lazy modules (torch's LazyLinear, ...) made whole by one forward pass of a zero batch of the
    data's images, as torch advises (otherwise "Attempted to use an uninitialized parameter" from inside the build)."""
    if isinstance(data, TabularImages) or not any(isinstance(p, nn.parameter.UninitializedParameter)
                                                  for p in model.parameters()):
        return
    channels, height, width = data.image_shape
    with torch.no_grad(), modes_kept(model):
        model.eval()
        model(torch.zeros(2, channels, size or height, size or width))


def build_run(config: TrainConfig, data: LabelledImages | None = None, model: nn.Module | None = None, *,
              folder: bool = True) -> Run:
    """The run `config` describes; `data` (already loaded) and `model` (built) replace what it names; without
    `folder`, one that writes nothing (no run folder is made: `run_dir` None; no TensorBoard log)."""
    started = time.perf_counter()
    if folder:
        refuse_output_inside_data(config)
    device, dist, amp_dtype = start_process(config)
    out = Path(config.output) if config.output else default_run_dir(config)
    if folder and dist.is_main and not (out / "config.json").exists():  # (a new run; one rank: another's would race
        writable_output(out, "`output`", create=False)  # it; a resumed run's own folder fails as it writes, said so)
        probe_output(out, "`output`")  # (a disk full or read-only, said before the data load)
    # (before the data: a size the model cannot take, refused before they are decoded at it)
    probed = model is None and check_size_before_data(config.model, dict(config.model_options), config.image_size,
                                                      device)
    torch.manual_seed(config.seed)
    data = validation_split(config, config_subsets(config, data) if data is not None else load_run_data(config, dist))
    if not len(data.test):  # (data built in Python: a folder's loader refuses an empty split itself)
        raise DataError(f"{data.name} has no test images: each epoch scores the run on them (best.pt, "
                        "`patience`); give data with a test split")
    check_batch_size(config.batch_size, len(data.train), dist.world_size)
    init_report = None
    if model is None:
        model, init_report = create_run_model(config, data)
    else:
        config = config.for_model_named(getattr(model, "model_name", ""), getattr(model, "model_options", None))
        materialized(model, data, config.image_size)
        check_given_outputs(model, data, config.image_size)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # (the model's own set_grad_checkpointing where it has one: convolab's, a cut model's refusal, timm's; else the
    # Checkpointed blocks found in it)
    own = getattr(model, "set_grad_checkpointing", None) if config.grad_checkpointing else None
    blocks = (own() if callable(own) else set_grad_checkpointing(model)) if config.grad_checkpointing else None
    if blocks == 0 and dist.is_main:
        log.warning("`grad_checkpointing` is not used: %s has no block convolab's checkpointing knows (a user's own "
                    "model: torch.utils.checkpoint in its forward)", getattr(model, "model_name", "") or "the model")

    # The input: its size, where its batches come from, its statistics and the batch transforms.
    data_cfg = getattr(model, "data_config", None)
    size = config.image_size or (data_cfg.input_size[-1] if data_cfg else data.image_shape[-1])
    in_chans = getattr(model, "in_chans", data.image_shape[0])
    default_size = data_cfg.input_size[-1] if data_cfg else data.image_shape[-1]
    name = getattr(model, "model_name", config.model)
    if config.image_size and config.image_size != default_size and not probed:  # (the model's own size, or one
        check_input_size(model, name, in_chans, size, default_size, device)  # probed before the data: no probe)
    check_batch_statistics(model, name, config.batch_size, dist.world_size, in_chans, size, device)
    check_cost(model, name, in_chans, size, data.image_shape[-1],
               -(-config.batch_size // dist.world_size), len(data.train) // dist.world_size, device,
               amp_dtype is not None, config.channels_last, config.optimizer, config.memory_check, say=dist.is_main)
    images = len(getattr(data, "image_columns", ("image",)))  # (a labels CSV's item: its images stacked)
    augment = augment_for(config.augment, (data.image_shape[0] // images, *data.image_shape[1:]),
                          config.random_erasing, config.auto_augment, size)
    if config.tta == "auto":  # recorded as what it became: evaluate and a resumed run read that (a labels CSV's
        # numeric inputs, which a mirror image would not go with: none)
        flip = augment.flip and getattr(data.train, "vectors", None) is None
        config = dataclasses.replace(config, tta="flip" if flip else "none")
    mixing = mixing_for(config, dist)
    batches = batch_source(data, device, dist, config.batch_size, config.seed, augment, size, config.min_crop_scale)
    if dist.is_main and (unused := unused_options(config.workers, config.min_crop_scale, config.sync_bn,
                                                  batches.streamed, dist.enabled)):
        log.warning("not used by this run: %s", "; ".join(unused))
    mean, std = input_statistics(config, model, batches.data, in_chans, say=dist.is_main)
    transform = BatchTransform(in_chans, (size, size), mean, std, batches.batch_augment, config.channels_last)
    eval_transform = BatchTransform(in_chans, (size, size), mean, std, AugmentConfig(), config.channels_last)
    if isinstance(batches, VectorBatches):  # a labels CSV's numeric inputs: (images, numbers) pairs
        transform, eval_transform = VectorInputs(transform), VectorInputs(eval_transform)

    # The outputs: each one's target and loss weight.
    aux_weight = config.aux_weight if config.aux_weight is not None else registered_aux_weight(model, config)
    train_targets, test_targets = extra_targets(config, model, batches, data.classes)
    loss_weights = output_loss_weights(config, model, train_targets, aux_weight)
    if config.aux_weight is not None and set(loss_weights) <= {"main", *train_targets} and dist.is_main:
        log.warning("`aux_weight` %g is not used: %s has no auxiliary heads (%s)", config.aux_weight, config.model,
                    way_on(f"`convolab models {config.model}` says whether an aux_logits option gives it some",
                           "googlenet, googlenet_tv and inception_v3 have them, built with aux_logits=True"))
    if "aux_drop_rate" in config.model_options and not getattr(model, "aux_names", ()) and dist.is_main:
        log.warning("`model_options` aux_drop_rate is not used: %s is built without auxiliary heads (add "
                    "`model_options` aux_logits=true to build them)", config.model)
    want_aux = any(w > 0 for name, w in loss_weights.items() if name != "main")
    scored_outputs = [n for n in loss_weights if n != "main"] if want_aux else []
    check_monitor(config.monitor, scored_outputs, train_targets)
    note, data.subset_note = data.subset_note, None  # (config_subsets': once, for the first run on these data)
    if note and dist.is_main:
        log.info("%s", note)

    # The optimization.
    if config.sync_bn and dist.enabled:  # BN statistics of the global batch, as one process has
        model = convert_sync_batchnorm(model, device)
    optimizer = optimizer_of(config, trainable_groups(config, model))
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = ModelEma(model, config.ema_decay) if config.ema_decay else None
    forward: nn.Module = TrainingOutputs(model, want_aux)
    if dist.enabled:
        forward = dist.wrap(model, forward)
        torch.manual_seed(config.seed + dist.rank)  # own dropout masks per rank (same init before)
    forward_model = torch.compile(forward, mode=None if config.compile_mode == "default" else config.compile_mode) \
        if config.compile else forward

    batches_per_epoch, steps_per_epoch = epoch_lengths(len(batches.train_labels), config.batch_size,
                                                       config.accumulate)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = warmup_length(config, steps_per_epoch, say=folder and dist.is_main)  # (lr-find sets each lr)
    aug_generator = torch.Generator(device=device).manual_seed(config.seed + 1 + dist.rank * 1_000_003)
    # Rank 0 names and creates the run folder (a default name depends on what exists); no TensorBoard: said before.
    writer = tensorboard_writer() if folder and config.tensorboard and dist.is_main else None
    made = prepare_run_dir(config.output or default_run_dir(config, create=True)) if folder and dist.is_main else None
    run_dir = Path(dist.broadcast(str(made) if made else None)) if folder else None
    tensorboard = writer(str(run_dir / "tensorboard")) if writer else None
    if isinstance(getattr(model, "data_config", None), DataConfig):  # what the model is trained on, as its own
        model.data_config = dataclasses.replace(model.data_config, mean=tuple(mean), std=tuple(std))  # (exports;
        if ema is not None:  # once every check passed: a Trainer refused leaves a given model as it was)
            ema.module.data_config = model.data_config
    return Run(config=config, started=started, device=device, dist=dist, amp_dtype=amp_dtype, data=batches.data,
               model=model, init_report=init_report, batches=batches, image_size=(size, size), mean=mean, std=std,
               transform=transform, eval_transform=eval_transform, aux_weight=aux_weight, train_targets=train_targets,
               test_targets=test_targets, loss_weights=loss_weights, want_aux=want_aux, scored_outputs=scored_outputs,
               optimizer=optimizer, scaler=scaler, ema=ema, forward_model=forward_model,
               steps_per_epoch=steps_per_epoch, total_steps=total_steps, warmup_steps=warmup_steps,
               aug_generator=aug_generator, run_dir=run_dir, tensorboard=tensorboard, mixing=mixing,
               batches_per_epoch=batches_per_epoch)


# ----- the process ---------------------------------------------------------------------------------
def start_process(config: TrainConfig) -> tuple[torch.device, Distributed, torch.dtype | None]:
    """The device, this process's place in the job (joined: one GPU per process), and the precision."""
    device = resolve_device(config.device)
    dist = Distributed.from_env(device)
    dist.check_batch_size(config.batch_size)
    device = dist.device(device)
    if not dist.is_main:
        log.setLevel(logging.WARNING)  # rank 0 reports for all
    amp_dtype = resolve_amp(config.amp, device)
    if config.compile:  # (a C++ compiler on the CPU; a line for CUDA graphs where there are none)
        start_compiling(device, config.compile_mode)
    if device.type == "cuda":  # fixed input shapes: cuDNN times its algorithms once and keeps the fastest
        torch.backends.cudnn.benchmark = True
    if config.threads:
        check_threads(config.threads)
        torch.set_num_threads(config.threads)
    return device, dist, amp_dtype


def epoch_lengths(train_images: int, batch_size: int, accumulate: int) -> tuple[int, int]:
    """The batches an epoch trains and its optimizer steps: the last partial batch is dropped, and so are
    the batches after the last whole group of `accumulate` (an optimizer step sums the gradients of one)."""
    batches = max(1, train_images // batch_size)
    if accumulate > batches:
        raise FieldError("accumulate", f"is {accumulate} but an epoch has only {batches} batches of {batch_size} "
                                       f"({train_images} training images), too few for one optimizer step; "
                                       f"give at most {batches}")
    return batches // accumulate * accumulate, batches // accumulate


# ----- the model and its input ---------------------------------------------------------------------
def create_run_model(config: TrainConfig, data: LabelledImages) -> tuple[nn.Module, LoadReport | None]:
    """The config's model for the data's classes and channels, with the weights of config.init_from
    that match by name and shape (every skipped name logged)."""
    name, options = config.model, dict(config.model_options)
    if isinstance(data, TabularImages):  # a head per target column, on the config's model as the backbone
        name, options = "multitask", data.model_options(config.model, options)
    model = create_model(name, num_classes=data.num_classes, in_chans=data.image_shape[0], **options)
    if not config.init_from:
        return model, None
    state = load_checkpoint(config.init_from)
    check_layout(state, config.init_from)  # (weights of an older layout would load by name and mean something else)
    report = load_matching(model, served_weights(state))
    log.info("init from %s: %s", config.init_from, report.summary())
    return model, report


def augment_for(mode: str, image_shape: tuple[int, int, int], erasing: float, auto_augment: str = "none",
                size: int | None = None) -> AugmentConfig:
    """'auto': crop with padding size/8 and flips for colour images; none for grey digits, where
    short runs learn faster without (a mirrored 2 is not a 2, and a shifted digit costs epochs). The crop is
    made at the model's input size `size` (after resizing the images to it), so its padding is an eighth of
    that, not of the images' own size. `auto_augment` 'autoaugment' becomes the CIFAR-10 policy at `size` <= 64
    px, else ImageNet's."""
    pad = max(1, round((size or image_shape[-1]) / 8))
    if mode == "auto":
        mode = "crop-flip" if image_shape[0] == 3 else "none"
    policy = resolve_policy(auto_augment, size or image_shape[-1])
    return AugmentConfig(crop_padding=pad if "crop" in mode else 0, flip="flip" in mode, erasing=erasing,
                         auto_augment=policy)


def check_monitor(monitor: str, scored: list[str], targets: dict[str, torch.Tensor]) -> None:
    """--monitor must name a figure the run's epochs will have: each scored output's test_acc_NAME, or
    test_mae_NAME where its target is numbers."""
    figures = ["test_acc", "test_loss"] + [
        f"test_{'mae' if n in targets and targets[n].is_floating_point() else 'acc'}_{n}" for n in scored]
    if monitor not in figures:
        raise FieldError("monitor", f"{monitor} is not a figure of this run; it has {', '.join(figures)}")


def mixing_for(config: TrainConfig, dist: Distributed) -> MixConfig:
    """Mixup and CutMix as asked; refused where each process's batch holds one image (nothing to mix with)."""
    mixing = MixConfig(config.mixup, config.cutmix)
    if mixing.enabled and config.batch_size // dist.world_size < 2:
        name = "mixup" if config.mixup > 0 else "cutmix"
        share, least = config.batch_size // dist.world_size, 2 * dist.world_size
        raise FieldError(name, f"mixes the images of a batch, but each process's batch holds {share}; give "
                               f"`batch_size` {least} or more (2 a process)")
    return mixing


FLAT_STD = 1e-3  # a channel of the training images with a std below this is one value everywhere: divided by 1


def input_statistics(config: TrainConfig, model: nn.Module, data: LabelledImages, in_chans: int,
                     say: bool = True) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std inputs are normalized by: the model's (--normalize model, where it
    has a data config), none (0 and 1: pixels in [0, 1]) or the training images' (averaged over the channels
    where the model's differ), a channel of one value everywhere divided by 1, not by its std of 0 (every input
    was NaN, and the run stopped on a NaN loss, blaming --lr), with a warning (`say`)."""
    if config.normalize == "none":
        return (0.0,) * in_chans, (1.0,) * in_chans
    data_cfg = getattr(model, "data_config", None)
    if config.normalize == "model" and data_cfg is not None:
        return tuple(data_cfg.mean), tuple(data_cfg.std)
    mean, std = data.channel_stats(in_chans)  # as the model sees them: colour images made grey, grey made colour
    if len(mean) != in_chans:  # (several images stacked: the mean over their channels)
        mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
    if (flat := [i for i, s in enumerate(std) if not s >= FLAT_STD]) and say:
        log.warning("channel%s %s of the training images %s one value everywhere (std %s): normalized by std 1, "
                    "not by it", "s" * (len(flat) > 1), ", ".join(map(str, flat)), "have" if len(flat) > 1 else
                    "has", ", ".join(f"{std[i]:.2g}" for i in flat))
    return tuple(mean), tuple(s if s >= FLAT_STD else 1.0 for s in std)


# ----- the outputs ---------------------------------------------------------------------------------
def registered_aux_weight(model: nn.Module, config: TrainConfig) -> float:
    """The auxiliary heads' loss weight the model registers (its paper's, in `train_defaults`), else 0."""
    try:
        defaults = train_defaults(getattr(model, "model_name", ""))
    except UnknownModelError:  # a model built outside the registry (and no model_name: not config.model's)
        return 0.0
    return float(defaults.get("aux_weight", 0.0))


def output_loss_weights(config: TrainConfig, model: nn.Module, train_targets: dict[str, torch.Tensor],
                        aux_weight: float) -> dict[str, float]:
    """Each output's loss weight: main 1, auxiliary heads the aux weight, task heads 1; --loss overrides
    (the main output also by its target column's name, e.g. species=1)."""
    aux = getattr(model, "aux_names", ())
    weights = {"main": 1.0} | {n: 1.0 if n in train_targets else aux_weight for n in aux}
    main_name = getattr(model, "main_name", "main")
    given = {("main" if k == main_name else k): float(v) for k, v in config.loss_weights.items()}
    unknown = sorted(set(given) - set(weights))
    if unknown:
        outputs = [main_name if n == "main" else n for n in weights]
        raise ConfigError(f"`loss_weights` names {', '.join(unknown)}, which the model does not output "
                          f"(its outputs: {', '.join(outputs)})")
    if not any((weights | given).values()):  # (the loss would be 0: nothing learnt, the weights only decayed)
        weighed = ", ".join(f"{k}={v:g}" for k, v in given.items())
        raise ConfigError(f"`loss_weights` weighs every output 0 ({weighed}); give at least one a weight above 0")
    return weights | given


def model_outputs(model: nn.Module, x: torch.Tensor, want_aux: bool) -> dict[str, torch.Tensor]:
    """`{"main": logits}`; with `want_aux`, every output of a model's `forward_outputs` (aux and task heads') too."""
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
        """A batch -> {"main": N x num_classes logits, and with `want_aux` each head's output by name}."""
        return model_outputs(self.model, x, self.want_aux)


# ----- the optimization and the run folder --------------------------------------------------------
def trainable_groups(config: TrainConfig, model: nn.Module) -> list[dict]:
    """The optimizer's parameter groups: decay and no-decay; a frozen backbone left out (its BN layers
    frozen), or given its own groups at --backbone-lr-scale."""
    if config.freeze_backbone:
        freeze_backbone(model)
    groups = param_groups(model, config.weight_decay, config.decay_norm_and_bias)
    if config.backbone_lr_scale is not None:
        groups = backbone_lr_groups(model, groups, config.backbone_lr_scale)
    return groups


def tensorboard_writer() -> Any:
    """torch's SummaryWriter class; one line when the optional tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("`tensorboard` needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter


__all__ = ["Run", "TrainingOutputs", "augment_for", "build_run", "model_outputs"]
