"""Faults testers found by running convolab as users' machines, files and habits differ from ours: a type checker's
leads, upgraded files, random command lines, the user's environment. Each test fails on the code before its fix."""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_folder
from torch import nn
from tqdm import tqdm

from convolab import _atomic, _registry, register_model
from convolab.analysis import compare_designs, design_cost
from convolab.analysis.cost import parse_design
from convolab.cli import main
from convolab.compare import compare_models
from convolab.data import stratified_split
from convolab.data.archive import ImageSource
from convolab.errors import ConfigError, DiskFullError, FieldError
from convolab.export.exporters import META_REVISION, ExportMeta
from convolab.ops import conv_output_size
from convolab.ops.functional import conv2d, pool2d
from convolab.training import Trainer, inference, rundir
from convolab.training.config import TrainConfig
from convolab.training.inference import EvaluationReport
from convolab.training.progress import BAR_FORMAT, progress_figures


def one_line(capsys, argv: list[str]) -> str:
    """Exit code 2 and one stderr line without a traceback: the line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("weights", ["main=1,aux1=0.3", None, [1.0], {"main": True}])
def test_loss_weights_that_are_not_a_map_of_numbers_are_a_field_error(weights):
    """(before: AttributeError: 'str' object has no attribute 'items', from inside the check)"""
    with pytest.raises(FieldError, match="loss_weights must map each output to a weight >= 0"):
        TrainConfig(model="lenet5", loss_weights=weights)


def test_a_run_whose_config_json_loss_weights_was_damaged_is_one_line(digits_run, tmp_path, capsys):
    """(before: report and --resume ended in a traceback, exit 1)"""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "loss_weights": None}))
    err = one_line(capsys, ["report", str(run), "--output", str(tmp_path / "rep")])
    assert "loss_weights must map each output to a weight >= 0" in err and "damaged" in err, err


def test_a_design_of_no_layers_or_of_other_objects_is_one_error():
    """(before: [] was a design of no layers, whose output_shape was an IndexError; a list mixing ConvSpecs and
    strings an AttributeError)"""
    for design in ([], (), [" "]):
        with pytest.raises(ConfigError, match="empty design: give at least one layer"):
            design_cost((192, 28, 28), design)
    with pytest.raises(ConfigError, match="empty design"):
        compare_designs((192, 28, 28), ["1x1:16"], [])
    with pytest.raises(ConfigError, match="bad design layer 3: give a layer as"):
        design_cost((3, 32, 32), ["3x3:16", 3])
    mixed = design_cost((3, 32, 32), [parse_design("3x3:16")[0], "3x3:8/s2"])
    assert mixed.output_shape == (8, 16, 16)
    assert mixed == design_cost((3, 32, 32), "3x3:16 3x3:8/s2")


@pytest.mark.parametrize("call", [
    lambda: conv2d(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 3, 3)), stride=(1.9, 1.9)),
    lambda: pool2d(np.zeros((1, 1, 8, 8)), (2.9, 2.9)),
    lambda: conv2d(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 3, 3)), padding=True),
    lambda: conv_output_size(8, (3.0, 3.0)),
], ids=["conv-stride-floats", "pool-window-floats", "conv-padding-bool", "size-kernel-floats"])
def test_a_pair_of_floats_is_refused_not_cut_to_ints(call):
    """(before: stride=(1.9, 1.9) convolved at stride 1 and a 2.9 window pooled 2x2, without a word; 1.9 alone
    was refused)"""
    with pytest.raises(ConfigError, match="must be an int or a pair of ints"):
        call()


def test_numpy_integers_are_ints_to_the_shape_arithmetic():
    assert conv_output_size(np.int64(8), np.int64(3), padding=np.int64(1)) == 8
    assert conv2d(np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3)), stride=np.int64(2)).shape == (1, 1, 3, 3)


def test_a_subset_is_said_once_and_after_the_model_is_checked(tmp_path, caplog, capsys):
    """The subset's line comes once the model and options are checked (a bad one is the command's only line: rows
    of test_bad_inputs), and once for a comparison of several models on the one subset."""
    caplog.set_level(logging.INFO)
    assert main(["compare", "lenet5", "lenet5_bn", "--data", "digits", "--train-subset", "100", "--epochs", "1",
                 "--no-progress", "--output", str(tmp_path / "cmp")]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a subset:")]
    assert said == ["a subset: 100 of 1438 training and 359 of 359 test images"], said


def test_a_link_into_the_kernels_folders_is_not_entered(tmp_path):
    """A link to /proc inside the data (a user's home folder has such links) is passed over, not listed: /proc's own
    links lead back into every folder, which made the listing endless."""
    data = write_png_folder(tmp_path / "imgs", per_class=2, split_dirs=False)
    (data / "a" / "proc").symlink_to("/proc")
    names, _ = ImageSource(data).list_images()
    assert sorted(names) == sorted(str(p.relative_to(data)) for p in data.rglob("*.png"))


def convolab_in(env: dict[str, str], *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convolab", *argv], cwd=cwd, capture_output=True,
                          env={**os.environ, **env}, timeout=600)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locales and file names")
def test_an_ascii_locale_and_names_that_are_not_utf8_train_evaluate_and_report(tmp_path):
    """Under LC_ALL=C without UTF-8 mode, text files were written in ASCII: evaluate of classes café and thé ended in
    UnicodeEncodeError (an empty evaluation/ left), and a data folder whose name's bytes are not UTF-8 failed in the
    cache's key and in compare's report.html. Now every text file is UTF-8 (a name's raw bytes kept)."""
    data = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/d\xff"))
    write_png_folder(data, per_class=4, classes=("café", "thé"))
    ascii_locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "", "CONVOLAB_CACHE": str(tmp_path / "c")}
    run = tmp_path / "run"
    for argv in (["train", "lenet5_modern", "--data", str(data), "--batch-size", "4", "--epochs", "1",
                  "--no-progress", "--output", str(run)],
                 ["evaluate", str(run)],
                 ["report", str(run), "--output", str(tmp_path / "rep")]):
        done = convolab_in(ascii_locale, *argv, cwd=tmp_path)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    per_class = (run / "evaluation" / "per_class.csv").read_text(encoding="utf-8")
    assert "café" in per_class and "thé" in per_class
    assert json.loads((tmp_path / "rep" / "results.json").read_text(encoding="utf-8"))["data"] == str(data)
    assert b"/d\xff" in (tmp_path / "rep" / "report.html").read_bytes()  # (the folder's own bytes)


def test_the_training_bar_shows_its_figures_at_80_columns():
    """(before: tqdm's layout and its keys in alphabetical order showed `acc=0.1016, img_s=3548, lo` at 80 columns,
    never the loss nor the lr; at 20 no figure at all)"""
    out = io.StringIO()
    bar = tqdm(total=97, desc="epoch 10/40", unit="batch", bar_format=BAR_FORMAT, file=out, ncols=80)
    bar.update(44)
    bar.set_postfix_str(progress_figures(2.41234, 0.10156, 0.003, 3548.4))
    bar.close()
    line = out.getvalue().split("\r")[-2 if out.getvalue().endswith("\r") else -1].strip()
    assert line.startswith("epoch 10/40 |") and "| 44/97, loss 2.412 acc 0.102 lr 3.0e-03 3548 img/s" in line, line
    assert len(line) <= 80


def test_a_legal_file_name_of_up_to_255_bytes_is_written(tmp_path, capsys):
    """(before: a name over about 220 bytes was refused as "File name too long": its temporary's, which adds the
    writer's machine, pid and a random part, was)"""
    longest = "f" * 251 + ".svg"  # 255 bytes
    assert main(["draw", "lenet5", "--out", str(tmp_path / longest)]) == 0
    assert (tmp_path / longest).read_text(encoding="utf-8").lstrip().startswith("<")
    name = "é" * 120 + ".txt"  # 244 bytes of UTF-8
    dead = tmp_path / f"{_atomic.temporary_prefix(name).replace(f'-{os.getpid()}.', '-999999999.')}abcd1234.tmp"
    dead.write_text("left by a killed writer")
    _atomic.atomic_write(tmp_path / name, lambda tmp: Path(tmp).write_text("whole", encoding="utf-8"))
    assert (tmp_path / name).read_text(encoding="utf-8") == "whole" and not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([longest, name])


def test_an_evaluation_that_cannot_be_written_leaves_no_empty_folder(tmp_path, monkeypatch):
    """(before: `evaluate --output new/dir` on a full disk said so in one line and left new/dir empty)"""
    report = EvaluationReport.of(torch.eye(3), torch.tensor([0, 1, 2]), ["a", "b", "c"])

    def full(writes):
        raise DiskFullError("no space left on the device")
    monkeypatch.setattr(inference, "write_together", full)
    with pytest.raises(DiskFullError):
        report.write(tmp_path / "new" / "dir")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # (13 s: three subprocess commands)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")
def test_a_command_whose_stderr_is_closed_does_its_work_and_keeps_its_exit_codes(tmp_path):
    """`convolab train ... 2>&-` (a cron line, a service): Python leaves sys.stderr None, which the progress bar and
    the error line wrote to (before: AttributeError, exit 1, a run folder of config.json alone)."""
    def run(*argv: str) -> int:
        return subprocess.run([sys.executable, "-m", "convolab", *argv], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              preexec_fn=lambda: os.close(2), timeout=600).returncode
    assert run("train", "lenet5", "--data", "digits", "--epochs", "0", "--output", "bad") == 2
    assert run("train", "lenet5", "--data", "digits", "--epochs", "1", "--train-subset", "200", "--output", "r") == 0
    assert {"best.pt", "last.pt", "metrics.csv"} <= {p.name for p in (tmp_path / "r").iterdir()}


def _recorded_as(run: Path, data: str) -> None:
    """The run's records of its data rewritten as `data` (an older convolab's relative path)."""
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    (run / "config.json").write_text(json.dumps({**config, "data": data}), encoding="utf-8")
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / name, weights_only=False)
        state["data"] = data
        state["config"] = json.dumps({**json.loads(state["config"]), "data": data})
        torch.save(state, run / name)


def test_a_run_that_records_its_data_relative_reads_it_from_here_saying_so(tmp_path, monkeypatch, caplog, capsys):
    """A run of an older convolab records --data ../imgs (relative): evaluate and --resume read it against the
    current folder, other data from another one, without a word. Now they say which folder they read, or, where
    it is not there, one line; and a Python run records its data absolute, as the command does."""
    write_png_folder(tmp_path / "imgs", per_class=4)
    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    trainer = Trainer(TrainConfig(model="lenet5_modern", data="../imgs", epochs=1, batch_size=4, output="run",
                                  progress=False))
    trainer.fit()
    recorded = json.loads((tmp_path / "w" / "run" / "config.json").read_text(encoding="utf-8"))["data"]
    assert recorded == str((tmp_path / "imgs").resolve())  # (before: "../imgs")
    _recorded_as(tmp_path / "w" / "run", "../imgs")
    caplog.set_level(logging.WARNING)
    assert main(["evaluate", "run"]) == 0
    said = "records its data as the relative path '../imgs', as convolab did before 2026-11-28"
    assert f"run {said}: read from this folder as {(tmp_path / 'imgs').resolve()}" in caplog.text
    monkeypatch.chdir(tmp_path)
    err = one_line(capsys, ["evaluate", "w/run"])
    assert f"w/run {said}, which is not there from this folder: give --data" in err, err
    monkeypatch.chdir(tmp_path / "w")
    assert main(["train", "--resume", "run", "--epochs", "2", "--no-progress"]) == 0
    assert f"config.json {said}: read from this folder" in caplog.text
    monkeypatch.chdir(tmp_path)  # (the resumed run records its data absolute: read from any folder now)
    assert main(["evaluate", "w/run"]) == 0


def test_an_export_of_no_metadata_revision_at_another_size_is_warned_about(caplog):
    """An ONNX or TorchScript file of a convolab before 2026-11-29 23:00 recorded 'resize' for a run that squashed its
    image folder's files at --image-size: its predictions differ from the checkpoint's, and nothing said so. Files
    written now record META_REVISION; an old one at the model's own size is as it was (no warning)."""
    meta = ExportMeta("resnet20", ("a", "b"), 3, (24, 24), (0.5,) * 3, (0.25,) * 3)
    now = meta.to_strings()
    assert now["meta_revision"] == str(META_REVISION)
    old = {k: v for k, v in now.items() if k != "meta_revision"}
    own = {**old, "image_size": "[32, 32]"}
    caplog.set_level(logging.WARNING)
    assert ExportMeta.from_strings(now, "new.onnx") == meta
    assert ExportMeta.from_strings(own, "own.onnx").image_size == (32, 32)
    assert caplog.text == ""
    assert ExportMeta.from_strings(old, "old.onnx") == meta
    ExportMeta.from_strings(old, "old.onnx")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith("old.onnx records no metadata revision") and \
        "`image_size` 24, export it again from its checkpoint" in warned[0], warned
    mine = {**old, "model_name": "MyNet"}  # (a model of no registered name: its own size unknown, nothing said)
    assert ExportMeta.from_strings(mine, "mine.onnx").model_name == "MyNet" and len(caplog.records) == 1


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_data_in_dev_shm_is_data(tmp_path):
    """/dev/shm, a memory file system, holds users' data for speed: not refused with the kernel's /dev."""
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        data = write_png_folder(shm / "imgs", per_class=2, split_dirs=False)
        names, _ = ImageSource(data).list_images()
        assert len(names) == 6
    finally:
        shutil.rmtree(shm)


def review_users_picky(num_classes: int = 10, in_chans: int = 1, **_: object) -> nn.Module:
    """A model of a user's own whose code refuses the data's size with its own AssertionError (registered by the test
    that uses it, and removed after: the registry's sweeps build every registered model)."""
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(in_chans * 32 * 32, num_classes)

        def forward(self, x):
            assert x.shape[-1] == 32, "Picky takes 32 px images"
            return self.head(x.flatten(1))
    return Picky()


def test_compare_reports_a_model_whose_own_code_fails_and_trains_the_others(tmp_path):
    """compare's check that some model builds (an option failing them all is refused before the comparison exists)
    took a user model's own AssertionError for the end of the command (before: a traceback, nothing trained; and
    before that check: the model reported failed, the others trained)."""
    register_model(review_users_picky)
    try:
        results = compare_models(["review_users_picky", "lenet5"], TrainConfig(model="lenet5", data="digits", epochs=1,
                                                                               progress=False), tmp_path / "cmp", "x")
    finally:
        _registry._ENTRIES.pop("review_users_picky")
    assert [(r.model, r.status.split(":")[0]) for r in results] == [("review_users_picky", "failed"), ("lenet5", "ok")]


def test_a_file_system_without_locks_runs_the_block_at_once(tmp_path, monkeypatch):
    """NFS without lockd refuses flock with ENOLCK: taken for another holder, it said "waiting for another convolab
    command" and then raised OSError's traceback from the blocking flock."""
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(_atomic.fcntl, "flock", no_locks)
    waited = []
    with _atomic.one_at_a_time(tmp_path / "x.lock", lambda: waited.append(True)):
        ran = True
    assert ran and waited == []


def test_a_labels_csv_linked_into_its_images_folder_trains(tmp_path, capsys):
    """A labels CSV names its images from its own folder; one reached through a link was recorded (and read) at the
    link's target, where the images are not (before: 'image 0.png does not exist (looked for SHARED/0.png)')."""
    shared, images = tmp_path / "shared", tmp_path / "imgs"
    shared.mkdir()
    write_png_folder(images, per_class=6, split_dirs=False)
    rows = [f"{p.relative_to(images)},{p.parent.name}" for p in sorted(images.rglob("*.png"))]
    (shared / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    (images / "labels.csv").symlink_to(shared / "labels.csv")
    assert main(["train", "lenet5_modern", "--data", str(images / "labels.csv"), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--output", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["data"] == \
        str(images / "labels.csv")


def test_ranks_of_nproc_name_the_command_the_user_ran_as_the_holder(tmp_path, monkeypatch):
    """Under --nproc the holder line named rank 0 (`python -c train ...`), a process the user never started: the
    launcher passes its own pid and command to the ranks."""
    monkeypatch.setenv(rundir.HOLDER, "4321\nconvolab train lenet5 --nproc 2 --output run")
    claim = rundir.claim_run_dir(tmp_path)
    try:
        assert rundir.holder(tmp_path) == " (pid 4321: convolab train lenet5 --nproc 2 --output run)"
    finally:
        claim.release()


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("two") / "run"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "2", "--no-progress", "--output", str(run)]) == 0
    return run


def _edited(run: Path, tmp_path: Path, edit) -> Path:
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    state = torch.load(copy / "last.pt", weights_only=True)
    edit(state)
    torch.save(state, copy / "last.pt")
    return copy


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update(step=10**12), "its step is 1000000000000, but epoch 2 and batch 0 of this run are step"),
    (lambda s: s.update(step=10), "its step is 10, but epoch 2"),
    (lambda s: s.update(best_acc=float("nan")), "its best_acc is nan, not an accuracy"),
    (lambda s: s["optimizer"].update(state={}), "its optimizer holds no state (moments, momentum) after steps"),
], ids=["step-huge", "step-small", "best-acc-nan", "optimizer-state-emptied"])
def test_a_last_pt_of_edited_progress_is_refused(two_epochs, tmp_path, capsys, edit, words):
    """(before: resumed without a word, on another schedule, never beating a NaN best, or with Adam's moments reset)"""
    run = _edited(two_epochs, tmp_path, edit)
    before = (run / "best.pt").read_bytes()
    err = one_line(capsys, ["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    assert words in err, err
    assert (run / "best.pt").read_bytes() == before


@pytest.mark.parametrize("damage", ["dangling-link", "link-to-itself", "removed"])
def test_a_run_whose_last_pt_is_lost_is_not_trained_again_over_its_best_pt(two_epochs, tmp_path, capsys, damage):
    """(before: 'holds no last.pt (stopped before its first epoch ended): training it from the start', which
    overwrote its best.pt and metrics)"""
    run = Path(shutil.copytree(two_epochs, tmp_path / "run"))
    (run / "last.pt").unlink()
    if damage == "dangling-link":
        (run / "last.pt").symlink_to(tmp_path / "gone" / "last.pt")
    elif damage == "link-to-itself":
        (run / "last.pt").symlink_to("last.pt")
    before = (run / "best.pt").read_bytes()
    err = one_line(capsys, ["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    assert ("is a link that leads nowhere" if "link" in damage else "holds 2 epochs in metrics.csv but no last.pt") \
        in err, err
    assert (run / "best.pt").read_bytes() == before


def test_a_checkpoint_whose_bytes_changed_or_whose_weights_are_whole_numbers_is_refused(two_epochs, tmp_path, capsys):
    """torch.load reads a flipped bit of a tensor without a word (the zip's CRC-32 would tell), and casts whole-number
    weights (before: evaluate scored both, 0.29 and 0.10 for the run's 0.35)."""
    flipped = tmp_path / "flipped.pt"
    raw = bytearray((two_epochs / "best.pt").read_bytes())
    weight = torch.load(two_epochs / "best.pt", weights_only=True)["model"]["head.fc2.weight"]
    at = bytes(raw).find(weight.flatten()[:4].numpy().tobytes())
    raw[at + 3] ^= 0x40
    flipped.write_bytes(raw)
    err = one_line(capsys, ["evaluate", str(flipped), "--output", str(tmp_path / "e1")])
    assert "flipped.pt is damaged: its part" in err and "fails its checksum" in err, err
    state = torch.load(two_epochs / "best.pt", weights_only=True)
    state["model"]["features.3.weight"] = state["model"]["features.3.weight"].long()
    torch.save(state, tmp_path / "whole.pt")
    err = one_line(capsys, ["evaluate", str(tmp_path / "whole.pt"), "--output", str(tmp_path / "e2")])
    assert "features.3.weight holds torch.int64 values in the checkpoint" in err, err


def test_lr_find_says_which_of_trains_options_it_does_not_use(tmp_path, caplog):
    """lr-find takes all of train's options (a training command line tested as it is), and ignored --patience,
    --lr, --test-subset and the like without a word."""
    caplog.set_level(logging.WARNING)
    assert main(["lr-find", "lenet5_modern", "--data", "digits", "--steps", "20", "--no-progress", "--patience", "1",
                 "--lr", "5", "--test-subset", "10", "--output", str(tmp_path / "l")]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lr-find does not use")]
    assert said == ["lr-find does not use --lr, --patience, --test-subset: it sets each step's learning rate itself, "
                    "trains --steps batches and scores no test images"], said


def test_the_help_of_a_no_flag_does_not_say_default_on(capsys):
    """`--no-memory-check ... (default: on)` read as if the check were off unless asked."""
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "free memory (refused otherwise) --output" in text and "and CUDA (default: on)" in text


@pytest.mark.parametrize("fraction", [-0.5, 1.0, 2.0, True, "0.1"])
def test_stratified_split_refuses_a_fraction_outside_0_to_1(fraction):
    """(before: -0.5 held out 3 of 7 images and 2.0 held out 4, from the end of each class)"""
    with pytest.raises(ConfigError, match="test_fraction must be a number in \\[0, 1\\)"):
        stratified_split(torch.tensor([0, 0, 1, 1, 1, 1, 2]), fraction)


def test_features_out_given_the_data_folder_is_told_so_first(two_epochs, tmp_path, capsys):
    """(before: '--out imgs is a directory; give a file name such as imgs/features.npz', which was then refused as
    lying inside the data folder)"""
    data = write_png_folder(tmp_path / "imgs", per_class=2, mode="L")
    err = one_line(capsys, ["features", str(two_epochs), "--data", str(data), "--out", str(data)])
    assert f"--out {data} is the data the features are computed from" in err, err


def test_models_name_lists_the_options_the_help_of_model_option_points_to(capsys):
    """summary's and draw's --model-option help says `convolab models NAME` lists a model's options: it listed none,
    and an unknown option's line named none either."""
    assert main(["models", "googlenet"]) == 0
    listed = "options (--model-option KEY=VALUE): aux_logits=False, drop_rate=0.4, img_size=224"
    assert listed in capsys.readouterr().out
    assert main(["models", "resnet18", "--json"]) == 0
    assert {"stem", "drop_rate", "img_size"} <= set(json.loads(capsys.readouterr().out)[0]["options"])
    err = one_line(capsys, ["summary", "lenet5", "--model-option", "foo=1"])
    assert "unexpected keyword argument 'foo' (its options: img_size=28)" in err, err


def test_options_this_run_has_no_use_for_are_named(tmp_path, caplog):
    """--workers and --min-crop-scale on images held in memory, --sync-bn in one process: taken without a word
    (before), where --nesterov with Adam was warned about."""
    caplog.set_level(logging.WARNING)
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--train-subset", "200",
                 "--no-progress", "--min-crop-scale", "0.5", "--workers", "2", "--sync-bn",
                 "--output", str(tmp_path / "run")]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not used by this run")]
    flags = ("--workers (", "--min-crop-scale (", "--sync-bn (")
    assert len(said) == 1 and all(flag in said[0] for flag in flags), said
    caplog.clear()
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--train-subset", "200",
                 "--no-progress", "--output", str(tmp_path / "plain")]) == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("not used by this run")]
