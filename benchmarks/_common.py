"""What every benchmark prints: the machine it ran on, and its figures in a form scripts can read."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from convolab._platform import cpu_name

SHARED_CIFAR_TAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


def machine() -> str:
    cpu = cpu_name()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}){gpu}; "
            f"torch {torch.__version__}, python {platform.python_version()}")


def cifar_tar_or_exit() -> Path:
    if not SHARED_CIFAR_TAR.is_file():
        raise SystemExit(f"skipped: the CIFAR-10 tar is not at {SHARED_CIFAR_TAR} (pass --data PATH)")
    return SHARED_CIFAR_TAR
