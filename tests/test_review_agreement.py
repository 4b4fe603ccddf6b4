"""The same figure told by two verbs (found by a tester of agreement): `predict` scores an image as `evaluate`
scores the run's test images, with the run's test-time augmentation and in its precision, from the checkpoint and
from its ONNX and TorchScript exports alike."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from convolab.cli import main
from convolab.data import load_mnist5k
from convolab.export import ExportMeta, TorchScriptClassifier, read_torchscript_meta
from convolab.training.inference import load_trained_model, predict_targets

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def _digits(folder, count: int = 6) -> list[str]:
    images = load_mnist5k().test.images
    paths = [str(folder / f"d{i}.png") for i in range(count)]
    for i, path in enumerate(paths):
        Image.fromarray(images[i, 0].numpy(), mode="L").save(path)
    return paths


def _train(folder, *options: str):
    assert main(["train", "lenet5_modern", "--epochs", "1", "--train-subset", "300", "--test-subset", "50",
                 "--no-progress", "--output", str(folder), *options]) == 0


def _scored(loaded, paths, amp: torch.dtype | None, flip: bool) -> torch.Tensor:
    """The probabilities as evaluate scores them: the checkpoint's own transform, autocast, flip averaged."""
    from convolab.data.decode import read_input
    from convolab.training.inference import input_reading

    ckpt = loaded.checkpoint
    x = torch.cat([loaded.transform(read_input(p, image_size=ckpt["image_size"], in_chans=int(ckpt["in_chans"]),
                                               **input_reading(ckpt))[None]) for p in paths])
    with torch.no_grad(), torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        logits = loaded.model(x).float()
        if flip:
            logits = (logits + loaded.model(x.flip(3)).float()) / 2
    return logits.softmax(1)


def test_predict_uses_the_runs_flip_tta_from_the_checkpoint_and_its_exports(tmp_path):
    run = tmp_path / "run"
    _train(run, "--tta", "flip")
    paths = _digits(tmp_path)
    loaded = load_trained_model(run)
    flipped, plain = _scored(loaded, paths, None, True), _scored(loaded, paths, None, False)
    assert not torch.allclose(flipped, plain, atol=1e-4)  # (the test tells the two apart)
    for (top, _), expected in zip(predict_targets(loaded, paths, topk=10), flipped, strict=True):
        got = torch.tensor([p for _, p in sorted(top, key=lambda item: int(item[0]))])
        assert torch.allclose(got, expected, atol=1e-5)  # (before: the plain scores, evaluate --tta none's)
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert read_torchscript_meta(tmp_path / "m.pt")[1].tta == "flip"
    for (top, _), row in zip(predict_targets(loaded, paths, topk=3),
                             TorchScriptClassifier(tmp_path / "m.pt").predict_files(paths, top_k=3), strict=True):
        assert [name for name, _ in top] == [name for name, _ in row]
        assert [p for _, p in top] == pytest.approx([p for _, p in row], abs=1e-5)
    pytest.importorskip("onnxruntime")
    from convolab.export import OnnxClassifier

    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    for (top, _), row in zip(predict_targets(loaded, paths, topk=3),
                             OnnxClassifier(tmp_path / "m.onnx").predict_files(paths, top_k=3), strict=True):
        assert [p for _, p in top] == pytest.approx([p for _, p in row], abs=1e-5)


def test_predict_scores_a_bf16_run_in_bf16_as_evaluate_does(tmp_path):
    run = tmp_path / "run"
    _train(run, "--amp", "bf16")
    paths = _digits(tmp_path)
    loaded = load_trained_model(run)
    in_bf16, in_fp32 = _scored(loaded, paths, torch.bfloat16, False), _scored(loaded, paths, None, False)
    assert not torch.allclose(in_bf16, in_fp32, atol=1e-6)
    for (top, _), expected in zip(predict_targets(loaded, paths, topk=10), in_bf16, strict=True):
        got = torch.tensor([p for _, p in sorted(top, key=lambda item: int(item[0]))])
        assert torch.allclose(got, expected, atol=1e-6)  # (before: fp32's)


def test_an_export_without_a_recorded_tta_is_scored_as_before():
    values = ExportMeta("m", ("a", "b"), 1, (28, 28), (0.5,), (0.5,)).to_strings()
    del values["tta"]  # (a file an earlier convolab wrote)
    assert ExportMeta.from_strings(values).tta == "none"
    with pytest.raises(Exception, match="'tta' is \"sideways\""):
        ExportMeta.from_strings({**values, "tta": "sideways"})


def test_a_resumed_run_normalizes_as_it_did_with_normalize_model_of_a_models_own_config(tmp_path):
    # (before: a run of a model whose data_config was not its name's default, as published weights' is, resumed
    # normalizing by the default: 0.1307 where the run had 0.5)
    import dataclasses

    import convolab
    from convolab.training import TrainConfig, Trainer

    model = convolab.create_model("lenet5_modern")
    model.data_config = dataclasses.replace(model.data_config, mean=(0.5,), std=(0.5,))
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, normalize="model", progress=False,
                         output=str(tmp_path / "run"))
    Trainer(config, model=model).fit()
    resumed = Trainer.resume(tmp_path / "run")
    assert resumed.run.transform.mean.flatten().tolist() == [0.5]
    assert resumed.run.transform.std.flatten().tolist() == [0.5]
