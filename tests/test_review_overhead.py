"""Time a user waits that is not the network's work (found by a tester of start-up and per-epoch overhead): the
curves redrawn after every epoch, the data's statistics computed through two float copies of the images, and
torchvision imported by every command for its version string."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from convolab import create_model
from convolab.data.augment import channel_statistics, convert_channels
from convolab.training import metrics


def _rows(n: int) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "test_loss": 1.0 / e, "test_acc": 0.5}
            for e in range(1, n + 1)]


def test_the_curves_are_drawn_when_cheap_beside_the_time_since_the_last_and_always_at_the_end(tmp_path, monkeypatch):
    clock, drawn = [0.0], []

    def draw(history, path, title="", data="", scored="test"):
        drawn.append(len(history))
        clock[0] += 0.5  # each drawing takes 0.5 s

    monkeypatch.setattr(metrics, "plot_curves", draw)
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: clock[0])
    curves = metrics.Curves(tmp_path / "curves.png")
    with curves.complete_at_the_end(history := []):
        for epoch in range(1, 9):  # epochs of 1 s: a drawing of 0.5 s may come every 5 s
            clock[0] += 1.0
            history.extend(_rows(epoch)[-1:])
            curves.after_epoch(history)
    assert drawn == [1, 6, 8]  # the first epoch; 5 s after the drawing ended; the end (before: all 8)


def test_an_interrupted_or_diverged_run_leaves_its_curves_complete_and_rank_1_draws_none(tmp_path, monkeypatch):
    from convolab.training.loop import TrainingInterrupted

    drawn = []
    monkeypatch.setattr(metrics, "plot_curves", lambda history, *a, **k: drawn.append(len(history)))
    curves = metrics.Curves(tmp_path / "curves.png")
    history = _rows(1)
    with pytest.raises(TrainingInterrupted), curves.complete_at_the_end(history):
        curves.after_epoch(history)
        history.extend(_rows(3)[1:])  # two epochs more, drawn by none of them (too soon)
        raise TrainingInterrupted("stopped")
    assert drawn == [1, 3]
    rank1 = metrics.Curves(tmp_path / "c.png", drawing=False)
    with rank1.complete_at_the_end(history):
        rank1.after_epoch(history)
    assert drawn == [1, 3]


def test_a_real_run_draws_every_epoch_into_its_curves(tmp_path):
    from convolab.training import TrainConfig, Trainer

    result = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=3, batch_size=64, progress=False,
                                 output=str(tmp_path / "run"))).fit()
    assert len(result.history) == 3 and (tmp_path / "run" / "curves.png").stat().st_size > 10_000


@pytest.mark.parametrize("shape, channels", [((300, 3, 9, 7), None), ((300, 3, 9, 7), 3), ((300, 3, 9, 7), 1),
                                             ((300, 1, 8, 8), 3), ((300, 1, 8, 8), None), ((5, 2, 4, 4), None)])
def test_channel_statistics_are_the_float_computations_without_their_copies(shape, channels):
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = images.double() / 255
    if channels in (1, 3) and x.shape[1] in (1, 3):
        x = convert_channels(x, channels)
    x = x.transpose(0, 1).reshape(x.shape[1], -1)
    mean, std = channel_statistics(images, channels)
    tolerance = 1e-7 if channels == 1 and shape[1] == 3 else 1e-12  # (colour made grey: float32, summed in float64)
    assert mean == pytest.approx(x.mean(1).tolist(), abs=tolerance)
    assert std == pytest.approx(x.std(1).tolist(), abs=tolerance)


def test_a_command_does_not_import_torchvision_for_its_version_string():
    # (before: compare/report.py imported torchvision, and with it torch._dynamo, for every command: 1.3 s of
    # `convolab --help`'s 3.4 s CPU)
    code = "import sys; from convolab.cli import build_parser; build_parser(); print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_counting_on_the_meta_device_passes_batch_norms_through_with_the_same_counts(monkeypatch):
    # (before: batch norm ran through torch's Python decompositions on meta: 3.7 s of `convolab models`' 12.5 s)
    import torch.nn.functional as F
    from torch import nn

    import convolab
    from convolab.analysis import count_macs

    calls = []
    real = F.batch_norm
    monkeypatch.setattr(F, "batch_norm", lambda x, *a, **k: (calls.append(x.is_meta), real(x, *a, **k))[1])
    with torch.device("meta"):
        model = convolab.create_model("resnet20")
    on_meta = count_macs(model, (3, 32, 32))
    assert calls == []
    assert on_meta == count_macs(convolab.create_model("resnet20"), (3, 32, 32)) == 40_551_040
    assert calls and not any(calls)  # (on the CPU they run as ever)
    bad = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5)).to("meta")  # a norm of other channels still fails
    with pytest.raises(Exception, match="running_mean should contain 4 elements not 5|5"):
        count_macs(bad, (3, 8, 8))
    assert all(m.forward.__func__ is nn.BatchNorm2d.forward for m in bad.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["resnet20", "densenet_bc100_k12", "lenet5"])
def test_a_model_built_on_the_meta_device_draws_no_weights_and_one_on_the_cpu_draws_them(name, monkeypatch):
    """`convolab models` and `summary` build on the meta device, where a weight draw is wasted and slow (PyTorch's
    Python reference kernels: 6 of `convolab models`' 12 s): the models' own initialization skips it there."""
    drawn: list[str] = []
    for fn in ("kaiming_normal_", "xavier_uniform_"):
        real = getattr(torch.nn.init, fn)
        monkeypatch.setattr(torch.nn.init, fn, lambda t, *a, _r=real, _n=fn, **k: (drawn.append(_n), _r(t, *a, **k))[1])
    with torch.device("meta"):
        model = create_model(name)
    assert next(model.parameters()).is_meta and drawn == []
    create_model(name)
    assert drawn  # (on the CPU: the model's own init, Kaiming or Xavier, as before)
