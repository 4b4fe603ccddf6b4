"""Synchronized batch norm on the CPU: the autograd function against PyTorch's batch norm, and two
processes with `--sync-bn` against one process (`--nproc 2` through the CLI)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.sync_bn import SyncBatchNorm, _SyncBatchNormFunction, convert_sync_batchnorm


@pytest.fixture
def world_of_one(tmp_path):
    """A gloo group of one process: all-reduce is the identity, so the function must equal BN."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 7), (4, 3, 5, 6)])
def test_the_synced_function_is_batch_norm_forward_and_backward(world_of_one, shape):
    torch.manual_seed(0)
    x = (torch.randn(shape, dtype=torch.float64) * 3 + 1).requires_grad_()
    channels = shape[1]
    weight = torch.randn(channels, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(channels, dtype=torch.float64, requires_grad=True)
    mean_a, var_a = torch.zeros(channels, dtype=torch.float64), torch.ones(channels, dtype=torch.float64)
    mean_b, var_b = mean_a.clone(), var_a.clone()
    grad = torch.randn(shape, dtype=torch.float64)

    y = _SyncBatchNormFunction.apply(x, weight, bias, mean_a, var_a, 1e-5, 0.1, world_of_one)
    got = torch.autograd.grad(y, (x, weight, bias), grad)
    y_ref = F.batch_norm(x, mean_b, var_b, weight, bias, training=True, momentum=0.1, eps=1e-5)
    want = torch.autograd.grad(y_ref, (x, weight, bias), grad)
    torch.testing.assert_close(y, y_ref)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    torch.testing.assert_close((mean_a, var_a), (mean_b, var_b))  # running statistics, unbiased variance


def test_an_empty_global_batch_leaves_the_running_statistics_as_batch_norm_does(world_of_one):
    """Every process's share empty (a streamed batch of only unreadable images under --skip-bad-images):
    the zero-weighted step it takes must not turn the running statistics into 0/0."""
    x = torch.empty(0, 3, 4, 4, requires_grad=True)
    weight, bias = torch.ones(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    mean, var = torch.full((3,), 0.5), torch.full((3,), 2.0)
    y = _SyncBatchNormFunction.apply(x, weight, bias, mean, var, 1e-5, 0.1, world_of_one)
    y.sum().backward()
    assert y.shape == x.shape and torch.equal(mean, torch.full((3,), 0.5)) and torch.equal(var, torch.full((3,), 2.0))
    assert torch.equal(weight.grad, torch.zeros(3)) and torch.equal(bias.grad, torch.zeros(3))


def test_conversion_keeps_the_tensors_and_the_state_dict_keys():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    keys, weight = list(model.state_dict()), model[1].weight
    synced = convert_sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(synced[1], SyncBatchNorm) and isinstance(synced[4], SyncBatchNorm)
    assert synced[1].weight is weight and list(synced.state_dict()) == keys
    x = torch.randn(5, 1, 3, 3)  # outside a process group: plain batch norm
    torch.testing.assert_close(synced.eval()(x), model.eval()(x))


@pytest.mark.slow  # (34 s; two processes reaching one's weights run by default: test_distributed)
def test_two_processes_with_sync_bn_train_the_network_of_one(tmp_path):
    """lenet5_bn has BN after every layer: with --sync-bn, two processes end with one process's
    weights and BN statistics; without it, each process's statistics are its half-batch's own."""
    run = ["lenet5_bn", "--data", "digits", "--epochs", "1", "--batch-size", "64", "--optimizer", "sgd",
           "--lr", "0.1", "--augment", "none", "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes (2 shared cores)
    try:
        Trainer(TrainConfig(model="lenet5_bn", data="digits", epochs=1, batch_size=64, optimizer="sgd", lr=0.1,
                            augment="none", progress=False, output=str(tmp_path / "one"))).fit()
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name, extra in (("synced", ["--sync-bn"]), ("plain", [])):
        cmd = [sys.executable, "-m", "convolab", "train", *run, *extra, "--nproc", "2",
               "--output", str(tmp_path / name)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    one, synced, plain = (load_checkpoint(tmp_path / name / "last.pt")["model"] for name in ("one", "synced", "plain"))
    worst_synced = max((one[k].double() - synced[k].double()).abs().max().item() for k in one)
    worst_plain = max((one[k].double() - plain[k].double()).abs().max().item() for k in one if "running" in k)
    assert worst_synced <= 1e-4, worst_synced
    assert worst_plain > 1e-2, worst_plain  # the test can tell the two apart
