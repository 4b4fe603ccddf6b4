"""Faults a review of the precision, compile and determinism paths on the CPU found (each failed before its fix)."""
from __future__ import annotations

import torch
import torch._inductor.cpp_builder as cpp_builder

from convolab.cli import main


class InvalidCxxCompiler(RuntimeError):
    """Stands for torch's own, which convolab knows by name (its module is private)."""


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


def test_fp16_refused_on_the_cpu_says_a_run_trained_so_continues_on_cuda_only():
    from convolab.errors import ConfigError
    from convolab.training.device import resolve_amp

    try:
        resolve_amp("fp16", torch.device("cpu"))
    except ConfigError as err:
        assert "continues on a CUDA device only" in str(err)
    else:
        raise AssertionError("fp16 on the CPU was accepted")
