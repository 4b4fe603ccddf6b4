"""The Python API as a notebook or REPL uses it: a fit shows its epoch lines where nothing configured logging, a
resume to fewer epochs than trained is refused (it trained nothing and recorded the smaller number), tab
completion offers a Trainer's parts, and a summary shows as its table. Each failed on the code before its fix."""
from __future__ import annotations

import contextlib
import gc
import json
import logging
from pathlib import Path

import pytest

import convolab
from convolab.analysis import summary
from convolab.errors import FieldError
from convolab.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def small(output, **more) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": "mnist5k", "epochs": 1, "batch_size": 50, "train_subset": 100,
                          "test_subset": 50, "output": str(output), **more})


@contextlib.contextmanager
def unconfigured_logging():
    """Logging as a notebook has it: no handler on the root logger (pytest's own, added as the test began, are set
    aside meanwhile)."""
    root = logging.getLogger()
    kept, root.handlers = root.handlers, []
    try:
        yield
    finally:
        root.handlers = kept


def test_a_fit_shows_its_epoch_lines_where_nothing_configured_logging(tmp_path, capsys):
    # in Jupyter a fit left nothing on screen: the epoch lines went to a logger without a handler
    with unconfigured_logging():
        Trainer(small(tmp_path / "shown")).fit()
        assert not logging.getLogger("convolab").handlers and not logging.getLogger().handlers  # (none left)
        err = capsys.readouterr().err
        Trainer(small(tmp_path / "quiet", progress=False)).fit()
    assert "epoch 1/1  train loss" in err
    assert "epoch 1/1" not in capsys.readouterr().err  # (progress=False: quiet, as asked)


def test_resume_to_fewer_epochs_than_trained_is_refused_and_the_run_left_as_it_was(tmp_path):
    # Trainer.resume(run, epochs=2) of a 3-epoch run trained nothing, said nothing, and wrote epochs 2 into config.json
    run = tmp_path / "run"
    Trainer(small(run, epochs=2)).fit()
    before = (run / "config.json").read_text(), (run / "metrics.csv").read_text()
    for epochs in (1, 2):
        with pytest.raises(FieldError, match=f"epochs is {epochs} and .* has trained 2 epochs: the run is complete; "
                                             "give epochs=N with N > 2"):
            Trainer.resume(run, epochs=epochs).fit()
    assert ((run / "config.json").read_text(), (run / "metrics.csv").read_text()) == before
    assert json.loads(before[0])["epochs"] == 2
    assert len(Trainer.resume(run, epochs=3).fit().history) == 3  # (the folder was not left claimed)


def test_tab_completion_offers_a_trainers_parts_and_reprs_say_what_an_object_is(tmp_path):
    # dir() lacked what __getattr__ serves; a Trainer was <object at 0x...>, data a dump of every pixel, a summary
    # one 1,500-character line
    trainer = Trainer(small(tmp_path / "run"))
    assert {"model", "optimizer", "epoch", "step", "history", "config", "run_dir", "fit"} <= set(dir(trainer))
    assert repr(trainer) == f"Trainer(lenet5 on mnist5k, epoch 0 of 1, run folder {tmp_path / 'run'})"
    data = trainer.data
    assert repr(data) == ("ImageData('mnist5k': 10 classes ['0', '1', '2', '3', '4', ...], 100 training and 50 test "
                          "images of 1x28x28)") and repr(data.train) == "Split(100 images of 1x28x28)"
    text = repr(summary(convolab.create_model("lenet5"), (1, 28, 28)))
    assert text.startswith("lenet5 at input 1x28x28") and "Layer (name: type)" in text and "\n" in text


def test_a_trainer_never_fitted_leaves_no_empty_default_folder(tmp_path, monkeypatch):
    # each run of a notebook cell that built a Trainer and failed before fit left an empty runs/lenet5-mnist5k, -2, -3
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(model="lenet5", data="mnist5k", epochs=1, batch_size=50, train_subset=100, test_subset=50,
                         progress=False)
    trainer = Trainer(config)
    folder = Path(trainer.run_dir)
    assert folder.is_dir()
    del trainer
    gc.collect()
    assert not folder.exists()
    trainer = Trainer(config)
    assert Path(trainer.run_dir) == folder  # (its name free again, not lenet5-mnist5k-2)
    trainer.fit()
    del trainer
    gc.collect()
    assert (folder / "last.pt").is_file()  # (a fitted run's folder stays, of course)
