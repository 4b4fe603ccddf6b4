"""Engine options: batch augmentation, mixed precision, EMA, auxiliary losses, label smoothing."""
from __future__ import annotations

import pytest
import torch

from convolab.data import load_data
from convolab.data.augment import AugmentConfig, BatchTransform, convert_channels, random_crop, random_erasing
from convolab.errors import ConfigError
from convolab.training import TrainConfig, Trainer
from convolab.training.loop import weighted_loss


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    gen = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, gen)
    assert out.shape == x.shape
    for i in range(2):  # every output is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_random_erasing_zeroes_one_rectangle_in_some_images_only():
    x = torch.ones(64, 3, 16, 16)
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).any(1)
    assert 10 < int(erased.sum()) < 54
    rows = (out[erased][:, 0] == 0).any(2)  # erased rows of each image form one contiguous band
    assert all(int(r.nonzero().max() - r.nonzero().min() + 1) == int(r.sum()) for r in rows)


def test_batch_transform_converts_channels_resizes_and_normalizes():
    images = torch.full((4, 1, 8, 8), 255, dtype=torch.uint8)
    t = BatchTransform(3, (16, 16), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), AugmentConfig(), channels_last=True)
    out = t(images)
    assert out.shape == (4, 3, 16, 16) and torch.allclose(out, torch.ones_like(out))
    assert out.is_contiguous(memory_format=torch.channels_last)
    grey = convert_channels(torch.ones(1, 3, 2, 2), 1)
    assert grey.shape == (1, 1, 2, 2) and torch.allclose(grey, torch.ones_like(grey))


def test_normalize_none_feeds_the_pixels_in_0_1_as_to_tensor_does(tmp_path):
    digits = load_data("digits")
    trainer = Trainer(TrainConfig(model="lenet5_modern", data="digits", normalize="none", augment="none",
                                  progress=False, output=str(tmp_path / "r")), data=digits)
    images = digits.train.images[:4]
    expected = torch.nn.functional.interpolate(images.float() / 255, size=trainer.image_size, mode="bilinear",
                                               antialias=False, align_corners=False)
    assert torch.allclose(trainer.transform(images), expected, atol=1e-6)


def test_compile_mode_reaches_torch_compile_and_each_step_is_marked_for_its_cuda_graphs(tmp_path, monkeypatch):
    """--compile-mode is torch.compile's `mode`; with a mode that captures CUDA graphs, each training step
    tells them a new step begins (its outputs of the last one, read already, may be overwritten)."""
    modes, marks = [], []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: modes.append(mode) or model)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(marks)))
    for mode, marked in (("default", False), ("reduce-overhead", True), ("max-autotune-no-cudagraphs", False)):
        marks.clear()
        trainer = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=256, compile=True,
                                      compile_mode=mode, progress=False, output=str(tmp_path / mode)))
        trainer.fit()
        assert len(marks) == (trainer.steps_per_epoch if marked else 0), mode
    assert modes == [None, "reduce-overhead", "max-autotune-no-cudagraphs"]


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    result = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=2, amp="bf16", progress=False,
                                 output=str(tmp_path / "r"))).fit()
    assert result.test_acc > 0.5


def test_ema_label_smoothing_and_gradient_clipping_together(tmp_path):
    result = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=3, ema_decay=0.9,
                                 label_smoothing=0.1, clip_grad=1.0, progress=False, output=str(tmp_path / "r"))).fit()
    assert result.test_acc > 0.5
    # The EMA weights scored the run and chose best.pt: evaluate and export serve those, not the raw ones.
    from convolab.export.exporters import model_from_checkpoint
    from convolab.training import load_checkpoint
    from convolab.training.inference import evaluate_checkpoint, load_trained_model

    best = load_checkpoint(result.run_dir / "best.pt")
    assert any(not torch.equal(best["ema"][k], best["model"][k]) for k in best["model"])
    loaded = load_trained_model(result.run_dir / "best.pt")
    assert all(torch.equal(v, best["ema"][k]) for k, v in loaded.model.state_dict().items())
    report = evaluate_checkpoint(loaded, load_data("digits"))
    assert report.top1 == pytest.approx(result.best_acc, abs=1e-6)
    exported, _ = model_from_checkpoint(result.run_dir / "best.pt")
    assert all(torch.equal(v, best["ema"][k]) for k, v in exported.state_dict().items())


def test_fp16_is_refused_on_the_cpu(tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Trainer(TrainConfig(model="lenet5_modern", data="digits", amp="fp16", device="cpu",
                            output=str(tmp_path / "r")))


def test_googlenet_auxiliary_heads_get_the_papers_weight_and_train(tmp_path):
    config = TrainConfig(model="googlenet_small", data="digits", epochs=1, batch_size=32, image_size=32,
                         progress=False, output=str(tmp_path / "r"))
    trainer = Trainer(config)
    assert trainer.aux_weight == 0.0  # no auxiliary heads, no auxiliary loss
    tv = Trainer(TrainConfig(model="googlenet_tv", data="digits", epochs=1, image_size=64, progress=False,
                             model_options={"aux_logits": True}, output=str(tmp_path / "tv")))
    assert tv.aux_weight == 0.3 and tv.want_aux
    x = tv.transform(tv.train_images[:8], train=False)
    losses = weighted_loss(tv.model.forward_outputs(x), tv.train_labels[:8], None, tv.loss_weights,
                           tv.config.label_smoothing)
    assert losses.ndim == 0 and torch.isfinite(losses)


@pytest.mark.parametrize("shape,channels,size", [((6, 3, 32, 32), 3, 32), ((6, 1, 28, 28), 1, 28),
                                                 ((6, 1, 28, 28), 3, 32), ((6, 3, 40, 30), 3, 32)])
@pytest.mark.parametrize("augment", [AugmentConfig(), AugmentConfig(flip=True), AugmentConfig(crop_padding=4),
                                     AugmentConfig(crop_padding=4, flip=True, erasing=0.5)])
def test_batch_transform_equals_the_float_pipeline_it_shortcuts(shape, channels, size, augment):
    """Crops and flips run on uint8 when no resize comes first: bit for bit what the float pipeline
    (convert, resize, crop, flip, normalize, erase) gives with the same random draws."""

    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    mean, std = (0.4,) * channels, (0.25,) * channels
    got = BatchTransform(channels, (size, size), mean, std, augment)(
        images, train=True, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    x = convert_channels(images.float() / 255, channels)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
    if augment.crop_padding:
        x = random_crop(x, augment.crop_padding, gen)
    if augment.flip:
        chosen = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(chosen[:, None, None, None], x.flip(3), x)
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    if augment.erasing:
        x = random_erasing(x, augment.erasing, gen)
    assert torch.equal(got, x)


def test_threads_sets_the_cpu_threads_of_the_run_and_gives_the_callers_back(tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        trainer = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, threads=1, progress=False,
                                      output=str(tmp_path / "r")))
        seen, step = [], trainer.train_step
        trainer.train_step = lambda *args, **kwargs: (seen.append(torch.get_num_threads()), step(*args, **kwargs))[1]
        trainer.fit()
        assert set(seen) == {1} and torch.get_num_threads() == 2  # (the run's while it trains; the caller's after)
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        TrainConfig(model="lenet5_modern", threads=0)
