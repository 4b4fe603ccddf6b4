"""Faults found and fixed in the session of 2026-11-29 (evening): each test failed before its fix."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import signal_after_step, write_png_folder
from torch import nn

import convolab
from convolab import reproduce
from convolab.cli import main
from convolab.compare import runner
from convolab.data import default_data_dir, load_data
from convolab.errors import CheckpointError, ConvolabError
from convolab.export.exporters import export_onnx
from convolab.export.portable import FloorModeAvgPool
from convolab.training import TrainConfig, Trainer, TrainingInterrupted, rundir
from convolab.training.process import ProcessState
from convolab.training.rundir import LOCK_FILE


def _taken_after_the_look(monkeypatch, name: str) -> None:
    """Another command makes the folder `name` just after this one looked for it (and found none)."""
    real_exists = Path.exists

    def exists(self, *args, **kwargs):
        found = real_exists(self, *args, **kwargs)
        if self.name == name and not found:
            self.mkdir(parents=True)  # (the other command's mkdir, between this one's look and its own)
        return found

    monkeypatch.setattr(Path, "exists", exists)


def test_a_default_folder_taken_between_the_look_and_the_mkdir_goes_to_the_next(tmp_path, monkeypatch):
    _taken_after_the_look(monkeypatch, "m-d")
    made = rundir.next_free_dir("m-d", tmp_path / "runs", create=True)
    assert made == tmp_path / "runs" / "m-d-2" and made.is_dir()
    assert rundir.next_free_dir("m-d", tmp_path / "runs") == tmp_path / "runs" / "m-d-3"  # (unmade: as before)
    assert not (tmp_path / "runs" / "m-d-3").exists()


def test_two_trains_without_output_started_together_each_get_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _taken_after_the_look(monkeypatch, "lenet5_modern-digits")  # (the other `convolab train`, started with it)
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "lenet5_modern-digits-2" / "last.pt").is_file()
    assert not any((tmp_path / "runs" / "lenet5_modern-digits").iterdir())  # (the other command's, untouched)


def test_two_compares_without_output_started_together_each_get_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_load = runner._load

    def load_while_another_takes_the_name(config, **kwargs):
        (tmp_path / "runs" / "compare-digits").mkdir(parents=True)  # the other comparison, while this one reads
        return real_load(config, **kwargs)

    monkeypatch.setattr(runner, "_load", load_while_another_takes_the_name)
    assert main(["compare", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "compare-digits-2" / "compare.json").is_file()
    assert not any((tmp_path / "runs" / "compare-digits").iterdir())
    assert "report: runs/compare-digits-2/report.html" in capsys.readouterr().out  # (not the other command's)


@pytest.mark.parametrize("wrap", ["whole", "state_dict", "model", "module."])
def test_a_plain_torch_state_dict_loads_as_pretrained_as_timm_reads_it(tmp_path, wrap):
    """(before: "is not a convolab checkpoint (no 'convolab-checkpoint' marker)": only safetensors were read)"""
    source = convolab.create_model("resnet20")
    tensors = source.state_dict()
    state = {"whole": tensors, "state_dict": {"state_dict": tensors, "epoch": 3}, "model": {"model": tensors},
             "module.": {f"module.{k}": v for k, v in tensors.items()}}[wrap]
    torch.save(state, tmp_path / "w.pth")
    model = convolab.create_model("resnet20", pretrained=tmp_path / "w.pth")
    assert model.training and torch.equal(model.conv1.weight, source.conv1.weight)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in tensors.items())


def test_a_torch_file_that_is_no_state_dict_is_refused_as_before(tmp_path):
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"w.pth is not a convolab checkpoint"):
        convolab.create_model("resnet20", pretrained=tmp_path / "w.pth")
    torch.save(convolab.create_model("resnet20").state_dict(), tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x.pt holds a plain state dict .* resnet20\(num_classes=5\)"):
        convolab.create_model("resnet20", num_classes=5, pretrained=str(tmp_path / "x.pt"))


def test_resume_takes_a_model_given_with_an_option_at_its_default(digits_run, tmp_path):
    """(before: "the model given to Trainer.resume is not the one ... trained (given: lenet5_modern
    {'drop_rate': 0.0}; its last.pt records lenet5_modern)")"""
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    model = convolab.create_model("lenet5_modern", num_classes=10, img_size=28)  # (28: the default)
    assert model.model_options == {"img_size": 28}
    assert Trainer.resume(run, model=model, epochs=2).fit().history[-1]["epoch"] == 2
    other = convolab.create_model("lenet5_modern", num_classes=10, img_size=32)
    with pytest.raises(CheckpointError, match=r"given: lenet5_modern \{'img_size': 32\}; its last.pt records"):
        Trainer.resume(run, model=other)


def test_two_reproduces_without_output_started_together_each_get_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "runs" / "reproduce-degradation"
    # The other command makes the folder while this one reads the data (not read here: only the folders matter).
    monkeypatch.setattr(reproduce, "load_config_data", lambda config, **_: taken.mkdir(parents=True))
    monkeypatch.setattr(reproduce, "_run_arms", lambda experiment, output, *rest, **kw: (True, "ok", output / "r.html"))
    assert main(["reproduce", "degradation", "--quick"]) == 0
    assert (tmp_path / "runs" / "reproduce-degradation-2" / "experiment.json").is_file()
    assert not any(taken.iterdir())
    assert "runs/reproduce-degradation-2/r.html" in capsys.readouterr().out


HOLDER = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def held_by_another_command(folder: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder / LOCK_FILE)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_comparison_or_experiment_folder_in_use_by_another_command_is_refused(tmp_path, monkeypatch, capsys):
    """(before: both commands ran in the folder, the second's compare.json or experiment.json replacing the
    first's; a second `--resume` of one folder resumed it twice at once)"""
    out = tmp_path / "cmp"
    out.mkdir()
    with held_by_another_command(out):  # another `convolab compare --output cmp`, started with this one
        assert main(["compare", "lenet5_modern", "--data", "digits", "--epochs", "1", "--output", str(out)]) == 2
        assert f"--output {out} is in use by another convolab command" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
    exp = tmp_path / "exp"
    monkeypatch.setattr(reproduce, "load_config_data", lambda config, **_: None)  # (cifar10: not here)
    monkeypatch.setattr(reproduce, "_run_arms", lambda experiment, output, *rest, **kw: (True, "ok", output / "r.html"))
    exp.mkdir()
    with held_by_another_command(exp):
        assert main(["reproduce", "degradation", "--quick", "--output", str(exp)]) == 2
        assert f"--output {exp} is in use by another convolab command" in capsys.readouterr().err
    assert main(["reproduce", "degradation", "--quick", "--output", str(exp)]) == 0  # (its lock file alone: empty)
    with held_by_another_command(exp):
        assert main(["reproduce", "--resume", str(exp)]) == 2
        assert f"the experiment {exp} is in use by another convolab command" in capsys.readouterr().err


@pytest.mark.slow  # (9 s: a script of its own)
def test_training_and_its_pictures_leave_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    """(before: fit() switched the caller's backend to Agg: a notebook's inline backend was lost)"""
    code = f"""
import matplotlib.pyplot as plt
plt.switch_backend("pdf"); mine = plt.figure()
from convolab.training import TrainConfig, Trainer
from convolab.training.inference import plot_confusion
import numpy as np
Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output={str(tmp_path / 'r')!r},
                    progress=False)).fit()
plot_confusion(np.eye(3, dtype=np.int64), ["a", "b", "c"], __import__("pathlib").Path({str(tmp_path / 'c.png')!r}))
print(plt.get_backend(), plt.get_fignums())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["pdf", "[1]"], out
    assert (tmp_path / "r" / "curves.png").stat().st_size > 10_000 and (tmp_path / "c.png").is_file()


def test_cache_folders_follow_the_environment_at_each_load_and_an_empty_variable_is_unset(tmp_path, monkeypatch):
    """(before: CONVOLAB_CACHE= cached into the current folder, a variable set after `import convolab` was
    ignored, and XDG_CACHE_HOME moved torch's and Hugging Face's caches but not convolab's)"""
    monkeypatch.chdir(tmp_path)
    write_png_folder(tmp_path / "imgs", per_class=3, size=8)
    monkeypatch.setenv("CONVOLAB_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_data(str(tmp_path / "imgs"), loader="cache")
    assert list((tmp_path / "xdg" / "convolab" / "images").glob("*.pt"))
    assert not list(tmp_path.glob("*.pt"))
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "later"))  # (set after the import)
    load_data(str(tmp_path / "imgs"), loader="cache")
    assert list((tmp_path / "later").glob("*.pt"))
    monkeypatch.setenv("CONVOLAB_DATA", "")
    assert default_data_dir() == str(tmp_path / "xdg" / "convolab" / "data")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # (XDG: a relative path is ignored)
    assert default_data_dir() == "~/.cache/convolab/data"


@pytest.mark.slow  # (7 s: a command of its own)
def test_a_path_the_terminal_cannot_encode_is_escaped_not_a_traceback(tmp_path):
    """(before: UnicodeEncodeError at the first line naming the run folder, exit 1, the folder left empty)"""
    out = tmp_path / "rün"
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", "digits", "--epochs",
                           "1", "--no-progress", "--output", str(out)], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-600:]
    assert b"r\\xfcn" in done.stdout and (out / "last.pt").is_file()


@pytest.mark.slow  # (9 s: a script of its own)
def test_main_called_from_python_logs_to_stderr_and_leaves_the_root_logger_alone(tmp_path):
    """(before: main() ran logging.basicConfig(level=INFO) on the caller's root logger, so every library's INFO
    lines, matplotlib's "generated new fontManager" among them, went to stderr from then on)"""
    code = f"""
import logging
from convolab.cli import main
main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
      "--output", {str(tmp_path / 'r')!r}])
root = logging.getLogger()
print(root.level, len(root.handlers), len(logging.getLogger("convolab").handlers))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-3:] == ["30", "0", "0"], done.stdout
    assert "epoch 1/1  train loss" in done.stderr  # (a log line of convolab's, on stderr as from the command)


def test_the_source_distribution_holds_what_runs_and_checks_the_package(tmp_path):
    """(before: the sdist held tests/test_*.py without conftest.py, which 22 of them import, and no benchmarks/,
    docs/ or LICENSE; building it warned that setuptools would stop reading the license as a table in 2027)"""
    root = Path(__file__).resolve().parents[1]
    tree = tmp_path / "tree"
    shutil.copytree(root, tree, ignore=shutil.ignore_patterns(".*", "*.egg-info", "runs", "__pycache__", "build",
                                                                "dist", "out", "gpu-out", "*.log"))
    shutil.copytree(root / ".ci", tree / ".ci")
    code = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code, str(tmp_path / "dist")],
                          cwd=tree, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-800:]
    assert "SetuptoolsDeprecationWarning" not in done.stderr
    with tarfile.open(tmp_path / "dist" / done.stdout.split()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "tests/conftest.py", "benchmarks/gpu.py", "docs/REFERENCE.md", ".ci/run",
            "convolab/cli/__init__.py"} <= names
    assert {name for name in names if name.startswith("tests/test_")} == \
        {f"tests/{p.name}" for p in (root / "tests").glob("test_*.py")}


@pytest.mark.parametrize("size", [7, 8, 15, 16])
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 3, 1), (5, 3, 2), (3, 1, 1)])
@pytest.mark.parametrize("include_pad,divisor", [(True, None), (False, None), (True, 5)])
def test_a_ceil_mode_average_pool_rewritten_for_export_computes_what_pytorch_does(size, kernel, stride, padding,
                                                                                  include_pad, divisor):
    pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=True, count_include_pad=include_pad,
                        divisor_override=divisor)
    x = torch.randn(2, 3, size, size + 1)
    torch.testing.assert_close(FloorModeAvgPool(pool)(x), pool(x), rtol=1e-6, atol=1e-6)


def test_nin_cifars_onnx_graph_pools_in_floor_mode_only(tmp_path):
    """(before: its AveragePool with ceil_mode=1, which ONNX Runtime before 1.24 averages otherwise than PyTorch
    over the last, overhanging window: the export of nin_cifar was refused there, 0.0036 of a logit apart)"""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = convolab.create_model("nin_cifar").eval()
    result = export_onnx(model, tmp_path / "nin.onnx", (3, 32, 32))
    assert result.max_abs_diff < 1e-4
    pools = [node for node in onnx.load(str(tmp_path / "nin.onnx")).graph.node if node.op_type == "AveragePool"]
    assert pools and all(attr.i == 0 for node in pools for attr in node.attribute if attr.name == "ceil_mode")


# ----- a Trainer leaves its caller's process as it found it (a tester's hunt of the Python API) -----------------
def _digits(tmp_path: Path, name: str, **options) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5_modern", "data": "digits", "epochs": 1, "progress": False,
                          "output": str(tmp_path / name), **options})


def test_a_trainer_draws_from_its_own_random_streams_not_the_callers(tmp_path):
    """(before: every Trainer reseeded torch's global stream with its seed and kept it: a caller's random search
    drew the same lr after every run, and resuming set the checkpoint's stream as the caller's)"""
    torch.manual_seed(2024)
    expected = torch.rand(3)
    torch.manual_seed(2024)
    first = torch.rand(1)
    trainer = Trainer(_digits(tmp_path, "a"))
    second = torch.rand(1)
    trainer.fit()
    third = torch.rand(1)
    Trainer.resume(tmp_path / "a", epochs=2).fit()
    assert torch.equal(torch.cat([first, second, third]), expected)
    # the run's own numbers are the same whatever the caller drew meanwhile
    torch.manual_seed(7)
    again = Trainer(_digits(tmp_path, "b"))
    torch.rand(100)
    assert again.fit().history[0]["train_loss"] == trainer.history[0]["train_loss"]


def test_fit_inside_a_callers_no_grad_or_autocast_region_trains(tmp_path):
    """(before: inside torch.no_grad() a traceback, "element 0 of tensors does not require grad", and the folder
    kept a config.json that refused the next Trainer; inside a caller's autocast the forwards read autocast's cached
    copies of the initial weights: test accuracy 0.1, no warning)"""
    plain = Trainer(_digits(tmp_path, "plain")).fit().test_acc
    with torch.no_grad():
        assert Trainer(_digits(tmp_path, "no-grad")).fit().test_acc == plain
    with torch.inference_mode():  # (built there too: its parameters were inference tensors)
        assert Trainer(_digits(tmp_path, "inference")).fit().test_acc == plain
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert Trainer(_digits(tmp_path, "autocast")).fit().test_acc == plain  # (amp off: full precision)
    with torch.autocast("cpu", enabled=False):
        assert Trainer(_digits(tmp_path, "bf16", amp="bf16")).fit().test_acc > 0.5


def test_a_trainer_leaves_the_callers_threads_and_default_dtype(tmp_path):
    """(before: --threads stayed set after fit(); a caller's float64 default built a model of doubles: "Input type
    (float) and bias type (double) should be the same")"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    try:
        result = Trainer(_digits(tmp_path, "t", threads=2)).fit()
        assert torch.get_num_threads() == 1 and torch.get_default_dtype() == torch.float64
        assert result.test_acc > 0.5
        assert Trainer.resume(tmp_path / "t", epochs=2).fit().history[-1]["epoch"] == 2
        assert torch.get_num_threads() == 1 and torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
        torch.set_num_threads(threads)


def test_fit_again_after_a_ctrl_c_trains_on(tmp_path):
    """(before: the spent signal stopped the second fit() at once: "stopped by signal 2" (now SIGINT), no step taken)"""
    trainer = Trainer(_digits(tmp_path, "r", epochs=2))
    signal_after_step(trainer, 3)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    assert trainer.fit().history[-1]["epoch"] == 2


def test_a_refused_trainer_leaves_the_given_models_data_config(tmp_path):
    """(before: its mean and std were the digits' though the Trainer refused the config)"""
    model = convolab.create_model("lenet5_modern", num_classes=10, in_chans=1)
    before = model.data_config
    with pytest.raises(ConvolabError, match="monitor"):
        Trainer(_digits(tmp_path, "m", monitor="test_acc_foo"), model=model)
    assert model.data_config == before


def test_cudnn_benchmark_holds_while_a_gpu_run_works_and_the_callers_comes_back():
    """(before: a CUDA run set torch.backends.cudnn.benchmark = True for the rest of the caller's process)"""
    process, before = ProcessState(cudnn_benchmark=True), torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        with process.applied():
            assert torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_the_input_size_probe_leaves_each_modules_own_mode(tmp_path):
    """(before: their `model.train(was_training)` put a BatchNorm the caller had frozen back in train mode)"""
    model = convolab.create_model("resnet20", num_classes=10, in_chans=1)
    frozen = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in frozen:
        bn.eval()
    Trainer(_digits(tmp_path, "s", image_size=16), model=model)  # (16 px: not the model's own 32, so probed)
    assert not any(bn.training for bn in frozen) and model.training


def test_resume_takes_options_at_defaults_a_kwargs_builder_does_not_name(tmp_path):
    """(before: resnet20's builder takes **kwargs, so drop_rate=0.0 and shortcut="A", its defaults, were refused)"""
    Trainer(_digits(tmp_path, "r20", model="resnet20", train_subset=64, test_subset=32)).fit()
    for options in ({"drop_rate": 0.0}, {"shortcut": "A"}):
        model = convolab.create_model("resnet20", num_classes=10, in_chans=1, **options)
        assert Trainer.resume(tmp_path / "r20", model=model).epoch == 1
    other = convolab.create_model("resnet20", num_classes=10, in_chans=1, drop_rate=0.3)
    with pytest.raises(CheckpointError, match=r"given: resnet20 \{'drop_rate': 0.3\}"):
        Trainer.resume(tmp_path / "r20", model=other)


def test_threads_beyond_the_cores_are_refused_before_any_is_started(tmp_path):
    """(before this fix, within this session: ProcessState set torch's threads before --threads was checked; torch
    2.4 started all 100,000 of them, and the refused Trainer left 32,000 threads in the process)"""
    tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0
    threads = torch.get_num_threads()
    with pytest.raises(ConvolabError, match="threads 100000 is more than 4 threads a core"):
        Trainer(_digits(tmp_path, "t", threads=100_000))
    assert torch.get_num_threads() == threads
    if tasks:
        assert len(os.listdir("/proc/self/task")) < tasks + 64
