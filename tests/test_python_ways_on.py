"""What a Python user is told to do next is a Python call, not a shell command (errors.way_on), and Ctrl-C stops a
script's loop of runs (TrainingInterrupted is a KeyboardInterrupt); one name or folder alone is a list of one, and
`~` in a path is the home folder, as a shell has it."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import write_png_folder
from PIL import Image

import convolab
from convolab import training
from convolab.cli import main
from convolab.compare import compare_models, report_runs, resume_comparison, runner
from convolab.data import ImageData, load_data
from convolab.errors import ConfigError, ConvolabError, UnknownModelError
from convolab.export import TorchScriptClassifier, export_safetensors, export_torchscript
from convolab.finetune import save_features
from convolab.reproduce import get_experiment, resume_experiment
from convolab.training import TrainConfig, Trainer, TrainingInterrupted, loop, metrics, signals
from convolab.training.config import TrainConfig as Config
from convolab.training.inference import load_trained_model, predict_targets
from convolab.training.lr_find import lr_range_test

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def _config(tmp_path, name: str, **options) -> TrainConfig:
    return TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=32, progress=False,
                       output=str(tmp_path / name), **options)


class _StoppedAtStep(Trainer):
    """Ctrl-C (a real SIGINT to the process) at the third step, as a notebook's interrupt button sends it."""

    steps = 0

    def train_step(self, *args, **kwargs):
        type(self).steps += 1
        if type(self).steps == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return super().train_step(*args, **kwargs)


def test_ctrl_c_in_a_loop_of_runs_is_not_swallowed_by_except_exception(tmp_path):
    """(before: TrainingInterrupted was a ConvolabError, an Exception: the loop caught it and trained the rest)"""
    finished = []
    with pytest.raises(KeyboardInterrupt) as stopped:
        for lr in (0.01, 0.02):
            try:
                _StoppedAtStep(_config(tmp_path, f"lr{lr}", lr=lr)).fit()
                finished.append(lr)
            except Exception:  # noqa: BLE001, PERF203  (a sweep that goes on past a run that fails)
                finished.append(f"failed {lr}")
    assert finished == [] and isinstance(stopped.value, TrainingInterrupted)
    assert not isinstance(stopped.value, ConvolabError)
    assert str(stopped.value).endswith(f"continue with: Trainer.resume({str(tmp_path / 'lr0.01')!r}).fit()")
    assert Trainer.resume(tmp_path / "lr0.01").fit().history[-1]["epoch"] == 1  # (what it says continues it)


def test_a_comparison_already_made_is_continued_in_python_by_the_call_and_on_the_command_line_by_the_command(
        tmp_path, capsys):
    out = tmp_path / "c"
    compare_models("lenet5_modern", _config(tmp_path, "unused"), out)  # (one name alone: a list of one)
    assert (out / "runs" / "lenet5_modern" / "best.pt").is_file()
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert report["command"] == "compare_models(['lenet5_modern'], ...) in Python"  # (no `command` given)
    with pytest.raises(ConfigError, match=rf"continue it with resume_comparison\({str(out)!r}\) or choose another "
                                          r"`output`$"):
        compare_models(["lenet5_modern"], _config(tmp_path, "unused"), out)
    assert main(["compare", "lenet5_modern", "--data", "digits", "--output", str(out)]) == 2
    assert f"continue it with `convolab compare --resume {out}` or choose another --output" in capsys.readouterr().err


def test_one_run_folder_alone_is_reported_as_a_list_of_one(tmp_path):
    Trainer(_config(tmp_path, "run")).fit()
    results = report_runs(str(tmp_path / "run"), tmp_path / "report")  # (before: "/ is not a run folder")
    assert [r.model for r in results] == ["lenet5_modern"] and (tmp_path / "report" / "results.md").is_file()


def test_python_is_sent_to_list_models_and_to_a_runs_output_folder(tmp_path, capsys):
    with pytest.raises(UnknownModelError, match=r"\(convolab\.list_models\(\) lists them\)$"):
        convolab.create_model("resnet_18")
    assert main(["summary", "resnet_18"]) == 2
    assert capsys.readouterr().err.endswith("(`convolab models` lists them)\n")
    with pytest.raises(ConfigError, match=r"give the `output` folder of a run \(a Trainer's\)$"):
        Config.from_run(tmp_path)


def test_a_home_folder_in_a_path_is_expanded_as_a_shell_expands_it(tmp_path, monkeypatch):
    """(before: a comparison's runs went to $HOME/cmp and its report to ./~/cmp; Trainer.resume("~/run") and
    load_trained_model("~/run") said the folder did not exist)"""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir(), here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    compare_models(["lenet5_modern"], _config(tmp_path, "unused"), "~/cmp")
    assert (home / "cmp" / "results.json").is_file() and (home / "cmp" / "runs" / "lenet5_modern").is_dir()
    Trainer(dataclasses.replace(_config(tmp_path, "unused"), output="~/run")).fit()
    assert Trainer.resume("~/run", epochs=2).fit().history[-1]["epoch"] == 2
    report_runs("~/run", "~/report")
    assert (home / "report" / "results.md").is_file()
    loaded = load_trained_model("~/run")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(home / "digit.png")
    [(top, _)] = predict_targets(loaded, "~/digit.png", topk=2)  # (one path alone: a list of one)
    assert len(top) == 2
    with pytest.raises(ConfigError, match=r"^`topk` must be a positive integer, got 0$"):
        predict_targets(loaded, ["~/digit.png"], topk=0)  # (before: no class, silently)
    assert list(here.iterdir()) == []  # (no folder "~" made here)


def test_a_checkpoint_is_evaluated_and_predicted_from_python_as_the_readme_shows(tmp_path):
    """`convolab evaluate` and `predict` in Python, from convolab.training (before: only from its inference module,
    undocumented): the figure training gave, and each image's classes."""
    result = Trainer(_config(tmp_path, "run")).fit()
    loaded = training.load_trained_model(result.run_dir)
    report = training.evaluate_checkpoint(loaded, load_data("digits"))
    assert report.top1 == pytest.approx(result.best_acc)
    assert sorted(p.name for p in report.write(tmp_path / "evaluation")) == ["confusion.csv", "confusion.png",
                                                                            "per_class.csv"]
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "a.png")
    [(top, others)] = training.predict_targets(loaded, [tmp_path / "a.png"], topk=3)
    assert len(top) == 3 and others == {} and {name for name, _ in top} <= set(loaded.classes)


def test_a_run_records_the_data_given_to_its_trainer(tmp_path, caplog):
    """(before: config.json said mnist5k, the default, of a run trained on a folder: a resume said mnist5k "no longer
    holds the classes" it was trained on, and `evaluate RUN` would score mnist5k)"""
    folder = write_png_folder(tmp_path / "photos", per_class=8, size=12, mode="L")
    config = TrainConfig(model="lenet5_modern", epochs=1, batch_size=4, progress=False)
    trainer = Trainer(dataclasses.replace(config, output=str(tmp_path / "run")), data=load_data(str(folder)))
    assert f"on {folder}," in repr(trainer)
    trainer.fit()
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["data"] == str(folder)
    assert Trainer.resume(tmp_path / "run", epochs=2).fit().history[-1]["epoch"] == 2  # (the folder read again)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        named = Trainer(dataclasses.replace(config, data="mnist", output=str(tmp_path / "other")),
                        data=load_data(str(folder)))
    assert named.config.data == str(folder)
    assert f"`data` mnist names other data than those given to the Trainer: the run records theirs, `data` {folder}" \
        in caplog.text
    made = load_data(str(folder))
    mine = ImageData("mine", made.train, made.test, made.classes)  # (data made in Python: named by their name)
    assert Trainer(dataclasses.replace(config, output=str(tmp_path / "mine")), data=mine).config.data == "mine"
    subset = Trainer(dataclasses.replace(config, data="fashion-mnist", output=str(tmp_path / "subset")),
                     data=load_data(str(folder)).per_class_subsets(4, 2))  # (a subset: the folder it is of)
    assert subset.config.data == str(folder) and "`data` fashion-mnist names other data" in caplog.text


def test_a_run_records_the_options_its_given_data_were_loaded_with(tmp_path, capsys):
    """A labels CSV's `targets` and a folder of one split's hold-out fraction decide the images: recorded, `evaluate`
    and a resume read the same data (before: a CSV of two columns, trained on one, was refused by both; a folder held
    out at 0.5 was said to have changed, and evaluate scored 4 other images)."""
    flat = write_png_folder(tmp_path / "flat", per_class=8, size=12, mode="L", split_dirs=False)
    lines = ["path,label,age"] + [f"{p.relative_to(flat)},{p.parent.name},{i}" for i, p in
                                  enumerate(sorted(flat.rglob("*.png")))]
    (flat / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = TrainConfig(model="lenet5_modern", epochs=1, batch_size=4, progress=False)
    for name, data in (("csv", load_data(str(flat / "labels.csv"), targets=["label"])),
                       ("half", load_data(str(flat), val_fraction=0.5))):
        trainer = Trainer(dataclasses.replace(config, output=str(tmp_path / name)), data=data)
        trainer.fit()
        record = Config.from_run(tmp_path / name)
        assert (record.targets, record.val_fraction) == ((["label"], None) if name == "csv" else ([], 0.5))
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path / name), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == len(data.test)
        assert Trainer.resume(tmp_path / name, epochs=2).fit().history[-1]["epoch"] == 2


def test_exports_and_features_written_and_read_at_a_home_folder_path(tmp_path, monkeypatch):
    """(before: export_safetensors(RUN, "~/st") wrote ./~/st/model.safetensors)"""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir(), here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    Trainer(_config(tmp_path, "run")).fit()
    export_safetensors(tmp_path / "run", "~/st")
    assert (home / "st" / "model.safetensors").is_file()
    model = convolab.create_model("lenet5_modern", num_classes=10, in_chans=1)
    export_torchscript(model, "~/m.torchscript.pt", (1, 28, 28))
    assert (home / "m.torchscript.pt").is_file()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(home / "digit.png")
    assert len(TorchScriptClassifier("~/m.torchscript.pt").predict_files("~/digit.png", top_k=2)[0]) == 2
    save_features("~/f.npz", {"x": np.zeros(3)})
    assert (home / "f.npz").is_file()
    assert list(here.iterdir()) == []


def test_a_complete_run_fitted_again_says_so_in_python(tmp_path, caplog):
    Trainer(_config(tmp_path, "run")).fit()
    with caplog.at_level(logging.INFO, logger="convolab"):
        result = Trainer.resume(tmp_path / "run").fit()
    assert result.history[-1]["epoch"] == 1  # (its result, trained no further: before, without a word)
    assert f"{tmp_path / 'run'} has trained its 1 epoch: the run is complete, and fit() gives its result; give " \
           "`epochs` N > 1 to train it further" in caplog.text


def test_a_model_given_of_other_outputs_than_the_datas_classes_is_one_line(tmp_path):
    """(before: torch's IndexError "Target 9 is out of bounds" at the first step for 3 outputs, and 20 trained without
    a word; a model's name given to Trainer.resume was an AttributeError)"""
    for outputs in (3, 20):
        with pytest.raises(ConfigError, match=rf"^the model given has {outputs} outputs \(`num_classes`\) and digits "
                                              r"has 10 classes: build it with num_classes=10, or call its "
                                              r"reset_classifier\(10\)$"):
            Trainer(_config(tmp_path, f"run{outputs}"),
                    model=convolab.create_model("lenet5_modern", num_classes=outputs, in_chans=1))
        assert not (tmp_path / f"run{outputs}").exists()
    Trainer(_config(tmp_path, "run")).fit()
    with pytest.raises(ConfigError, match=r"^Trainer\.resume\(model=\.\.\.\) takes a torch\.nn\.Module, not a str; "
                                          r"leave it out \(last\.pt names the run's model\)"):
        Trainer.resume(tmp_path / "run", model="lenet5_modern", epochs=2)


def test_a_features_only_model_given_to_train_is_one_line_saying_it_gives_maps(tmp_path):
    """(before: "input 1x8x8 is too small for lenet5_modern": its maps were probed at the digits' size)"""
    with pytest.raises(ConfigError, match=r"^the model given gives feature maps \(built with features_only=True\), "
                                          r"not logits: build it without features_only"):
        Trainer(_config(tmp_path, "maps"), model=convolab.create_model("lenet5_modern", in_chans=1,
                                                                       features_only=True))
    assert not (tmp_path / "maps").exists()


def test_a_model_of_the_users_own_without_num_classes_is_checked_by_its_logits(tmp_path):
    """A plain nn.Module has no `num_classes`: the width of its logits for one image is checked (before: torch's
    IndexError at the first step for 3 outputs, and 20 trained without a word); one of the right width trains."""
    def net(outputs: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, outputs))

    for outputs in (3, 20):
        with pytest.raises(ConfigError, match=rf"^the model given gives {outputs} outputs an image and digits has 10 "
                                              r"classes: make its last layer give 10$"):
            Trainer(_config(tmp_path, f"run{outputs}"), model=net(outputs))
        assert not (tmp_path / f"run{outputs}").exists()
    result = Trainer(_config(tmp_path, "run"), model=net(10)).fit()
    assert result.history[-1]["epoch"] == 1


def test_a_model_of_lazy_modules_given_to_train_is_made_whole_first(tmp_path):
    """(before: "Attempted to use an uninitialized parameter" from inside the build; torch's advice, one forward of a
    dummy batch, is what the build does now)"""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    result = Trainer(_config(tmp_path, "run"), model=net).fit()
    assert net[1].weight.shape == (10, 64) and net.training  # (materialized; its mode as it was)
    assert result.history[-1]["epoch"] == 1


def test_a_stop_after_the_last_step_of_a_run_stops_the_comparison(tmp_path, monkeypatch):
    """A Ctrl-C while the first run's last epoch is scored and saved (before: passed over; the comparison trained
    its next model, and the command ended 0)."""
    report = loop.report_epoch

    def then_ctrl_c(run, state, *args):
        report(run, state, *args)
        if state.epoch == run.config.epochs and run.config.model == "lenet5_modern":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop, "report_epoch", then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match=r"^stopped while training lenet5_modern; the report in .* holds "
                                                  r"what finished; continue with: resume_comparison\("):
        compare_models(["lenet5_modern", "lenet5"], _config(tmp_path, "unused"), tmp_path / "c")
    statuses = {r["model"]: r["status"] for r in json.loads((tmp_path / "c" / "results.json").read_text())["models"]}
    assert statuses == {"lenet5_modern": "interrupted", "lenet5": "not run"}
    assert not (tmp_path / "c" / "runs" / "lenet5").exists()
    with pytest.raises(TrainingInterrupted, match=r"^stopped by SIGINT after its last epoch; every epoch is saved in "):
        Trainer(_config(tmp_path, "alone")).fit()
    assert [r.status for r in resume_comparison(tmp_path / "c")] == ["ok", "ok"]  # (the first kept: complete)


def test_a_stop_that_python_would_ignore_between_runs_stops_the_comparison(tmp_path, monkeypatch):
    """A Ctrl-C met inside a __del__ or a weakref's callback between two runs, where Python prints "Exception ignored"
    and goes on (before: the comparison trained the rest and ended as if never stopped)."""
    clear = runner.clear_run_dir

    class Collected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    def collecting(run_dir):
        if run_dir.name == "lenet5":
            Collected()  # (collected at once: the signal comes inside its __del__)
        return clear(run_dir)

    monkeypatch.setattr(runner, "clear_run_dir", collecting)
    with pytest.raises(TrainingInterrupted, match=r"^stopped while starting lenet5; "):
        compare_models(["lenet5_modern", "lenet5"], _config(tmp_path, "unused"), tmp_path / "c")
    assert not (tmp_path / "c" / "runs" / "lenet5" / "last.pt").exists()


def test_more_python_lines_name_python_and_more_writers_expand_a_home_folder(tmp_path, monkeypatch, caplog):
    """The re-check's: an experiment's name, a comparison's or experiment's folder, report_runs' folders, the
    aux_weight warning, a numpy topk; EvaluationReport.write, LRFindResult.write and save_checkpoint at ~/..."""
    with pytest.raises(ConfigError, match=r"^no experiment named 'batchnrom'; EXPERIMENTS holds them \("):
        get_experiment("batchnrom")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no compare\.json; give the `output` folder of compare_models$"):
        resume_comparison(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"give the `output` folder of run_experiment$"):
        resume_experiment(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"give the `output` folder of a Trainer's run, a comparison's folder"):
        report_runs(tmp_path / "empty", tmp_path / "report")
    with pytest.raises(ConfigError, match=r"^give at least one run folder \(a Trainer's or a comparison's\)$"):
        report_runs([], tmp_path / "report")
    with caplog.at_level(logging.WARNING, logger="convolab"):
        Trainer(_config(tmp_path, "aux", aux_weight=0.3))
    assert "has no auxiliary heads (googlenet, googlenet_tv and inception_v3 have them, built with aux_logits=True)" \
        in caplog.text
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "empty")
    Trainer(_config(tmp_path, "run")).fit()
    loaded = training.load_trained_model(tmp_path / "run")
    training.evaluate_checkpoint(loaded, load_data("digits")).write("~/evaluation")
    assert (home / "evaluation" / "confusion.png").is_file()
    training.save_checkpoint(training.load_checkpoint(tmp_path / "run"), "~/copy.pt")
    assert training.load_checkpoint("~/copy.pt")["model_name"] == "lenet5_modern"
    lr_range_test(dataclasses.replace(_config(tmp_path, "unused"), output=None), steps=12).write("~/lr")
    assert (home / "lr" / "lr_find.png").is_file() and list((tmp_path / "empty").iterdir()) == []
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(home / "digit.png")
    assert len(training.predict_targets(loaded, "~/digit.png", topk=np.int64(2))[0][0]) == 2


def test_a_stop_while_the_last_curves_are_drawn_stops_the_comparison(tmp_path, monkeypatch):
    """(the stop tester's: the check at the loop's end came before the last curves, drawn as its block closed; a
    signal then was passed over, 4 times in 4)"""
    finish = metrics.Curves.finish

    def ctrl_c_while_drawn(curves, history):
        finish(curves, history)
        if len(history) == 1 and "lenet5_modern" in str(curves.path):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(metrics.Curves, "finish", ctrl_c_while_drawn)
    with pytest.raises(TrainingInterrupted, match=r"^stopped while training lenet5_modern; "):
        compare_models(["lenet5_modern", "lenet5"], _config(tmp_path, "unused"), tmp_path / "c")
    assert not (tmp_path / "c" / "runs" / "lenet5").exists()


def test_a_stop_recorded_by_an_experiment_stops_its_next_comparison_before_it_trains(tmp_path):
    """(the stop tester's: an experiment's Ctrl-C while an arm was set up waited for the whole arm to train); a second
    signal a second after the first stops at once."""
    with signals.stops_between_runs():
        os.kill(os.getpid(), signal.SIGINT)  # (recorded, as while an arm's comparison is set up)
        with pytest.raises(TrainingInterrupted, match=r"^stopped while starting lenet5_modern; .* continue with: "
                                                      r"resume_comparison\("):
            compare_models(["lenet5_modern"], _config(tmp_path, "unused"), tmp_path / "c")
    assert not (tmp_path / "c" / "runs" / "lenet5_modern" / "last.pt").exists()
    with signals.stops_between_runs(), \
            pytest.raises(TrainingInterrupted, match=r"^stopped at once by a second signal \(SIGTERM\)$"):
        signals._BETWEEN.append((signal.SIGINT, time.monotonic() - 2))  # (the first, two seconds ago)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)


def test_a_signal_once_the_commands_work_is_done_lets_it_end_as_it_would(tmp_path):
    """(the stop tester's: a Ctrl-C in the second torch takes to end the process, after the last line, exited 130
    without a word; a script read "interrupted" of a complete run)"""
    code = ("import os, signal, sys\nsys.argv = ['convolab', 'models', 'lenet5']\nfrom convolab.cli import main\n"
            "code = main()\nos.kill(os.getpid(), signal.SIGINT)\nos.kill(os.getpid(), signal.SIGTERM)\n"
            "print('ended', code)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ended 0", done.stderr
