"""`convolab finetune CHECKPOINT --data NEW` (or `MODEL --pretrained`): a trained model with a new head,
trained on new data."""
from __future__ import annotations

import argparse

from ..finetune import finetune_trainer, pretrained_defaults
from ..training.final_test import split_sizes
from ..training.rundir import refuse_to_overwrite_a_run
from ._args import CHECKPOINT, nonempty
from ._options import add_config_options, config_from_args, given_config
from ._results import closing_lines
from ._weights import add_pretrained_options, checkpoint_or_weights, wants_pretrained

HELP = ("fine-tune a checkpoint or a model's published weights (MODEL --pretrained) on new data: new head "
        "(--until LAYER: only the layers up to LAYER), --freeze-backbone or --backbone-lr-scale; ends with "
        "`test accuracy: 0.xxxx`")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=nonempty(CHECKPOINT),
                        help="a best.pt / last.pt, a run folder, a safetensors "
                        "folder, or a model name with --pretrained (then by default --normalize model and "
                        "--backbone-lr-scale 0.1, at the weights' input size)")
    parser.add_argument("--until", metavar="LAYER", type=nonempty("a layer name, or leave the option out"),
                        help="keep the layers up to LAYER (e.g. inception4e) + global pool + new head")
    add_config_options(parser, skip=("init_from", "sync_bn", "model_options"),  # (the checkpoint fixes its model)
                       help={"epochs": "epochs to fine-tune (a fine-tuned run is extended as any run: convolab train "
                                       "--resume RUN --epochs N)",
                             "inputs": "a labels CSV's input columns, the image column first (default: the "
                                       "checkpoint's, e.g. image,image2, where the CSV has those columns)",
                             "targets": "a labels CSV's target columns (default: every column but the inputs and "
                                        "split); a labels-CSV run's heads of the others are dropped"})
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, model="")
    refuse_to_overwrite_a_run(config.output)
    if wants_pretrained(args):
        config = pretrained_defaults(config, given_config(args))
    trainer = finetune_trainer(checkpoint_or_weights(args), config, until=args.until)
    cut = f" up to {args.until}" if args.until else ""
    frozen = " (backbone frozen)" if config.freeze_backbone else ""
    print(f"fine-tuning {trainer.config.model}{cut} from {trainer.config.init_from}{frozen} on {trainer.config.data} "
          f"({split_sizes(trainer.data)}, "
          f"{trainer.data.num_classes} classes) at {trainer.image_size[0]}x{trainer.image_size[1]} "
          f"on {trainer.device}; run folder {trainer.run_dir}")
    result = trainer.fit()
    print("\n".join(closing_lines(trainer, result)))
    return 0
