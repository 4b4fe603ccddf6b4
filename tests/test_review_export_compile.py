"""Export and compile loose ends (each failed before its fix): an ONNX or TorchScript --out in a missing folder
(refused, where safetensors made its folder); temporaries of a write killed mid-way (never removed); --compile's
first epoch (its img/s mostly compile time, with no word); --compile-mode reduce-overhead on the CPU (no word);
torch's "No CUDA runtime is found" on every CPU --compile run; and the one test of NaN/inf outputs."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from convolab._atomic import atomic_write, remove_stale_temporaries
from convolab.cli import main
from convolab.errors import CheckpointError
from convolab.export import ExportError, export_safetensors, export_torchscript, exporters, model_from_checkpoint
from convolab.training import TrainConfig, Trainer, inference, loop
from convolab.training.metrics import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(digits_run) -> Path:
    """lenet5_modern trained for one epoch on the digits (tests/conftest.py)."""
    return digits_run


# ----- 1. an ONNX or TorchScript --out in a missing folder: made, as for safetensors ------------------------------
def test_onnx_and_torchscript_exports_make_the_missing_folders_of_out(run, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--out", str(tmp_path / "a" / "b" / "m.onnx")]) == 0
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "c" / "m.pt")]) == 0
    assert main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "d" / "sf")]) == 0
    assert (tmp_path / "a" / "b" / "m.onnx").is_file() and (tmp_path / "c" / "m.pt").is_file()
    assert (tmp_path / "d" / "sf" / "model.safetensors").is_file()
    model, meta = model_from_checkpoint(run)  # the Python function too
    export_torchscript(model, tmp_path / "e" / "f" / "m.pt", (meta.in_chans, *meta.image_size), meta=meta)
    assert (tmp_path / "e" / "f" / "m.pt").is_file()


def test_a_failed_export_into_a_new_folder_removes_the_folders_it_made(run, tmp_path, capsys, monkeypatch):
    # the file read back differs by 1 from PyTorch (TorchScript's own differs by 0: no tolerance refuses it)
    monkeypatch.setattr(exporters, "_differences", lambda expected, run, inputs: torch.tensor([[1.0, 1.0]]))
    code = main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "new" / "deeper" / "m.pt")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing was written" in err[0], err
    assert list(tmp_path.iterdir()) == []


# ----- 2. temporaries left by a write killed mid-way ---------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from convolab._atomic import atomic_write

    def write(tmp):
        Path(tmp).write_bytes(b"half")
        print(tmp, flush=True)
        time.sleep(120)

    atomic_write(sys.argv[1], write)
""")


def _writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process writing `target` through atomic_write, stopped mid-write: it and its temporary file."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline().strip()  # (printed once the temporary holds its first bytes)
    assert line, "the writer died before writing"
    return proc, Path(line)


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _named_temporary(folder: Path, name: str) -> str:
    """The name atomic_write gives a temporary of folder/name, as this process writes it."""
    seen = []
    atomic_write(folder / name, lambda tmp: (seen.append(Path(tmp).name), Path(tmp).write_text("x")))
    return seen[0]


def _space(folder: Path) -> str:
    """This machine's part of a temporary's name (SPACE in `.NAME.SPACE-PID.XXXXXXXX.tmp`)."""
    found = re.fullmatch(r"\.probe\.([0-9a-f]{8})-(\d+)\.[a-z0-9_]{8}\.tmp", _named_temporary(folder, "probe"))
    assert found is not None and int(found[2]) == os.getpid(), "the temporary does not name its writer"
    return found[1]


def test_a_temporary_left_by_a_kill_9_mid_write_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "last.pt"
    killed, left = _writer(target)
    live, writing = _writer(target)  # a second command writing the same file, still running
    try:
        assert left.exists() and writing.exists()
        killed.kill()  # SIGKILL: nothing runs to remove the temporary
        killed.wait()
        assert left.exists()
        atomic_write(target, lambda tmp: Path(tmp).write_text("whole"))
        assert target.read_text() == "whole"
        assert not left.exists()  # its writer is gone
        assert writing.exists()  # its writer still runs: never removed
    finally:
        live.kill()
        live.wait()
    atomic_write(target, lambda tmp: Path(tmp).write_text("again"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_only_the_dead_writers_temporaries_of_the_same_file_are_removed(tmp_path):
    space, dead = _space(tmp_path), _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        planted = {
            "dead": f".best.pt.{space}-{dead}.abcd1234.tmp",
            "live": f".best.pt.{space}-{sleeper.pid}.abcd1234.tmp",  # (another --nproc rank, another command)
            "elsewhere": f".best.pt.{int(space, 16) ^ 1:08x}-{dead}.abcd1234.tmp",  # another machine's or container's
            "another file": f".last.pt.{space}-{dead}.abcd1234.tmp",  # (its own next write removes it)
        }
        for name in planted.values():
            (tmp_path / name).write_text("half")
        atomic_write(tmp_path / "best.pt", lambda tmp: Path(tmp).write_text("whole"))
        left = {p.name for p in tmp_path.iterdir()}
        assert planted["dead"] not in left
        assert {planted["live"], planted["elsewhere"], planted["another file"]} <= left
        # the resume's sweep of the run folder (`remove_stale_temporaries`) spares a live writer's too
        removed = {p.name for p in remove_stale_temporaries(tmp_path)}
        assert removed == {planted["another file"]}
        assert {planted["live"], planted["elsewhere"]} <= {p.name for p in tmp_path.iterdir()}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_exports_remove_temporaries_their_killed_predecessors_left(run, tmp_path, capsys):
    space, dead = _space(tmp_path), _dead_pid()
    out = tmp_path / "m.torchscript.pt"
    left = tmp_path / f".{out.name}.{space}-{dead}.q1w2e3r4.tmp"
    left.write_bytes(b"half a TorchScript file")
    folder = tmp_path / "sf"  # a safetensors export stages its files in a folder inside its own
    staging = folder / f".sf.{space}-{dead}.q1w2e3r4.tmp"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"half")
    assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 0
    export_safetensors(run, folder)
    assert not left.exists() and not staging.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


# ----- 3-5. --compile: its time measured and said, CUDA graphs on the CPU, torch's CUDA notice ----------------------
COMPILE_SECONDS = 0.5


def _slow_first_call(monkeypatch) -> None:
    """torch.compile as a wrapper whose first call takes COMPILE_SECONDS more, as compiling does."""
    def fake_compile(model, mode=None):
        def forward(*args, **kwargs):
            if not calls:
                time.sleep(COMPILE_SECONDS)
            calls.append(1)
            return model(*args, **kwargs)

        calls: list[int] = []
        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)


def _clock_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    clock = loop.device_clock
    monkeypatch.setattr(loop, "device_clock", lambda device: calls.append(1) or clock(device))
    return calls


def test_compile_time_is_measured_recorded_and_left_out_of_img_s(tmp_path, monkeypatch, caplog):
    _slow_first_call(monkeypatch)
    caplog.set_level(logging.INFO, logger="convolab")
    clocks = _clock_calls(monkeypatch)
    config = dict(model="lenet5_modern", data="digits", epochs=2, batch_size=256, progress=False)
    Trainer(TrainConfig(**config, output=str(tmp_path / "plain"))).fit()
    plain_clocks = len(clocks)
    assert "compile_seconds" not in (tmp_path / "plain" / "metrics.csv").read_text()
    assert all("compile" not in r.getMessage() for r in caplog.records)
    clocks.clear()
    caplog.clear()
    result = Trainer(TrainConfig(**config, compile=True, output=str(tmp_path / "c"))).fit()
    assert len(clocks) == plain_clocks + 2  # the compiling step alone is clocked apart: no sync on other steps
    first, second = result.history
    assert COMPILE_SECONDS <= first["compile_seconds"] < first["train_seconds"]
    assert second["compile_seconds"] == 0.0
    seen = 5 * 256  # 1438 images, whole batches of 256
    assert first["images_per_second"] == pytest.approx((seen - 256) / (first["train_seconds"]
                                                                      - first["compile_seconds"]))
    assert second["images_per_second"] == pytest.approx(seen / second["train_seconds"])
    rows = read_metrics(tmp_path / "c")
    assert [r["compile_seconds"] for r in rows] == pytest.approx([first["compile_seconds"], 0.0])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert "img/s after compiling" in lines[0] and f"incl. compile {first['compile_seconds']:.1f}s" in lines[0]
    assert "compile" not in lines[1]


def test_an_epoch_of_the_compiling_step_alone_says_its_img_s_includes_it(tmp_path, monkeypatch, caplog):
    _slow_first_call(monkeypatch)
    caplog.set_level(logging.INFO, logger="convolab")
    result = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=1024, compile=True,
                                 progress=False, output=str(tmp_path / "c"))).fit()
    row = result.history[0]
    assert row["images_per_second"] == pytest.approx(1024 / row["train_seconds"])
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch "))
    assert "img/s incl. compile" in line


@pytest.mark.parametrize(("mode", "alike"), [("reduce-overhead", "default"),
                                             ("max-autotune", "max-autotune-no-cudagraphs"),
                                             ("default", None)])
def test_cuda_graph_modes_on_the_cpu_say_so_once(tmp_path, monkeypatch, caplog, mode, alike):
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)
    caplog.set_level(logging.INFO, logger="convolab")
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=256, compile=True, device="cpu",
                        compile_mode=mode, progress=False, output=str(tmp_path / "c")))  # (said as it is built)
    said = [r.getMessage() for r in caplog.records if "CUDA graphs" in r.getMessage()]
    if alike is None:
        assert said == []
    else:
        assert said == [f"`compile_mode` {mode} replays the step as CUDA graphs, which need a CUDA device: on cpu "
                        f"it compiles as `compile_mode` {alike} does"]


def test_torchs_no_cuda_runtime_notice_alone_is_silenced_once_a_run_compiles(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, compile=True, device="cpu", progress=False,
                        output=str(tmp_path / "c")))
    logger = logging.getLogger("torch.utils.cpp_extension")  # (where torch logs it)

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, None)

    assert not logger.filter(record("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda"))
    assert logger.filter(record("Error checking compiler version for %s", "g++"))  # its other warnings stay


@pytest.mark.slow  # (a real torch.compile of the step on the CPU: 20 to 50 s)
def test_a_real_cpu_compile_run_says_its_compile_time_and_no_cuda_notice(tmp_path):
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "lenet5", "--data", "digits", "--epochs", "1",
                           "--batch-size", "256", "--compile", "--compile-mode", "reduce-overhead", "--device", "cpu",
                           "--no-progress", "--output", str(tmp_path / "c")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "No CUDA runtime is found" not in said
    assert said.count("--compile-mode reduce-overhead replays the step as CUDA graphs") == 1, said
    epoch = next(line for line in said.splitlines() if line.startswith("epoch 1/1"))
    assert "img/s after compiling" in epoch and "incl. compile" in epoch, epoch
    assert read_metrics(tmp_path / "c")[0]["compile_seconds"] > 0


# ----- 6. one test of NaN/inf outputs, each command its own line ----------------------------------------------------
def test_export_and_evaluate_share_one_test_of_nan_or_inf_outputs(run):
    finite = inference.finite_outputs
    assert exporters.finite_outputs is finite
    nan, inf = torch.tensor([1.0, float("nan")]), torch.tensor([float("-inf")])
    assert finite(torch.ones(2)) and finite({"main": torch.ones(2), "aux": torch.zeros(1)}) and finite((torch.ones(1),))
    assert not finite(nan) and not finite(inf) and not finite({"main": torch.ones(1), "aux": nan})
    assert not finite([torch.ones(1), inf]) and not finite([nan])
    model, _ = model_from_checkpoint(run)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    with pytest.raises(ExportError, match="the model of X outputs NaN or inf on random inputs: its weights diverged"):
        exporters.reference_outputs(model, [torch.randn(1, 1, 28, 28)], "the model of X")
    with pytest.raises(CheckpointError, match="X: its model outputs NaN or inf"):
        inference.check_finite_outputs(model, {"in_chans": 1, "image_size": [28, 28]}, "X")
