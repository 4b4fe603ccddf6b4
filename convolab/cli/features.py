"""`convolab features CHECKPOINT --out features.npz`: pooled penultimate features with labels."""
from __future__ import annotations

import argparse

from .._paths import probe_output, written
from ..export.outputs import check_file_output
from ..finetune import extract_features, save_features
from ..training.checkpoint import load_checkpoint
from ..training.device import resolve_device
from ..training.inference import load_data_for
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
                        help="output file (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    path = checkpoint_or_weights(args)
    checkpoint = load_checkpoint(path)
    if not isinstance(path, dict):  # the file its errors name (a record read elsewhere names its own source)
        checkpoint.setdefault("source", str(path))
    # before the features are computed: not the checkpoint read, nor a file a run or safetensors folder keeps
    check_file_output(args.out, None if isinstance(path, dict) else path, example="features.npz",
                      writer="the features", instead="features.npz")
    probe_output(args.out, "--out", "file")
    source = data_of(args, checkpoint, "the images to compute the features of (a folder, a tar or a named set)")
    data = load_data_for(checkpoint, source, args.data_dir, skip_bad_images=args.skip_bad_images)
    arrays = extract_features(checkpoint, data, args.batch_size, resolve_device(args.device))
    with written(args.out, "--out", "file"):
        save_features(args.out, arrays)
    train, test = arrays["train_features"], arrays["test_features"]
    print(f"wrote {args.out}: {len(train)} train and {len(test)} test feature vectors of "
          f"{train.shape[1]} values from {source} (keys: {', '.join(arrays)})")
    return 0
