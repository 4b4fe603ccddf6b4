"""The CUDA paths of the engine, on a real GPU: bf16 and fp16 autocast (with fp16's GradScaler),
channels-last, torch.compile, data resident in GPU memory, pinned-memory streaming, PyTorch's
SyncBatchNorm under NCCL, and `--nproc` with NCCL. Each test skips with its reason where there is
no GPU; run them with `pytest -m cuda`. Data are scikit-learn's digits or images written here."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_png_folder
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from convolab import create_model
from convolab.cli._launch import free_port
from convolab.data import StreamingImageData
from convolab.data.augment import AugmentConfig, BatchTransform
from convolab.data.autoaugment import POLICIES
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.mixing import MixConfig, mix_batch
from convolab.training.sync_bn import convert_sync_batchnorm

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]

# lenet5_modern on digits (upsampled to 28 px): 2 epochs reach 0.94 test accuracy in fp32 and bf16 on
# the CPU (seed 0); chance is 0.1.
MIN_ACC = 0.7


def cuda_config(tmp_path: Path, name: str, **overrides) -> TrainConfig:
    values = dict(model="lenet5_modern", data="digits", epochs=2, batch_size=32, device="cuda", progress=False,
                  output=str(tmp_path / name))
    values.update(overrides)
    return TrainConfig(**values)


def assert_finite_history(history: list[dict], epochs: int) -> None:
    assert len(history) == epochs, history
    for row in history:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"]), row


def record_training_dtypes(model: nn.Module) -> list[torch.dtype]:
    """The output dtypes of the model's first convolution in training-mode forwards (autocast's work)."""
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    dtypes: list[torch.dtype] = []
    conv.register_forward_hook(lambda module, _inp, out: dtypes.append(out.dtype) if module.training else None)
    return dtypes


@contextlib.contextmanager
def exact_fp32():
    """Full fp32 convolutions and matmuls (cuDNN runs convolutions in TF32 by default, ~1e-3 relative),
    and cuDNN's heuristic choice of algorithm, not the timed one (the Trainer turns benchmark mode on)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark
    cudnn.allow_tf32 = matmul.allow_tf32 = cudnn.benchmark = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark = saved


def conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim == 4]


def test_bf16_autocast_trains_on_cuda_with_float32_weights(tmp_path):
    trainer = Trainer(cuda_config(tmp_path, "bf16", amp="bf16"))
    assert trainer.device.type == "cuda" and trainer.amp_dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()  # bf16 has fp32's range: no loss scaling
    dtypes = record_training_dtypes(trainer.model)
    result = trainer.fit()
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the convolutions ran in bf16
    assert all(p.dtype == torch.float32 and p.is_cuda for p in trainer.model.parameters())  # master weights
    assert_finite_history(result.history, 2)
    assert result.test_acc > MIN_ACC, result.history
    resolved = json.loads((result.run_dir / "config.json").read_text())["resolved"]
    assert resolved["amp_dtype"] == "bfloat16" and resolved["device"].startswith("cuda")


def test_fp16_autocast_trains_with_its_grad_scaler(tmp_path):
    trainer = Trainer(cuda_config(tmp_path, "fp16", amp="fp16"))
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    dtypes = record_training_dtypes(trainer.model)
    result = trainer.fit()
    assert dtypes and set(dtypes) == {torch.float16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    scale = trainer.scaler.get_scale()
    assert isinstance(scale, float) and math.isfinite(scale) and scale > 0, scale
    assert_finite_history(result.history, 2)
    assert result.test_acc > MIN_ACC, result.history
    # The scaler's state goes into the checkpoint, so a resumed run goes on with the same scale.
    assert load_checkpoint(result.run_dir / "last.pt")["scaler"]["scale"] == pytest.approx(scale)


def test_channels_last_on_cuda_keeps_nhwc_weights_and_matches_the_contiguous_forward(tmp_path):
    trainer = Trainer(cuda_config(tmp_path, "nhwc", model="resnet_mnist", amp="off", epochs=1,
                                  channels_last=True))
    model = trainer.model
    weights = conv_weights(model)
    assert weights and all(w.is_cuda and w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    x = trainer.eval_transform(trainer.test_images[:64])
    assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
    reference = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert all(w.is_contiguous() for w in conv_weights(reference))
    assert any(not w.is_contiguous() for w in weights)  # the two really differ in layout
    with torch.no_grad(), exact_fp32():
        got = model.eval()(x)
        want = reference.eval()(x.contiguous())
    assert got.dtype == want.dtype == torch.float32
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * max(scale, 1.0))
    result = trainer.fit()
    assert_finite_history(result.history, 1)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(trainer.model))


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])  # (reduce-overhead: CUDA graphs)
def test_compile_on_cuda_trains_as_the_eager_model_does(tmp_path, mode):
    if not (os.environ.get("CC") or any(shutil.which(c) for c in ("cc", "gcc", "clang"))):
        pytest.skip("torch.compile's Triton kernels need a C compiler (cc, gcc or clang); none on PATH")
    # fp32: eager and compiled kernels differ by round-off only, which bf16 would magnify.
    eager = Trainer(cuda_config(tmp_path, "eager", amp="off", epochs=1))
    compiled = Trainer(cuda_config(tmp_path, "compiled", amp="off", epochs=1, compile=True, compile_mode=mode))
    assert hasattr(compiled.forward_model, "_orig_mod") and not hasattr(eager.forward_model, "_orig_mod")
    a, b = eager.fit().history, compiled.fit().history
    assert_finite_history(b, 1)
    assert b[0]["step"] == a[0]["step"] == eager.steps_per_epoch
    assert b[0]["train_loss"] == pytest.approx(a[0]["train_loss"], rel=2e-2), (a, b)


def test_grad_checkpointing_on_cuda_under_bf16_computes_the_plain_step_and_holds_less():
    """A checkpointed densenet40_k12 step in bf16 autocast, channels-last: the plain step's gradients and batch-norm
    statistics (counted once), and a lower peak of GPU memory."""
    torch.manual_seed(0)
    plain = create_model("densenet40_k12").cuda().to(memory_format=torch.channels_last).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    x = torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    peaks = []
    with exact_fp32():
        for model in (plain, checkpointed):
            torch.cuda.reset_peak_memory_stats()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x)
            out.float().square().sum().backward()
            torch.cuda.synchronize()
            peaks.append(torch.cuda.max_memory_allocated())
    for p, q in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=2e-2, atol=1e-3 * float(p.grad.abs().max()))
    for u, v in zip(plain.buffers(), checkpointed.buffers()):
        torch.testing.assert_close(v.float(), u.float(), rtol=1e-2, atol=1e-3)  # (num_batches_tracked 1 in both)
    assert peaks[1] < 0.8 * peaks[0], peaks


def test_cached_data_live_in_gpu_memory_and_train(tmp_path):
    trainer = Trainer(cuda_config(tmp_path, "resident", epochs=1))  # amp auto: bf16 on CUDA
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.streaming
    for name in ("train_images", "test_images", "train_labels", "test_labels"):
        assert getattr(trainer, name).device.type == "cuda", name
    assert trainer.train_images.dtype == torch.uint8  # uint8 on the device; floats only per batch
    assert tuple(trainer.train_images.shape) == tuple(trainer.data.train.images.shape)
    assert len(trainer.test_images) == len(trainer.data.test.labels)
    batches = trainer.run.batches.train_batches(trainer.epoch, trainer.state.batch_in_epoch)
    images, labels, index = next(batches)
    batches.close()
    assert images.is_cuda and labels.is_cuda and index.is_cuda and len(labels) == 32
    assert torch.equal(labels, trainer.train_labels[index])
    result = trainer.fit()
    assert_finite_history(result.history, 1)
    assert result.test_acc > 0.3, result.history  # one epoch; chance is 0.1


def test_batch_augmentation_on_the_gpu_never_waits_for_it():
    """Crop, flip, every policy, random erasing, mixup and CutMix on a CUDA batch, from the run's CUDA
    generator, make no host-device synchronization (CUDA's sync debug mode raises on one), once the
    policy's tables are on the GPU."""
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for policy in POLICIES:
        transform = BatchTransform(3, (32, 32), (0.5,) * 3, (0.25,) * 3, channels_last=True,
                                   augment=AugmentConfig(crop_padding=4, flip=True, erasing=0.5, auto_augment=policy))
        mixing = MixConfig(mixup=0.2, cutmix=1.0)
        mix_batch(transform(x, train=True, generator=gen), mixing, gen)  # (copies the policy's tables to the GPU)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out, _ = mix_batch(transform(x, train=True, generator=gen), mixing, gen)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert out.is_cuda and out.shape == (64, 3, 32, 32) and torch.isfinite(out).all(), policy


def test_streamed_batches_come_through_pinned_memory(tmp_path):
    root = write_png_folder(tmp_path / "photos", per_class=16, size=160, classes=("a", "b", "c"))
    trainer = Trainer(cuda_config(tmp_path, "stream", data=str(root), loader="stream", workers=2, image_size=32,
                                  model_options={"img_size": 32}, batch_size=16, epochs=1))
    assert trainer.streaming and isinstance(trainer.data, StreamingImageData)
    assert trainer.train_images is None and trainer.image_size == (32, 32)
    assert trainer.train_loader.pin_memory is True and trainer.train_loader.num_workers == 2
    seen = []  # (pin_memory of the loader, batch pinned, shape) of every train and test batch
    original = trainer.data.batches

    def recording(loader, split):
        for images, labels, index in original(loader, split):
            seen.append((loader.pin_memory, images.is_pinned() and labels.is_pinned(), tuple(images.shape[1:])))
            yield images, labels, index

    trainer.data.batches = recording
    result = trainer.fit()
    assert_finite_history(result.history, 1)
    assert result.history[0]["step"] == trainer.steps_per_epoch == 48 // 16
    assert len(seen) >= trainer.steps_per_epoch + 1  # the training batches and at least one test batch
    assert all(entry == (True, True, (3, 32, 32)) for entry in seen), seen


def test_pytorch_sync_batchnorm_under_nccl_equals_batchnorm_and_keeps_the_state_dict():
    torch.manual_seed(0)
    model = create_model("lenet5_bn", num_classes=10, in_chans=1).cuda()
    reference = copy.deepcopy(model)
    keys = list(reference.state_dict())
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in norms) == 2 and len(norms) == 4
    tensors = [(m.weight, m.running_mean) for m in norms]
    torch.cuda.set_device(0)
    torch.distributed.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                                         world_size=1)
    try:
        assert torch.distributed.get_backend() == "nccl"
        probe = torch.ones(3, device="cuda")
        torch.distributed.all_reduce(probe)  # the NCCL communicator works (a world of 1: the identity)
        assert probe.tolist() == [1.0, 1.0, 1.0]
        synced = convert_sync_batchnorm(model, torch.device("cuda"))
        converted = [m for m in synced.modules() if isinstance(m, _BatchNorm)]
        assert len(converted) == 4 and all(type(m) is nn.SyncBatchNorm for m in converted)
        # The layers keep their tensors (optimizer and EMA stay valid) and their names.
        assert all(m.weight is w and m.running_mean is r for m, (w, r) in zip(converted, tensors, strict=True))
        assert list(synced.state_dict()) == keys
        x = torch.randn(16, 1, 28, 28, device="cuda") * 2 + 0.5
        grad = torch.randn(16, 10, device="cuda")
        with exact_fp32():
            x_a, x_b = x.clone().requires_grad_(), x.clone().requires_grad_()
            out = synced.train()(x_a)
            want = reference.train()(x_b)
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
            out.backward(grad)
            want.backward(grad)
        torch.testing.assert_close(x_a.grad, x_b.grad, rtol=1e-5, atol=1e-5)
        ref_params = dict(reference.named_parameters())
        for name, p in synced.named_parameters():
            torch.testing.assert_close(p.grad, ref_params[name].grad, rtol=1e-5, atol=1e-5, msg=name)
        ref_state = reference.state_dict()
        for name, value in synced.state_dict().items():  # running statistics moved alike
            torch.testing.assert_close(value, ref_state[name], rtol=1e-5, atol=1e-5, msg=name)
    finally:
        torch.distributed.destroy_process_group()


def _train_cli(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", "digits", "--nproc", "2",
           "--device", "cuda", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "run"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_nproc_2_trains_on_two_gpus_with_nccl(tmp_path):
    gpus = torch.cuda.device_count()
    if gpus < 2:
        pytest.skip(f"NCCL under --nproc 2 needs 2 GPUs; this machine has {gpus}")
    proc = _train_cli(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on cuda:0 x 2 processes" in proc.stdout and proc.stdout.count("test accuracy:") == 1, proc.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resolved"]["processes"] == 2 and config["resolved"]["device"] == "cuda:0"
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert len(state["rng_ranks"]) == 2 and all("cuda" in r for r in state["rng_ranks"])
    history = json.loads(state["history"])
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]), history


def test_nproc_beyond_the_visible_gpus_is_one_line_and_exit_code_2(tmp_path):
    gpus = torch.cuda.device_count()
    if gpus >= 2:
        pytest.skip(f"needs fewer GPUs than --nproc 2; this machine has {gpus}")
    proc = _train_cli(tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("convolab train: error:"), proc.stderr[-2000:]
    assert "GPU" in lines[0], lines[0]
