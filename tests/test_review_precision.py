"""Faults a review of the precision, compile and determinism paths on the CPU found (each failed before its fix)."""
from __future__ import annotations

import pytest
import torch
import torch._inductor.cpp_builder as cpp_builder

from convolab.cli import main


class InvalidCxxCompiler(RuntimeError):
    """Stands for torch's own, which convolab knows by name (its module is private)."""


@pytest.mark.skipif(not hasattr(cpp_builder, "get_cpp_compiler"),
                    reason="this torch (before 2.5) has no cpp_builder.get_cpp_compiler: the check is not made")
def test_compile_without_a_cpp_compiler_is_one_line_before_the_run_folder(tmp_path, monkeypatch, capsys):
    def no_compiler():
        raise InvalidCxxCompiler("No working C++ compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    run = tmp_path / "run"
    code = main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--compile", "--device", "cpu",
                 "--output", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--compile on the CPU needs a C++ compiler" in err[0] and "leave out --compile" in err[0]
    assert not run.exists()  # (it held a config.json with compile: true, which refused the same command without it)


def test_compile_on_cuda_without_a_c_compiler_is_one_line(monkeypatch):
    """Triton builds the compiled step's launcher with $CC, gcc or clang; a bare GPU image has none."""
    import convolab.training.device as device_module
    from convolab.errors import ConfigError

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(device_module.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"^`compile` on CUDA needs a C compiler .*; install one, or leave out "
                                          r"`compile`$"):
        device_module.check_compiler(torch.device("cuda"))
    monkeypatch.setenv("CC", "/usr/bin/cc")
    device_module.check_compiler(torch.device("cuda"))  # (the user's own compiler: taken, as Triton takes it)


def test_fp16_refused_on_the_cpu_says_a_run_trained_so_continues_on_cuda_only():
    from convolab.errors import ConfigError
    from convolab.training.device import resolve_amp

    try:
        resolve_amp("fp16", torch.device("cpu"))
    except ConfigError as err:
        assert "continues on a CUDA device only" in str(err)
    else:
        raise AssertionError("fp16 on the CPU was accepted")


def test_a_run_whose_test_loss_turns_nan_stops_before_saving_it_as_best(tmp_path, capsys):
    """The training loss is measured before each step: a run that diverged in an epoch's last steps showed a NaN
    test loss, saved that epoch as best.pt and ended with exit 0."""
    run = tmp_path / "run"
    # (one step an epoch: the training loss, measured before it, is finite; the test loss after it is not)
    code = main(["train", "lenet5_modern", "--data", "mnist5k", "--train-subset", "64", "--test-subset", "100",
                 "--epochs", "1", "--lr", "1e30", "--optimizer", "sgd", "--schedule", "constant", "--output", str(run),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the test loss became nan after epoch 1" in err[0], err
    assert not (run / "best.pt").exists()


def test_evaluate_predict_and_finetune_refuse_a_model_whose_outputs_are_not_numbers(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--output", str(run),
                 "--no-progress"]) == 0
    for name in ("best.pt", "last.pt"):  # finite weights whose outputs overflow: what a diverging run leaves
        ckpt = torch.load(run / name, weights_only=True)
        first = next(k for k, v in ckpt["model"].items() if v.dtype.is_floating_point and v.dim() == 4)
        ckpt["model"][first] = ckpt["model"][first].sign() * 3e38
        torch.save(ckpt, run / name)
    capsys.readouterr()
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("L", (8, 8), 128).save(image)
    for argv in (["evaluate", str(run)], ["predict", str(run), str(image)],
                 ["finetune", str(run), "--data", "digits", "--epochs", "1", "--output", str(tmp_path / "ft")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "outputs NaN or inf" in err[0], (argv, err)
