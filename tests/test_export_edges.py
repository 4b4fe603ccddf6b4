"""Export faults: a full disk (TorchScript's C++ writer aborted the process; ONNX said it twice; safetensors
left a folder), --out a device or a FIFO, metadata that do not fit the model, a diverged checkpoint, SIGTERM
mid-write, the hint of a failed check without folding, every file a run writes kept from --out, and
--batch-size with TorchScript."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from convolab.cli import main
from convolab.errors import ConfigError, DiskFullError
from convolab.export import (
    ExportError,
    ExportMeta,
    OnnxClassifier,
    export_onnx,
    export_safetensors,
    export_torchscript,
    model_from_checkpoint,
)
from convolab.training import rundir
from convolab.training.safetensors_io import save_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(digits_run) -> Path:
    """lenet5_modern trained for one epoch on the digits (tests/conftest.py)."""
    return digits_run


@pytest.fixture
def run_copy(run, tmp_path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.fixture(scope="module")
def nan_checkpoint(run, tmp_path_factory) -> Path:
    """The run's best.pt with its first weight tensor NaN, as a diverged run leaves it."""
    ckpt = torch.load(run / "best.pt", weights_only=False)
    ckpt["model"] = {k: v.clone() for k, v in ckpt["model"].items()}
    next(iter(ckpt["model"].values())).fill_(float("nan"))
    path = tmp_path_factory.mktemp("nan") / "nan.pt"
    torch.save(ckpt, path)
    return path


def _onnx_or_skip() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


# ----- 1 and 10: a full disk --------------------------------------------------------------------------------
def test_torchscript_export_on_a_full_disk_is_the_disk_full_line_and_leaves_no_temporary(run, tmp_path, monkeypatch):
    model, meta = model_from_checkpoint(run)
    real = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes",
                        lambda self, data: _no_space() if self.name.endswith(".tmp") else real(self, data))
    with pytest.raises(DiskFullError, match=r"no space left on the disk of .* while writing m\.pt"):
        export_torchscript(model, tmp_path / "m.pt", (1, 28, 28), meta=meta)
    assert list(tmp_path.iterdir()) == []


def test_onnx_export_on_a_full_disk_says_it_once(run, tmp_path, monkeypatch):
    _onnx_or_skip()
    import onnx

    model, meta = model_from_checkpoint(run)
    monkeypatch.setattr(onnx, "save", _no_space)
    with pytest.raises(DiskFullError) as caught:
        export_onnx(model, tmp_path / "m.onnx", (1, 28, 28), meta=meta)
    assert str(caught.value).startswith("no space left on the disk of") and "cannot be written" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     RuntimeError("Error while serializing: I/O error: No space left on device "
                                                  "(os error 28)")], ids=["oserror", "safetensors-rust-error"])
def test_safetensors_export_on_a_full_disk_leaves_no_folder_it_made(run, tmp_path, monkeypatch, failure):
    import safetensors.torch

    def full(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(DiskFullError, match=r"no space left on the disk of .*new/sf\b.* writing model.safetensors"):
        export_safetensors(run, tmp_path / "new" / "sf")
    assert list(tmp_path.iterdir()) == []  # neither sf nor new/ is left
    with pytest.raises(DiskFullError):  # the writer alone removes what it made too
        save_safetensors(torch.load(run / "best.pt", weights_only=False), {}, tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # (12 s; the three formats on a full disk, monkeypatched, run by default above)
def test_exports_onto_a_real_full_disk_are_one_line_each(run, tmp_path):
    """A 64 KiB tmpfs (root only): TorchScript's C++ writer aborted the whole process there (rc 134)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("this system does not let us mount a tmpfs")
    try:
        for fmt, out in (("torchscript", "r.pt"), ("onnx", "r.onnx"), ("safetensors", "sf")):
            if fmt == "onnx":
                _onnx_or_skip()
            done = _run_python(f"""
                import sys
                from convolab.cli import main
                sys.exit(main(["export", {str(run)!r}, "--format", {fmt!r}, "--out", {str(tiny / out)!r}]))""",
                               tmp_path)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
            assert lines[0].startswith("convolab export: error: no space left on the disk of"), lines
            assert "cannot be written" not in lines[0]
            assert list(tiny.iterdir()) == []  # no temporary file, no folder
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


# ----- 2: --out an existing file that is not a regular file ---------------------------------------------------
@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_out_a_fifo_or_a_link_to_one_is_refused_and_left_as_it_is(run, tmp_path, export):
    if export is export_onnx:
        _onnx_or_skip()
    model, meta = model_from_checkpoint(run)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    for name in ("fifo", "link"):
        with pytest.raises(ConfigError, match=f"`path` {tmp_path / name} exists and is not a regular file"):
            export(model, tmp_path / name, (1, 28, 28), meta=meta)
    assert stat.S_ISFIFO((tmp_path / "fifo").stat().st_mode) and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link"]


def test_export_verb_refuses_a_device_node(run, tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(tmp_path / "fakenull", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "fakenull")]) == 2
    assert "exists and is not a regular file" in _error_line(capsys)
    assert stat.S_ISCHR((tmp_path / "fakenull").stat().st_mode)


# ----- 3: metadata that do not fit the model -------------------------------------------------------------------
BAD_METAS = {"three-classes": ExportMeta("lenet5_modern", ("a", "b", "c"), 1, (28, 28), (0.1,), (0.3,)),
             "another-size": ExportMeta("lenet5_modern", tuple("0123456789"), 3, (32, 32), (0.1,) * 3, (0.3,) * 3)}


@pytest.mark.parametrize("meta", BAD_METAS.values(), ids=BAD_METAS.keys())
@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_refuses_metadata_that_do_not_fit_the_model(run, tmp_path, export, meta):
    if export is export_onnx:
        _onnx_or_skip()
    model, _ = model_from_checkpoint(run)
    with pytest.raises(ExportError, match="meta does not fit the model: it (lists 3 classes, but the model gives 10 "
                                          "outputs|says inputs of 3x32x32, but input_size is 1x28x28)"):
        export(model, tmp_path / "m.out", (1, 28, 28), meta=meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("edit, words", [({"classes": '["a", "b", "c"]'}, "they list 3 classes, the model gives 10"),
                                         ({"in_chans": "3", "image_size": "[32, 32]", "mean": "[0.1, 0.1, 0.1]",
                                           "std": "[0.3, 0.3, 0.3]"},
                                          "they say inputs of 3x32x32, the model takes 1x28x28")],
                         ids=["three-classes", "another-size"])
def test_predict_refuses_an_onnx_file_whose_metadata_do_not_fit_its_model(run, tmp_path, capsys, edit, words):
    _onnx_or_skip()
    import onnx
    from PIL import Image

    assert main(["export", str(run), "--out", str(tmp_path / "good.onnx")]) == 0
    proto = onnx.load(str(tmp_path / "good.onnx"))
    for entry in proto.metadata_props:
        entry.value = edit.get(entry.key, entry.value)
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(ExportError, match=f"{tmp_path / 'bad.onnx'}: its metadata do not fit its model: {words}"):
        OnnxClassifier(tmp_path / "bad.onnx")
    Image.new("L", (28, 28), 99).save(tmp_path / "d.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "bad.onnx"), str(tmp_path / "d.png")]) == 2
    assert words in _error_line(capsys)


# ----- 4: a diverged checkpoint ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_a_checkpoint_of_nan_weights_is_refused_as_diverged_before_anything_is_written(nan_checkpoint, tmp_path,
                                                                                       capsys, fmt):
    if fmt == "onnx":
        _onnx_or_skip()
    out = tmp_path / {"onnx": "m.onnx", "torchscript": "m.pt", "safetensors": "sf"}[fmt]
    assert main(["export", str(nan_checkpoint), "--format", fmt, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "outputs NaN or inf on random inputs: its weights diverged" in line and "export another checkpoint" in line
    assert "--no-fold" not in line and "differs" not in line
    assert list(tmp_path.iterdir()) == []


def test_safetensors_read_back_as_nan_writes_nothing_and_keeps_the_previous_export(run, tmp_path, monkeypatch):
    import convolab.export.to_safetensors as module

    export_safetensors(run, tmp_path / "sf")
    before = {p.name: p.read_bytes() for p in (tmp_path / "sf").iterdir()}
    real = module.load_safetensors

    def nan_back(folder):
        record = real(folder)
        record["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                           for k, v in record["model"].items()}
        return record

    monkeypatch.setattr(module, "load_safetensors", nan_back)
    with pytest.raises(ExportError, match="the weights read back give outputs nan away from the checkpoint's"):
        export_safetensors(run, tmp_path / "sf")
    assert {p.name: p.read_bytes() for p in (tmp_path / "sf").iterdir()} == before  # no temporary folder left
    with pytest.raises(ExportError, match="read back"):
        export_safetensors(run, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sf"]


# ----- 5: SIGTERM mid-write ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["torchscript", "safetensors"])
def test_sigterm_mid_export_removes_its_temporaries_and_exits_130(run, tmp_path, fmt):
    # the signal arrives once the temporary file is written: torch.jit.load reads it back, as
    # load_safetensors reads the temporary folder (on the old code, SIGTERM's default action killed the process)
    target = "torch.jit.load" if fmt == "torchscript" else "convolab.export.to_safetensors.load_safetensors"
    module, name = target.rsplit(".", 1)
    out = tmp_path / ("m.pt" if fmt == "torchscript" else "sf")
    done = _run_python(f"""
        import importlib, os, signal, sys
        from convolab.cli import main
        module = importlib.import_module({module!r})
        real = getattr(module, {name!r})

        def terminated(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        setattr(module, {name!r}, terminated)
        sys.exit(main(["export", {str(run)!r}, "--format", {fmt!r}, "--out", {str(out)!r}]))""", tmp_path)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["convolab export: interrupted"]
    assert list(tmp_path.iterdir()) == []


def test_an_export_gives_back_the_sigterm_handler_it_found(run, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    model, meta = model_from_checkpoint(run)
    export_torchscript(model, tmp_path / "m.pt", (1, 28, 28), meta=meta)
    assert signal.getsignal(signal.SIGTERM) is before


# ----- 6: the hint of a failed check ------------------------------------------------------------------------------
def test_a_failed_check_without_folding_suggests_a_larger_tolerance_not_no_fold(run, tmp_path, capsys):
    _onnx_or_skip()
    assert main(["export", str(run), "--out", str(tmp_path / "a.onnx"), "--no-fold", "--tolerance", "1e-12",
                 "--rtol", "0"]) == 2
    line = _error_line(capsys)
    assert "differs from the PyTorch model" in line and "try a larger --tolerance or --rtol" in line
    assert "--no-fold" not in line
    # lenet5_modern has no batch norm to fold: folding or not, the same hint (tests/test_review_files.py: lenet5_bn's
    # says --no-fold)
    assert main(["export", str(run), "--out", str(tmp_path / "a.onnx"), "--tolerance", "1e-12", "--rtol", "0"]) == 2
    assert "try a larger --tolerance or --rtol" in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


# ----- 7: every file a run writes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["metrics.json", "steps.csv", "curves.png"])
def test_export_refuses_every_file_the_run_wrote(run_copy, capsys, name):
    assert (run_copy / name).is_file()
    before = (run_copy / name).read_bytes()
    assert main(["export", str(run_copy), "--out", str(run_copy / name), "--format", "torchscript"]) == 2
    assert f"--out {run_copy / name} is the {name} of the run in {run_copy}" in _error_line(capsys)
    assert (run_copy / name).read_bytes() == before


def test_every_file_training_writes_is_in_run_writes_and_run_files_still_make_a_run(run, tmp_path):
    written = {p.name for p in run.iterdir() if p.is_file()}
    assert written <= set(rundir.RUN_WRITES) and set(rundir.RUN_FILES) <= set(rundir.RUN_WRITES)
    for name in set(rundir.RUN_WRITES) - set(rundir.RUN_FILES):  # not a run, but files a new run would replace
        (tmp_path / name).write_text("x")
    assert rundir.run_files(tmp_path) == []
    with pytest.raises(ConfigError, match="holds no run but holds .*, which a run there would replace"):
        rundir.refuse_to_overwrite_a_run(tmp_path)


# ----- 8: --batch-size with TorchScript --------------------------------------------------------------------------
def test_torchscript_batch_size_fixes_the_batch_size_as_it_says(run, tmp_path, capsys):
    from convolab.export import read_torchscript_meta

    assert main(["export", str(run), "--format", "torchscript", "--batch-size", "4", "--out",
                 str(tmp_path / "b4.pt")]) == 0
    assert "batch size 4" in capsys.readouterr().out
    module, _ = read_torchscript_meta(tmp_path / "b4.pt")
    with torch.no_grad():
        assert module(torch.randn(4, 1, 28, 28)).shape == (4, 10)
        with pytest.raises(Exception, match="exported for batches of 4 images, got 7"):
            module(torch.randn(7, 1, 28, 28))
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "any.pt")]) == 0
    assert "any batch size" in capsys.readouterr().out
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_torchscript_meta(tmp_path / "any.pt")[0](torch.randn(7, 1, 28, 28)).shape == (7, 10)
    with pytest.raises(ConfigError, match="fixed_batch and dynamic_batch"):
        export_torchscript(*model_from_checkpoint(run)[:1], tmp_path / "x.pt", (1, 28, 28), dynamic_batch=True,
                           fixed_batch=True)


# ----- 9: the README ----------------------------------------------------------------------------------------------
def test_the_readme_says_predict_takes_a_torchscript_export_as_it_now_does():
    # (it said "`predict` takes no TorchScript file" while that was so; test_export.py's
    # test_predict_verb_reads_a_torchscript_export_as_it_reads_the_checkpoint proves the new claim)
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "`predict` on its ONNX or TorchScript export" in text
    assert "takes no TorchScript" not in text


def test_safetensors_export_on_a_disk_full_at_its_config_names_config_json(run, tmp_path, monkeypatch):
    real = Path.write_text
    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: _no_space() if self.name.endswith(".tmp")
                        else real(self, text, *a, **k))
    with pytest.raises(DiskFullError, match=r"no space left on the disk of .*/sf\b.* writing config\.json"):
        export_safetensors(run, tmp_path / "sf")
    assert list(tmp_path.iterdir()) == []
