"""`convolab compare MODEL [MODEL ...]`: train models under equal options, report them side by side."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..compare import (
    RESUME_AFTER_A_WRITE,
    compare_models,
    default_compare_dir,
    resume_comparison,
    seed_values,
    significance_lines,
    summary_table,
    unfinished_line,
)
from ..errors import ConfigError
from ..finetune import pretrained_defaults, pretrained_trainer
from ..pretrained import pretrained_checkpoint
from ._args import nonempty
from ._options import add_config_options, as_flags, config_from_args, flag_of, given_config
from ._weights import add_start_options, start_weights

HELP = ("train several models in turn with the same data and options; one report (table, curves, "
        "report.html) compares them")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="model names (see `convolab models`)")
    parser.add_argument("--resume", metavar="DIR", type=nonempty("the comparison's folder"),
                        help="continue the comparison in DIR (its compare.json "
                        "holds the models, seeds and options): finished runs are kept, an interrupted one resumes")
    parser.add_argument("--seeds", type=seeds_option, metavar="N|S,S,...",
                        help="train each model once per seed: N seeds from --seed on, or the seeds listed (S, for "
                        "the seed S alone); "
                        "the report gives each figure's mean and standard deviation over the seeds and tests "
                        "each pair of models (default: 1, one run per model)")
    add_config_options(parser, skip=("init_from", "sync_bn"), metavar={"output": "DIR"}, help={
        "output": "comparison folder: the report, and runs/MODEL/ for each run (runs/MODEL/seed-S/ with several "
                  "seeds) (default: runs/compare-DATA[-N])",
        "epochs": "epochs to train each model (a comparison's --resume keeps its own)",
        "budget_seconds": "stop each model after the epoch in which its training time reaches S seconds "
                          "(--epochs still sets the schedule's length and the most epochs)"})
    add_start_options(parser, "start each run from the weights torchvision or timm publish for its model, as `train "
                              "MODEL --pretrained` does (each model's weights fetched before the comparison starts; "
                              "a model without any is refused; a --resume continues as the comparison started)")


def seeds_option(text: str) -> int | list[int]:
    """`3` -> 3 seeds; `0,1,2` -> the seeds 0, 1 and 2; `7,` -> the seed 7 alone (checked as compare_models
    checks them)."""
    parts = text.split(",")
    if len(parts) > 1 and not parts[-1].strip():  # (one trailing comma: "7," is a list of the one seed 7)
        parts = parts[:-1]
    if len(parts) > 1 or "," in text:
        if not all(part.strip() for part in parts):  # "1,,2" or ",": a seed left out by mistake?
            raise argparse.ArgumentTypeError(f"a comma list of seeds with an empty item: {text!r}; give them like "
                                             "0,1,2 (or 7, for the seed 7 alone)")
    try:
        seeds = [int(part) for part in parts] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds >= 1 or a comma list of seeds like 0,1,2, "
                                         f"got {text!r}") from None
    try:
        seed_values(seeds, first=0)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(as_flags(str(err), {"seed": "--seed"})) from None
    return seeds


def run(args: argparse.Namespace) -> int:
    command = ["convolab", *args._argv]
    weights = start_weights(args, args.models)  # (with --resume: refused)
    if args.resume:
        if args.models or args.seeds is not None:
            raise ConfigError(f"--resume takes no MODEL or --seeds; they come from {args.resume}/compare.json")
        others = [flag_of(name) for name in given_config(args) if name != "progress"]
        if others:  # (they would be ignored: the comparison's runs keep the options they were started with)
            raise ConfigError(f"--resume {args.resume} continues the comparison with the options in its compare.json; "
                              f"leave out {', '.join(others)}")
        results = resume_comparison(args.resume, command, progress=getattr(args, "progress", None),
                                    start=pretrained_trainer)
        output = args.resume
    else:
        if not args.models:
            raise ConfigError("give the MODELs to compare (see `convolab models`) or --resume DIR")
        config = config_from_args(args, model=args.models[0])
        if weights is not None:  # each model's weights fetched (or said missing) before the comparison starts
            config = pretrained_defaults(config, given_config(args), whole=True)
            for model in args.models:
                pretrained_checkpoint(model, weights)
        output = config.output or str(default_compare_dir(config.data))
        results = compare_models(args.models, config, output, command, seeds=args.seeds or 1, pretrained=weights,
                                 start=pretrained_trainer)
        output = folder_of(results, output)  # (a default name another command took first: the next one's)
    print(summary_table(results, escape=False), end="")
    print(f"report: {Path(output) / 'report.html'} (results.json, results.md, curves.png beside it)")
    unfinished = unfinished_line(results)
    # (the resume trains again a run a failed write stopped; not one of a NaN loss, which it would meet again)
    if unfinished and any(r.status.endswith(RESUME_AFTER_A_WRITE) for r in results):
        unfinished += f"; once mended, continue with: convolab compare --resume {shlex.quote(str(output))}"
    if unfinished:
        print(unfinished)
    for line in significance_lines(results):
        print(line)
    return 1 if unfinished else 0


def folder_of(results: list, output: str) -> str:
    """The comparison folder its runs lie in (OUTPUT/runs/MODEL[/seed-S]), else `output`."""
    for result in results:
        for parent in Path(result.run_dir).parents:
            if parent.name == "runs":
                return str(parent.parent)
    return output
