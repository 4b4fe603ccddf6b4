"""The configuration of a training run: the one place every training option is declared.

Each field of `TrainConfig` carries its help text, its choices or bounds, its group and whether it may change when a
run is resumed. The CLI generates its options from these fields (convolab/cli/_options.py), and every value is
checked once, here, by `check_option` — from Python (`TrainConfig(epochs=0)`) and from the command line alike. A
library error names the Python field (`epochs must be a positive integer, got 0`); the CLI says the flag instead.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import re
import types
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._paths import same_path, user_path
from .._registry import registered_name, train_defaults
from ..data import LOADERS
from ..data.autoaugment import POLICIES
from ..data.decode import MIN_CROP_SCALE
from ..errors import ConfigError, FieldError, UnknownModelError, way_on
from .bounds import bounds_phrase, interval
from .config_record import DEFAULTED, LEGACY_VAL_FRACTION, RECORD, RECORD_REVISION, as_recorded_now
from .optim import DEFAULT_LR, OPTIMIZERS, SCHEDULES, WARMUP_MODES
from .recipes import RECIPES, recipe_values, unapplied

AMP_MODES = ("auto", "off", "bf16", "fp16")
AUGMENT_MODES = ("auto", "none", "crop", "flip", "crop-flip")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # those that capture CUDA graphs (on a GPU)
# Why an option cannot change on --resume, where the general reason (it shaped what was trained) fits it loosely.
RESUME_REFUSALS = {"monitor": "best.pt and the epochs `patience` counts were chosen by it"}
AUTO_AUGMENT_MODES = ("none", "autoaugment", *POLICIES)
TTA_MODES = ("none", "flip", "auto")
NORMALIZE_MODES = ("data", "model", "none")


def give_a_run_folder() -> str:
    """The folder of a run a line asks for: `convolab train`'s on the command line, a Trainer's from Python."""
    return way_on("give the `output` folder of a `convolab train` run",
                  "give the `output` folder of a run (a Trainer's)")


MONITOR = re.compile(r"test_(acc|loss)|test_(acc|mae)_\w+")


def option(default: Any, help: str, *, group: str = "run", choices: tuple | None = None,
           bounds: str | None = None, resume: bool = False, metavar: str | None = None, flag: str | None = None,
           cli: bool = True) -> Any:
    """A TrainConfig field. `bounds`: an interval such as "(0, inf)", "[0, 1)" or "[1, inf)" for numbers;
    `resume`: the option may change on a resumed run; `flag`: the CLI's name if not --field-name;
    `cli=False`: not a command-line option."""
    meta = {"help": help, "group": group, "choices": choices, "bounds": bounds, "resume": resume,
            "metavar": metavar, "flag": flag, "cli": cli}
    mutable = isinstance(default, (dict, list))
    return field(default_factory=type(default), metadata=meta) if mutable else field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every option of a training run, each checked when built; config.json holds it, the CLI's flags come from it."""

    model: str = option(MISSING, "model name (see `convolab models`)", cli=False)  # type: ignore[assignment]
    # data
    data: str = option("mnist5k", "mnist5k, digits, mnist, fashion-mnist, cifar10, cifar100, or an image folder "
                       "/ .tar / .tar.gz of one", group="data")
    data_dir: str | None = option(None, "where torchvision data sets live (default: $CONVOLAB_DATA, else "
                                  "convolab/data in $XDG_CACHE_HOME, else in ~/.cache)", group="data", resume=True)
    download: bool = option(False, "download a torchvision data set if missing", group="data")
    image_size: int | None = option(None, "train at this size (default: the model's input size)", group="data",
                                    bounds="[1, inf)")
    augment: str = option("auto", "auto: random crop and flips for colour images, none for grey digits",
                          group="data", choices=AUGMENT_MODES)
    random_erasing: float = option(0.0, "probability of erasing a random rectangle of each training image",
                                   group="data", bounds="[0, 1]", metavar="P")
    auto_augment: str = option("none", "a policy per training image, each its own draw, after crop and flip: "
                               "rand (RandAugment n=2 m=9), trivial (TrivialAugmentWide), autoaugment (the CIFAR-10 "
                               "policy up to 64 px, else ImageNet's) or autoaugment-cifar10/-imagenet",
                               group="data", choices=AUTO_AUGMENT_MODES)
    mixup: float = option(0.0, "mixup: blend each training image with another, weight ~ Beta(ALPHA, ALPHA) per "
                          "image, labels mixed alike in the loss (0: off)", group="data", bounds="[0, inf)",
                          metavar="ALPHA")
    cutmix: float = option(0.0, "CutMix: paste a box of another training image, its area ~ Beta(ALPHA, ALPHA) per "
                           "image, labels mixed by area (0: off; with --mixup each image picks one, 1/2 each)",
                           group="data", bounds="[0, inf)", metavar="ALPHA")
    tta: str = option("none", "test-time augmentation: flip scores the mean of the logits of each test image "
                      "and its mirror image; auto flips where training mirrors its images (colour images under "
                      "--augment auto), else none", group="data", choices=TTA_MODES)
    normalize: str = option("data", "use the data set's or the model's mean/std, or none (pixels in [0, 1], "
                            "as torchvision's ToTensor alone leaves them: d2l's recipes)", group="data",
                            choices=NORMALIZE_MODES)
    skip_bad_images: bool = option(False, "count and skip unreadable images", group="data")
    val_fraction: float | None = option(None, "hold out this fraction of each class of the training images to "
                                        "score each epoch on (best.pt, --patience); data with a test split of "
                                        "their own then keep it unseen, scored once at the end with best.pt "
                                        "(default: 0.1 of a folder without a test/ or val/ split or a labels CSV "
                                        "without a split column, which it then scores on; none of other data, "
                                        "scored each epoch on their test split)",
                                        group="data", bounds="[0, 1)", metavar="F")
    # (True in the record of an older convolab, whose --val-fraction was not used on data with a test split of their
    # own, given another value than its 0.1: the run resumes as it trained, on the whole training split)
    val_fraction_of_one_split: bool = option(False, "--val-fraction applies to folders of one split only (an "
                                             "older convolab's meaning)", group="data", cli=False)
    train_subset: int | None = option(None, "train on N of the training images (every class alike, the same "
                                      "ones each run)", group="data", bounds="[1, inf)", metavar="N")
    test_subset: int | None = option(None, "evaluate on N of the test images", group="data", bounds="[1, inf)",
                                     metavar="N")
    loader: str = option("auto", "image folders: cache small images once in memory, stream large ones from the "
                         "files through worker processes; auto picks by image size", group="data", choices=LOADERS)
    workers: int | None = option(None, "processes decoding streamed images (default: min(8, CPUs); 0: in the "
                                 "main process)", group="data", bounds="[0, inf)", metavar="N", resume=True)
    min_crop_scale: float = option(MIN_CROP_SCALE, "streamed training images are random-resized crops of S to 1 "
                                   "of the image area (as Inception)", group="data", bounds="(0, 1]", metavar="S")
    # optimization
    epochs: int = option(10, "epochs to train (train --resume: more than the run has, to extend it; the schedule "
                         "is then the one of a run of this length)", group="optimization", bounds="[1, inf)",
                         resume=True)
    batch_size: int = option(64, "images per step (with train --nproc: the global batch)", group="optimization",
                             bounds="[1, inf)")
    accumulate: int = option(1, "sum the gradients of N batches per optimizer step: an effective batch of "
                             "N x --batch-size (the schedule and --ema count optimizer steps)",
                             group="optimization", bounds="[1, inf)", metavar="N")
    lr: float | None = option(None, "base learning rate (default: the model's registered default, else 0.05 "
                              "for sgd, 2e-3 for adam/adamw, 0.045 for rmsprop, Inception-v3's)", group="optimization",
                              bounds="(0, inf)")
    optimizer: str = option("adamw", "the optimizer (rmsprop as Inception-v3 ran it: TensorFlow's RMSProp, decay "
                            "0.9, eps 1.0 inside the root)",
                            group="optimization", choices=OPTIMIZERS)
    momentum: float = option(0.9, "momentum (sgd, rmsprop) or beta1 (adam, adamw)", group="optimization",
                             bounds="[0, 1)")
    nesterov: bool = option(False, "Nesterov momentum (sgd with --momentum above 0; a warning elsewhere)",
                            group="optimization")
    weight_decay: float = option(5e-4, "weight decay", group="optimization", bounds="[0, inf)")
    decay_norm_and_bias: bool = option(False, "apply weight decay to norm and bias too", group="optimization")
    schedule: str = option("onecycle", "learning-rate schedule by step after the warm-up: step / 10 at 50% of the "
                           "steps, multistep also at 75%, cosine to 0, onecycle linear to 0", group="optimization",
                           choices=SCHEDULES)
    warmup_epochs: float | None = option(None, "warm-up, in epochs (at most half the run) (default: 1, none "
                                         "for --schedule constant)", group="optimization", bounds="[0, inf)")
    warmup_mode: str = option("linear", "the warm-up's rate: linear rises to --lr; constant trains at a tenth of it, "
                              "then at it (He et al. 2015's ResNet-110: 0.01 for about 400 iterations, then 0.1)",
                              group="optimization", choices=WARMUP_MODES)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", group="optimization",
                                    bounds="[0, 1)")
    aux_weight: float | None = option(None, "auxiliary-head loss weight (default: the paper's, 0.3 GoogLeNet, "
                                      "0.4 Inception-v3)", group="optimization", bounds="[0, inf)")
    clip_grad: float | None = option(None, "clip the gradient norm to NORM", group="optimization",
                                     bounds="(0, inf)", metavar="NORM")
    ema_decay: float | None = option(None, "evaluate an exponential moving average of the weights with this decay",
                                     group="optimization", bounds="(0, 1)", metavar="DECAY", flag="--ema")
    patience: int | None = option(None, "early stopping after this many epochs without improvement",
                                  group="optimization", bounds="[1, inf)", resume=True)
    min_delta: float = option(0.0, "early stopping: the least gain in --monitor (in its own units) that resets "
                              "--patience's count (best.pt keeps every new best)", group="optimization",
                              bounds="[0, inf)", resume=True)
    monitor: str = option("test_acc", "the epoch figure that picks best.pt and that --patience waits on: test_acc, "
                          "test_loss, or a labels CSV target's test_acc_COLUMN / test_mae_COLUMN (loss and MAE: "
                          "lower is better), each of the images every epoch is scored on (with --val-fraction on "
                          "data with a test split of their own: the validation images)", group="optimization",
                          metavar="METRIC")
    budget_seconds: float | None = option(None, "stop after the epoch in which training time reaches S seconds "
                                          "(--epochs still sets the schedule's length)", group="optimization",
                                          bounds="(0, inf)", metavar="S", resume=True)
    recipe: str | None = option(None, "a named set of option values that the options given on the command line "
                                "override; " + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values()),
                                group="optimization", choices=tuple(sorted(RECIPES)))
    # run
    seed: int = option(0, "random seed of initialization, data order and augmentation", bounds="[0, 4294967295]")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", resume=True)
    amp: str = option("auto", "mixed precision (auto: bf16 on CUDA, off on the CPU)", choices=AMP_MODES)
    channels_last: bool = option(True, "NHWC memory format: several times faster convolutions on CPU (oneDNN) and CUDA")
    grad_checkpointing: bool = option(False, "recompute blocks' activations in the backward pass: less memory, more "
                                      "time (about 1.4x)", resume=True)
    compile: bool = option(False, "torch.compile the model", resume=True)
    compile_mode: str = option("default", "torch.compile's mode with --compile; reduce-overhead replays the step's "
                               "kernels as CUDA graphs (fewer launches: for small networks whose GPU steps are bound "
                               "by launching kernels)", choices=COMPILE_MODES, resume=True)
    threads: int | None = option(None, "CPU threads of PyTorch in each process (default: one per core, less the "
                                 "cores other running processes keep busy when the command starts)", bounds="[1, inf)",
                                 metavar="N", resume=True)
    tensorboard: bool = option(False, "also log to RUN_DIR/tensorboard", resume=True)
    progress: bool = option(True, "no progress bar", flag="--no-progress", resume=True)
    memory_check: bool = option(True, "train even where the estimated memory exceeds the device's free memory "
                                "(refused otherwise)", flag="--no-memory-check", resume=True)
    output: str | None = option(None, "run folder (default: runs/MODEL-DATA[-N])")
    model_options: dict[str, Any] = option({}, "passed to the model constructor, e.g. aux_logits=false "
                                           "(repeatable)", metavar="KEY=VALUE", flag="--model-option")
    sync_bn: bool = option(False, "with several processes: batch-norm statistics over the whole global batch, so "
                           "N processes train the network of one (off: each process's share, as DDP does)")
    # transfer and several outputs (convolab/finetune)
    init_from: str | None = option(None, "start from the weights of a checkpoint that match by name and shape "
                                   "(the others are listed by name)", group="transfer and several outputs",
                                   metavar="CHECKPOINT")
    freeze_backbone: bool = option(False, "train only the classifier and other heads (the backbone's batch norm "
                                   "is frozen too)", group="transfer and several outputs")
    backbone_lr_scale: float | None = option(None, "the backbone learns at F x the learning rate (the heads at "
                                             "1 x)", group="transfer and several outputs", bounds="(0, inf)",
                                             metavar="F")
    loss_weights: dict[str, float] = option({}, "loss weight per model output, e.g. main=1.0,aux1=0.3,aux2=0.3 "
                                            "or main=1,parity=0.5", group="transfer and several outputs",
                                            metavar="NAME=W,...", flag="--loss")
    extra_targets: list[str] = option([], "a second target per image derived from its class, learnt by the "
                                      "output NAME: parity (digits: even/odd), vehicle (CIFAR-10: animal/vehicle) "
                                      "(repeatable)", group="transfer and several outputs", metavar="NAME",
                                      flag="--extra-target")
    targets: list[str] = option([], "a labels CSV's target columns, NAME or NAME:class / NAME:number (default: "
                                "every column but the inputs and split; the first class column is the main "
                                "target)", group="transfer and several outputs", metavar="NAME,...")
    inputs: list[str] = option([], "a labels CSV's input columns: the image column first, then a second image "
                               "column or numeric columns (e.g. image,image2 or image,height,weight)",
                               group="transfer and several outputs", metavar="NAME,...")

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, plain_number(f.name, getattr(self, f.name)))
            check_option(f.name, getattr(self, f.name))
        if isinstance(self.output, str) and self.output.startswith("~"):  # as --data's: the run folder, its lock and
            self.output = os.path.expanduser(self.output)  # the lines naming it on one path (not a folder "~")
        if self.freeze_backbone and self.backbone_lr_scale is not None:
            raise FieldError("backbone_lr_scale", f"{self.backbone_lr_scale:g} scales the backbone's learning rate, "
                                                  "but `freeze_backbone` trains no backbone: give one of the two")
        if self.compile_mode != "default" and not self.compile:
            raise FieldError("compile_mode", f"{self.compile_mode} is torch.compile's mode: give `compile` too")
        if self.compile and self.compile_mode in CUDA_GRAPH_MODES and self.accumulate > 1:
            # (a replay of the step's graphs would overwrite the gradients the earlier batches left in their pool)
            raise FieldError("accumulate", f"{self.accumulate} sums the gradients of several batches, which "
                                           f"`compile_mode` {self.compile_mode}'s CUDA graphs would overwrite; "
                                           "give `accumulate` 1 or `compile_mode` default")
        if (self.mixup or self.cutmix) and self.batch_size < 2:  # (a run with --nproc checks each process's share)
            name = "mixup" if self.mixup else "cutmix"
            raise FieldError(name, f"mixes the images of a batch, but `batch_size` {self.batch_size} holds one "
                                   f"image: give `batch_size` 2 or more, or leave out `{name}`")
        if taken := sorted(set(self.model_options) & {"num_classes", "in_chans"}):
            raise FieldError("model_options", f"{' and '.join(taken)} come from the data (its classes; 1 channel for "
                                              "grey images, 3 for colour), not from an option: leave them out")
        if not MONITOR.fullmatch(self.monitor):
            raise FieldError("monitor", f"must be test_acc, test_loss, test_acc_COLUMN or test_mae_COLUMN, got "
                                        f"{self.monitor!r}")
        if self.recipe and (problem := unapplied(self.recipe, vars(self), DEFAULTS)):
            raise FieldError("recipe", problem)

    @classmethod
    def from_recipe(cls, recipe: str, **options: Any) -> TrainConfig:
        """A config of the recipe's values, those in `options` overriding them (as `--recipe` with the flags given)."""
        return cls(**recipe_values(recipe, set(options)) | options, recipe=recipe)

    @property
    def warmup(self) -> float:
        """--warmup-epochs, else 1 epoch, none for a constant schedule (constant from its first step, as d2l's)."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return 0.0 if self.schedule == "constant" else 1.0

    @property
    def base_lr(self) -> float:
        """--lr, else the model's registered default, else the optimizer's."""
        if self.lr is not None:
            return self.lr
        return train_defaults(self.model).get("lr", DEFAULT_LR[self.optimizer])

    def for_model_named(self, name: str, options: dict[str, Any] | None = None) -> TrainConfig:
        """This config for a model built outside it (`Trainer(config, model=...)`), of registered name `name` ("" for
        none) and `options`: a registered one is recorded as `model` in place of `self.model` (config.json and the
        lines that name the run say what was trained); without --lr it trains at that model's registered rate,
        else the optimizer's default, not at the rate `self.model` registers; the rate is then recorded as given."""
        registered = registered_name(name) if name else None
        changes: dict[str, Any] = {}
        if registered is not None and registered != registered_name(self.model):
            changes.update(model=name, model_options=dict(options or {}))
        elif registered is not None and options is not None and dict(options) != self.model_options:
            changes["model_options"] = dict(options)  # (the options it was built with, e.g. img_size=16)
        if self.lr is None:
            lr = (train_defaults(registered) if registered else {}).get("lr", DEFAULT_LR[self.optimizer])
            try:
                current = self.base_lr
            except UnknownModelError:  # (`self.model` need not be a registered name when the model is given)
                current = None
            if lr != current:
                changes["lr"] = lr
        return dataclasses.replace(self, **changes) if changes else self

    def resumed_with(self, changes: dict[str, Any]) -> TrainConfig:
        """This run's config with `changes` for its resumption: only options that cannot change what the run computes
        (the device, threads, workers, progress...) may differ, and `epochs`, which extends (or shortens) the run: its
        learning-rate schedule becomes that of a run of the new length, from the step it stopped at. Any other change
        is refused, naming the field."""
        check_field_names(changes, "TrainConfig.resumed_with()")
        for name, value in changes.items():
            old = getattr(self, name)
            if value != old and not FIELDS[name].metadata["resume"]:
                had = "used its default" if old is None else f"has it {'on' if old else 'off'}" \
                    if isinstance(old, bool) else f"has {old!r}"  # (a flag's True: what --no-channels-last turns off)
                why = RESUME_REFUSALS.get(name, "it shaped the model, data, optimizer or schedule already trained")
                raise FieldError(name, f"cannot change when a run is resumed (the run {had}; {why}): leave it "
                                 "out, or start a new run")
        mode = changes.get("compile_mode", self.compile_mode)
        if changes.get("compile", self.compile) and mode in CUDA_GRAPH_MODES and self.accumulate > 1:
            # (__post_init__'s line would advise --accumulate 1, which a resumed run cannot take)
            raise FieldError("compile_mode", f"{mode}'s CUDA graphs would overwrite the gradients the run's "
                                             f"`accumulate` {self.accumulate} sums over several batches; leave it "
                                             "out or give `compile_mode` default")
        return dataclasses.replace(self, **changes)

    def differences_from(self, recorded: dict[str, Any]) -> list[str]:
        """The fields that shaped what a run trained (those `resumed_with` refuses to change; its folder aside,
        which may be moved) whose values differ from `recorded` (a checkpoint's config), as phrases."""
        own = json.loads(json.dumps(self.to_dict(), default=str))  # (as both were written: JSON)
        recorded = as_recorded_now(recorded)
        return [f"{name} {own[name]!r} there, {recorded[name]!r} in the checkpoint" for name, f in FIELDS.items()
                if not f.metadata["resume"] and name != "output" and name in recorded and own[name] != recorded[name]
                and not (name == "data" and same_path(own[name], recorded[name]))]  # (an older record: relative)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return asdict(self)

    def to_record(self) -> dict[str, Any]:
        """What config.json, a checkpoint, compare.json and experiment.json record: every field, and the record's
        revision (`as_recorded_now` reads an older one as it was meant). --val-fraction's default is recorded as
        0.1 and marked so (DEFAULTED): an older convolab, which refuses None, reads it as its own default, which
        holds out what None does."""
        values = self.to_dict() | {RECORD: RECORD_REVISION}
        if values["val_fraction"] is None:
            values |= {"val_fraction": LEGACY_VAL_FRACTION, DEFAULTED: True}
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config of `values`' known fields (others, e.g. a newer version's, ignored), checked as when built."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> TrainConfig:
        """`from_dict` of a record `to_record` wrote, or an older convolab (`as_recorded_now`)."""
        return cls.from_dict(as_recorded_now(values))

    @classmethod
    def from_run(cls, run_dir: str | Path) -> TrainConfig:
        """The config a run folder's config.json records; a ConfigError of one line where it is missing or bad."""
        path = user_path(run_dir) / "config.json"
        if not path.is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.json); {give_a_run_folder()}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            raise ConfigError(f"{path} cannot be read as a run's config ({str(err).splitlines()[0][:80]}); "
                              f"{give_a_run_folder()}") from None
        if not isinstance(values, dict) or "model" not in values or "epochs" not in values:
            raise ConfigError(f"{run_dir} is not a run folder: its config.json is not a training run's (a "
                              f"safetensors export's?); {give_a_run_folder()}")
        try:
            return cls.from_record(values)
        except FieldError as err:  # (named as the file's field, not as a flag the user never gave)
            raise ConfigError(f"{path}: {err}; the file was edited or damaged: restore the value the run was "
                              "started with") from None


FIELDS: dict[str, Field] = {f.name: f for f in fields(TrainConfig)}
DEFAULTS = {f.name: f.default for f in FIELDS.values() if f.default is not MISSING}


def check_field_names(names: typing.Iterable[str], call: str) -> None:
    """A TypeError naming the first of `names` that is no TrainConfig field, as TrainConfig(foo=1)'s says it, with
    the field spelled like it: `call` (e.g. "Trainer.resume()") took them as options (an AttributeError before)."""
    for name in names:
        if name not in FIELDS:
            hint = "".join(f"; did you mean {close}?" for close in difflib.get_close_matches(name, FIELDS, n=1))
            raise TypeError(f"{call} got an unexpected keyword argument {name!r}: not a TrainConfig field{hint}")


EMPTY_REFUSED = ("output", "data_dir", "init_from")  # paths, which "" does not name
_TYPES = typing.get_type_hints(TrainConfig)


def option_type(name: str) -> type:
    """The field's value type without None: int, float, str, bool, dict or list."""
    hint = _TYPES[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `int | None` -> int
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def resumable_options() -> list[str]:  # (the fields a resumed run may change)
    return [name for name, f in FIELDS.items() if f.metadata["resume"]]


def plain_number(name: str, value: Any) -> Any:
    """A whole number or a number of another type (numpy's int64 or float32, from np.arange or a sweep) as
    the Python int or float of the field `name`; any other value as it is (option_problem judges it)."""
    kind = option_type(name)
    if isinstance(value, (bool, int, float)):  # Python's own (an int where a float goes stays as given)
        return value
    if kind is int and isinstance(value, numbers.Integral) or kind is float and isinstance(value, numbers.Real):
        return kind(value)
    return value


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for the field `name` (a phrase such as "must be a positive integer,
    got 0"), or None: the one check of every option's type, choices and bounds."""
    meta, kind = FIELDS[name].metadata, option_type(name)
    if value is None and FIELDS[name].default is None:
        return None
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind in (int, float):
        numeric = isinstance(value, int) or (kind is float and isinstance(value, float))
        if not numeric or isinstance(value, bool):
            return f"must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        if meta["bounds"]:
            closed_low, low, high, closed_high = interval(meta["bounds"])
            inside = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
            if not inside or (kind is float and math.isnan(value)):
                return f"{bounds_phrase(kind, meta['bounds'])}, got {value}"
        return None
    if kind is str:
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if value == "" and name in EMPTY_REFUSED:  # ("" is not "left out": a typo, or a shell variable unset)
            return "is empty; give a path, or leave the option out"
        choices = meta["choices"]
        if choices and value not in choices:
            return f"must be one of {', '.join(choices)}, got {value!r}"
        return None
    if kind is dict and name == "loss_weights":
        if not isinstance(value, dict):
            return f"must map each output to a weight >= 0, such as {{'main': 1.0, 'aux1': 0.3}}, got {value!r}"
        bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))
               or not 0 <= v < float("inf")}
        return f"must map each output to a weight >= 0, got {bad}" if bad else None
    if kind is dict:
        return None if isinstance(value, dict) else f"must be a dict, got {value!r}"
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else f"must be a list of names, got {value!r}"
    return None


def check_option(name: str, value: Any) -> None:
    if (problem := option_problem(name, value)) is not None:
        raise FieldError(name, problem)

