"""The library names an argument as Python spells it, in backquotes (`output`); only the CLI says --output.

A Python user of compare_models, Trainer or load_data reads the names of the arguments they gave, and the command
line user the flags they typed: errors.py says the rule, cli/_options.as_flags turns the one into the other.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import inspect
import json
import logging
import pkgutil
import re
import threading
from pathlib import Path

import pytest

import convolab
from convolab.cli import build_parser, command_flags, main
from convolab.cli._options import ARGUMENT, LIBRARY_NAMES, as_flags, cli_message, flags_of
from convolab.compare import compare_models
from convolab.data import load_data
from convolab.errors import CheckpointError, ConfigError, FieldError, as_said, saying
from convolab.reproduce import options_said
from convolab.training import TrainConfig, Trainer
from convolab.training.batches import MIN_CROP_SCALE, unused_options
from convolab.training.checkpoint import load_checkpoint
from convolab.training.distributed import Distributed
from convolab.training.loop import NonFiniteLoss

PACKAGE = Path(convolab.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A command the line advises, written out: its flags are the command's (`convolab compare --resume RUN`)
COMMAND = re.compile(r"`(?:convolab|python|torchrun|pip|docker)\b[^`]*`|\bconvolab [a-z-]+\b[^`;]*")


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of each string of a module that is not a docstring, nor the help of a TrainConfig field, an
    f-string read as one text ({} for each value)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "option":
            skip |= {id(n) for n in ast.walk(node)}  # (the command line's help, which argparse shows)
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            found.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)))
    return found


def flags_named(path: Path) -> list[tuple[int, str]]:
    """(line, --flag) for each flag a string of the module names outside a command it advises (a string that is one
    flag alone is an argument list's, a command being built)."""
    return [(line, flag) for line, text in _strings(ast.parse(path.read_text(encoding="utf-8")))
            if not FLAG.fullmatch(text) for flag in FLAG.findall(COMMAND.sub("", text))]


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("package", sorted({p.relative_to(PACKAGE).parts[0] for p in LIBRARY}))
def test_no_library_line_names_a_flag(package):
    named = [f"{path.relative_to(PACKAGE.parent)}:{line}: {flag}" for path in LIBRARY
             if path.relative_to(PACKAGE).parts[0] == package for line, flag in flags_named(path)]
    assert not named, "name the Python argument in backquotes (see convolab/errors.py):\n" + "\n".join(named)


def _python_names() -> set[str]:
    """Every argument a Python user can give convolab: the parameters of its functions and methods, and the fields of
    its dataclasses (TrainConfig's)."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(convolab.__path__, "convolab."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(info.name)).values():
            if not str(getattr(value, "__module__", "")).startswith("convolab"):
                continue
            if dataclasses.is_dataclass(value):
                names |= {f.name for f in dataclasses.fields(value)}
            for each in [value, *(vars(value).values() if inspect.isclass(value) else ())]:
                each = getattr(each, "__func__", each)
                if callable(each):
                    with contextlib.suppress(TypeError, ValueError):
                        names |= set(inspect.signature(each).parameters)
    return names


def test_no_library_line_names_an_option_python_lacks():
    """A name in backquotes is an argument a Python user can give: not --nproc's `nproc` (processes are torchrun's
    there), nor --json's or --list's."""
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices.values()
    cli_only = {dest for verb in verbs for dest in flags_of(verb, aliases=False)} - _python_names() - \
        set(LIBRARY_NAMES.values())
    assert cli_only >= {"nproc", "json", "list"}
    named = [f"{path.relative_to(PACKAGE.parent)}:{line}: `{name}`" for path in LIBRARY
             for line, text in _strings(ast.parse(path.read_text(encoding="utf-8")))
             for name, _ in ARGUMENT.findall(text) if name in cli_only]
    assert not named, "a Python user has no such argument: say it in words\n" + "\n".join(named)


def test_the_scan_finds_a_flag_and_leaves_a_command_alone(tmp_path):
    module = tmp_path / "convolab_module.py"
    module.write_text('"""--docstring"""\n'
                      'def f(x):\n'
                      '    raise ValueError(f"choose another --output, or `convolab compare --resume {x}`")\n'
                      'ARGV = ["--nproc", "2"]\n'
                      'LINE = "continue with: convolab train --resume RUN; or give --epochs"\n', encoding="utf-8")
    assert sorted(flags_named(module)) == [(3, "--output"), (5, "--epochs")]


def _verb_flags(verb: str) -> dict[str, str]:
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return command_flags(parser, verbs[verb])


@pytest.mark.parametrize("line, verb, said", [
    ("choose another `output`", "compare", "choose another --output"),
    ("give `batch_size` 2 or more", "train", "give --batch-size 2 or more"),
    ("`ema_decay` 0.99 asks for an average", "train", "--ema 0.99 asks for an average"),
    ("or pass `memory_check=False` to try anyway", "train", "or pass --no-memory-check to try anyway"),
    ("try `fold=False` to export without folding", "export", "try --no-fold to export without folding"),
    ("pass `skip_bad_images` to skip them", "predict", "pass --skip-bad-images to skip them"),  # (another verb's)
    ("`path` m.onnx exists", "export", "--out m.onnx exists"),  # (export_onnx's name for export's --out)
    ("`folder` sf is a file", "export", "--out sf is a file"),  # (and export_safetensors')
    ("or use `exporter` torchscript", "export", "or use --onnx-exporter torchscript"),
    ("give a smaller `input_shape`", "cost", "give a smaller --input"),  # (design_cost's name for cost's --input)
    ("`run_dir` r is not writable", "train", "--resume r is not writable"),  # (Trainer.resume's name for it)
    ("`path` m.onnx exists", "train", "`path` m.onnx exists"),  # (another verb's alias is not this verb's)
    ("the layer `fc` is missing", "train", "the layer `fc` is missing"),  # (no argument: kept)
    ("`memory_check` is on", "train", "`memory_check` is on"),  # (a flag that turns it off cannot say it)
])
def test_the_cli_says_each_argument_by_its_flag(line, verb, said):
    assert as_flags(line, _verb_flags(verb)) == said


def test_an_experiments_arm_is_logged_by_its_arguments_and_on_the_command_line_by_its_flags():
    options = {"lr": 0.1, "model_options": {"batch_norm": False}, "nesterov": True}
    assert options_said(options) == "`lr` 0.1, `model_options` batch_norm=False, `nesterov`"
    assert as_flags(options_said(options), _verb_flags("reproduce")) == \
        "--lr 0.1, --model-option batch_norm=False, --nesterov"  # (before: model_options={'batch_norm': False})


def test_a_field_error_is_said_by_its_flag_first():
    err = FieldError("ema_decay", "must be in [0, 1), got 2; or give `batch_size` 8")
    assert str(err) == "ema_decay must be in [0, 1), got 2; or give `batch_size` 8"
    assert cli_message(err, _verb_flags("train")) == "--ema must be in [0, 1), got 2; or give --batch-size 8"
    assert cli_message(ConfigError("choose another `output`"), _verb_flags("compare")) == \
        "choose another --output"


def test_python_hears_the_argument_and_the_command_line_the_flag(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "compare.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"choose another `output`$"):
        compare_models(["lenet5"], TrainConfig(model="lenet5", data="digits"), tmp_path / "out", "compare")
    assert main(["compare", "lenet5", "--data", "digits", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.endswith("or choose another --output\n") and "`" not in err.split("`convolab compare --resume")[0]


def test_lines_python_reads_name_what_python_gives(tmp_path):
    """Not the command line's MODEL, nor a `data` that is no argument of the commands that read exports, nor --nproc
    (processes are the launcher's: torchrun in Python)."""
    with pytest.raises(ConfigError, match=r"^give at least one model to compare \(convolab\.list_models\(\) lists "
                                          r"them\)$"):
        compare_models([], TrainConfig(model="lenet5", data="digits"), tmp_path / "c", "compare")
    (tmp_path / "m.onnx").write_bytes(b"an ONNX protobuf")
    with pytest.raises(CheckpointError, match=r"read by `convolab predict` and `convolab evaluate`, and in Python by "
                                              r"OnnxClassifier, TorchScriptClassifier and ProgramClassifier\)$"):
        load_checkpoint(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=r"cannot change; run it on 3 or 7 or 9 or 21 or 63 processes, or one$"):
        Distributed(0, 2, 0).check_batch_size(63, resumed=True)
    assert unused_options(streamed=True, workers=None, min_crop_scale=MIN_CROP_SCALE, sync_bn=True,
                          several=False) == ["`sync_bn` (batch-norm statistics across processes; this run is one "
                                             "process)"]


def test_a_log_line_names_the_flag_on_the_command_line_and_the_argument_in_python(tmp_path, caplog, monkeypatch):
    (tmp_path / "digits").mkdir()  # a folder named as the built-in set: the warning names the argument that gave it
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_data("digits")
    assert "`data` digits names the built-in data set" in caplog.text
    assert as_flags(caplog.records[0].getMessage(), _verb_flags("train")).startswith(
        "--data digits names the built-in data set")


def test_a_failed_runs_status_in_a_comparisons_files_names_the_flags_of_the_command_that_ran_it(tmp_path, capsys):
    """The report's reader is the user who ran it: `convolab compare` writes --lr into results.md, as its table says;
    compare_models from Python writes `lr`."""
    options = ["--data", "digits", "--epochs", "1", "--lr", "1e12", "--train-subset", "200", "--test-subset", "50",
               "--no-progress"]
    assert main(["compare", "lenet5_modern", *options, "--output", str(tmp_path / "cli")]) == 1
    assert "failed: the training loss became nan" in capsys.readouterr().out
    said = (tmp_path / "cli" / "results.md").read_text(encoding="utf-8")
    assert "; lower --lr (now 1e+12) or add --clip-grad;" in said and "`" not in said.split("| failed")[1]
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, lr=1e12, train_subset=200, test_subset=50,
                         progress=False)
    [result] = compare_models(["lenet5_modern"], config, tmp_path / "python", "compare")
    assert "; lower `lr` (now 1e+12) or add `clip_grad`;" in result.status


def test_why_a_run_stopped_is_recorded_and_reported_in_the_flags_of_the_command_that_ran_it(tmp_path, capsys):
    """stopped.json, which `report` prints, held the library's `lr` after a `convolab train` (the terminal said
    --lr); from Python it holds `lr`."""
    options = ["--data", "mnist5k", "--train-subset", "200", "--test-subset", "100", "--epochs", "2", "--optimizer",
               "sgd", "--lr", "1e3", "--no-progress"]
    assert main(["train", "lenet5_modern", *options, "--output", str(tmp_path / "cli")]) == 2
    reason = json.loads((tmp_path / "cli" / "stopped.json").read_text(encoding="utf-8"))["reason"]
    assert "lower --lr (now 1000)" in reason and "`" not in reason, reason
    capsys.readouterr()
    assert main(["report", str(tmp_path / "cli"), "--output", str(tmp_path / "report")]) == 0
    assert "lower --lr (now 1000)" in capsys.readouterr().out
    config = TrainConfig(model="lenet5_modern", data="mnist5k", train_subset=200, test_subset=100, epochs=2,
                         optimizer="sgd", lr=1e3, progress=False, output=str(tmp_path / "python"))
    with pytest.raises(NonFiniteLoss, match=r"lower `lr` \(now 1000\)"):
        Trainer(config).fit()
    assert "lower `lr` (now 1000)" in (tmp_path / "python" / "stopped.json").read_text(encoding="utf-8")


def test_log_lines_are_said_in_flags_in_the_commands_context_alone(caplog):
    """A command's log lines name its flags; another thread's (an application running main() beside its own
    work), and any line once it has ended, keep Python's names; a log call whose arguments fail never raises."""
    log = logging.getLogger("convolab.names_test")
    caplog.set_level(logging.WARNING, logger="convolab")

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def beside() -> None:
        log.warning("beside: choose another `output`")

    with saying(lambda line: as_flags(line, {"output": "--output"})):
        log.warning("in the command: choose another `output`")
        thread = threading.Thread(target=beside)
        thread.start()
        thread.join()
        made = logging.getLogRecordFactory()("convolab.x", logging.WARNING, __file__, 1, "value %s", (Unprintable(),),
                                              None)  # (logging says so as it writes the line, as without the command)
        assert (made.msg, made.args[0].__class__) == ("value %s", Unprintable)
        assert as_said("`output`") == "--output"
    log.warning("after: choose another `output`")
    said = [r.getMessage() for r in caplog.records if "choose" in r.msg]
    assert said == ["in the command: choose another --output", "beside: choose another `output`",
                    "after: choose another `output`"]
    assert as_said("`output`") == "`output`"
