"""`convolab features CHECKPOINT --out features.npz`: pooled penultimate features with labels."""
from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

from .._paths import lies_within, probe_output, written
from ..data import DATA_SETS
from ..errors import ConfigError
from ..export.outputs import check_file_output
from ..finetune import extract_features, save_features
from ..training.checkpoint import load_checkpoint
from ..training.checkpoint_data import load_data_for
from ..training.device import resolve_device
from ._args import CHECKPOINT, nonempty, positive_int
from ._weights import add_pretrained_options, checkpoint_or_weights, data_of

HELP = ("write a checkpoint's pooled penultimate features of every train and test image, with labels "
        "and class names, to an .npz file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=nonempty(CHECKPOINT),
                        help="a best.pt / last.pt, a run folder, a safetensors "
                        "folder, or a model name with --pretrained")
    parser.add_argument("--data", type=nonempty("a data set name or an image folder/tar, or leave the option out "
                                                 "for the checkpoint's own data"),
                        help="data set name or image folder / tar (default: the checkpoint's, as the run "
                        "took them: its --train-subset and --test-subset if it had them; other data are used whole)")
    parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images, and images "
                        "whose colour mode or size differs from most (counted and named in a warning)")
    parser.add_argument("--data-dir", type=nonempty("a folder, or leave the option out"),
                        help="where torchvision data sets live (default: the run's --data-dir)")
    parser.add_argument("--out", default="features.npz", type=nonempty("a file name such as features.npz"),
                        help="output file; an existing one is replaced only if it is a features file, and "
                        "the data read (or a file inside its folder) is refused (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="images a forward pass takes (default: %(default)s; smaller spares memory)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    path = checkpoint_or_weights(args)
    checkpoint = load_checkpoint(path)
    if not isinstance(path, dict):  # the file its errors name (a record read elsewhere names its own source)
        checkpoint.setdefault("source", str(path))
    # before the features are computed: not the data read (first: a data folder given as --out was advised a file
    # inside it, then refused), nor the checkpoint read, nor a file a run or safetensors folder keeps
    source = data_of(args, checkpoint, "the images to compute the features of (a folder, a tar or a named set)")
    refuse_an_out_of_the_data(args.out, source)
    check_file_output(args.out, None if isinstance(path, dict) else path, example="features.npz",
                      writer="the features", instead="features.npz")
    refuse_a_file_not_of_features(args.out)
    probe_output(args.out, "--out", "file")
    data = load_data_for(checkpoint, source, args.data_dir, skip_bad_images=args.skip_bad_images, validation=True)
    arrays = extract_features(checkpoint, data, args.batch_size, resolve_device(args.device))
    with written(args.out, "--out", "file"):
        save_features(args.out, arrays)
    train, test = arrays["train_features"], arrays["test_features"]
    val = f", {len(arrays['val_features'])} val" if "val_features" in arrays else ""
    print(f"wrote {args.out}: {len(train)} train{val} and {len(test)} test feature vectors of "
          f"{train.shape[1]} values from {source} (keys: {', '.join(arrays)})")
    return 0


# What every file `convolab features` writes holds (an .npz is a zip of one .npy file an array).
FEATURES_ENTRIES = ("train_features.npy", "test_features.npy", "model_name.npy")


def refuse_an_out_of_the_data(out: str, source: str) -> None:
    """One line when --out is the data read (a labels CSV, a tar, an image) or lies inside its folder (links
    resolved): the features would replace what they are computed from, or be left among the images."""
    if source in DATA_SETS:  # (a named set: torchvision's files are not given here)
        return
    data = Path(source).expanduser()
    if not data.exists():  # (said by its loading)
        return
    read = data.resolve()
    if read == Path(read.anchor):  # (every path lies inside the root, which the data's loading refuses as data)
        return
    if not lies_within(Path(out).absolute(), read):  # (--out as the writer takes it: no ~)
        return
    if Path(out).exists() and os.path.samefile(out, read):
        raise ConfigError(f"--out {out} is the data the features are computed from ({source}), which the features "
                          "would replace; give another file, e.g. features.npz")
    raise ConfigError(f"--out {out} lies inside the data folder {source}: the features would be written among "
                      "its images (or over one); give a file outside it")


def refuse_a_file_not_of_features(out: str) -> None:
    """One line when --out is an existing file that is not a features file this verb wrote (an image, a CSV, an
    .npz of other arrays): the features would replace it; one it wrote is replaced, as a rerun's is."""
    path = Path(out)
    if not path.is_file():
        return
    try:
        with zipfile.ZipFile(path) as archive:
            wrote = set(FEATURES_ENTRIES) <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        wrote = False
    if not wrote:
        raise ConfigError(f"--out {out} exists and is not a features file `convolab features` wrote (an .npz of "
                          f"{', '.join(name[:-4] for name in FEATURES_ENTRIES)}...), which the features would "
                          "replace; give a new file, e.g. features.npz, or remove it first")
