"""The honesty review: every figure convolab prints about a model's quality says what it is. Each test failed
before its fix."""
from __future__ import annotations

import pytest

from convolab.compare.seeds import holm, pair_tests, verdict_line, welch_test


def test_two_models_that_do_not_vary_over_their_seeds_get_no_test():
    # (before: 0.90 twice against 0.95 twice, a tie of a 20-image test set, was "Welch t=-inf, p=0.0e+00: different
    # at 5%"; 0.1 against 0.9 three times each printed a t of -8e16)
    assert welch_test([0.9, 0.9], [0.95, 0.95]) is None
    line = verdict_line("a", [0.9, 0.9], "b", [0.95, 0.95])
    assert line.endswith(": neither varies over its seeds: no test"), line
    assert "inf" not in verdict_line("a", [0.1] * 3, "b", [0.9] * 3)
    assert welch_test([0.9, 0.9], [0.9, 0.9]) == (0.0, 1.0, False)  # (the same results: not different)
    assert welch_test([0.9, 0.9], [0.95, 0.96]) is not None  # (one of them varies: Welch's test stands)


def test_holm_adjusts_as_its_definition():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])
    assert holm([0.2, float("nan"), 0.01]) == pytest.approx([0.4, 1.0, 0.03])  # (a NaN counts as 1: the others stand)


def test_the_pairs_of_several_models_are_judged_on_holm_adjusted_p_values():
    # (before: each of N pairs at 5% with no adjustment and no word of it)
    named = [("a", [0.900, 0.910, 0.905]), ("b", [0.880, 0.905, 0.890]), ("c", [0.850, 0.860, 0.840])]
    pairs = pair_tests(named)
    plain = [welch_test(va, vb).p for i, (_, va) in enumerate(named) for _, vb in named[i + 1:]]
    assert [p.p_adjusted for p in pairs] == pytest.approx(holm(plain))
    for pair, p in zip(pairs, holm(plain)):
        assert pair.test.different == (p < 0.05)
        assert f"Holm-adjusted over 3 pairs p={p:.3f}" in pair.line, pair.line
    lone = pair_tests(named[:2])  # one pair: nothing to adjust
    assert lone[0].p_adjusted is None and "Holm" not in lone[0].line
    assert lone[0].test.different == (lone[0].test.p < 0.05)


def test_the_best_epoch_and_the_early_stop_say_they_were_judged_on_the_test_images(tmp_path, capsys):
    # (before: "best test accuracy 0.9777 at epoch 4; run folder p1" and "early stop: test_acc did not improve for 1
    # epoch", with nothing saying that the same test images chose the epoch they report)
    from convolab.cli import main
    from convolab.training.loop import no_gain

    assert no_gain("test_acc", 0.0, 1) == "test_acc did not improve for 1 epoch (judged on the test images)"
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "2", "--no-progress",
                 "--output", str(run)]) == 0
    said = capsys.readouterr().out
    assert "at epoch " in said and "(best.pt, chosen on these test images); run folder" in said, said


def test_evaluate_names_the_checkpoint_and_the_epoch_it_scores(digits_run, tmp_path, capsys):
    # (before: `evaluate RUN` scored best.pt, the epoch chosen on these test images, and said nothing of which)
    import json
    import shutil

    import torch

    from convolab.cli import main
    from convolab.training.checkpoint import trained_epoch

    assert main(["evaluate", str(digits_run), "--output", str(tmp_path / "e1")]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[1] == f"checkpoint: {digits_run / 'best.pt'}, epoch 1 of 1 (the epoch of the best test_acc, judged " \
        "on the run's own test images)", said
    assert main(["evaluate", str(digits_run / "last.pt"), "--json", "--output", str(tmp_path / "e2")]) == 0
    checkpoint = json.loads(capsys.readouterr().out)["checkpoint"]
    assert checkpoint == {"file": str(digits_run / "last.pt"), "epoch": 1, "batch_in_epoch": 0, "epochs": 1,
                          "chosen_by": "test_acc", "judged_on": "the run's own test images"}  # (one epoch: the best)
    # Read from the checkpoint, not its name (the diff review's): a best.pt copied elsewhere is still the best
    # epoch's; a last.pt saved mid-epoch by a stop, or of a later epoch than the best, is not
    state = torch.load(digits_run / "last.pt", weights_only=True)
    shutil.copy(digits_run / "best.pt", tmp_path / "copy.pt")
    assert trained_epoch(torch.load(tmp_path / "copy.pt", weights_only=True), tmp_path / "copy.pt")["chosen_by"] \
        == "test_acc"
    stopped = trained_epoch({**state, "batch_in_epoch": 68}, digits_run / "last.pt")
    assert stopped["batch_in_epoch"] == 68 and stopped["chosen_by"] is None
    assert trained_epoch({**state, "epoch": 2}, digits_run / "last.pt")["chosen_by"] is None
    # The run's length as its folder's config.json gives it now (a run extended by --resume --epochs 3 after its best)
    run = tmp_path / "extended"
    shutil.copytree(digits_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    assert trained_epoch(state, run)["epochs"] == 3


def test_report_of_runs_scored_on_different_test_images_says_they_are_not_comparable(digits_run, tmp_path, capsys):
    # (before: results.md set a figure of 359 test images beside one of 100 without a word; report.html alone named
    # the options that differed)
    from convolab.cli import main

    other = tmp_path / "subset"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--test-subset", "10",
                 "--no-progress", "--output", str(other)]) == 0
    capsys.readouterr()
    assert main(["report", str(digits_run), str(other), "--output", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    written = (tmp_path / "rep" / "results.md").read_text(encoding="utf-8")
    for text in (printed, written):
        assert "Options that differ between runs: test_subset (see results.json)." in text, text
        assert "Not comparable: the runs were scored on different test images or otherwise (test_subset" in text
    assert main(["report", str(digits_run), "--output", str(tmp_path / "same")]) == 0
    assert "differ" not in (tmp_path / "same" / "results.md").read_text(encoding="utf-8")


def test_cost_versus_a_design_of_another_output_says_so():
    # (before: "5.11x fewer, 80% saved" of a 320x8x8 output against a 192x17x17 one, without a word)
    from convolab.analysis.cost import compare_designs, format_comparison

    text = format_comparison(compare_designs((768, 17, 17), "1x7:192 7x1:192 3x3:320/s2/p0", "7x7:192"))
    assert "(their outputs differ, 320x8x8 against 192x17x17" in text, text
    assert "differ" not in format_comparison(compare_designs((192, 28, 28), "1x1:16 5x5:32", "5x5:32"))


def test_the_differing_options_note_leaves_out_how_a_run_was_computed_and_a_pretrained_comparisons_weights():
    # (the diff review's: `report` of runs made apart listed threads and compile; every `compare --pretrained` ended
    # with "init_from differs", each model starting from its own published weights by design)
    from convolab.compare.report import differing_note
    from convolab.compare.results import ModelResult

    def result(model, **options):
        base = {"epochs": 2, "seed": 0, "threads": 1, "compile": False, "init_from": None, "image_size": None}
        return ModelResult(model=model, run_dir=model, options={**base, **options})

    assert differing_note([result("a"), result("b", threads=2, compile=True, seed=1)]) == ""
    assert differing_note([result("a", init_from="tv:a", image_size=224),
                           result("b", init_from="tv:b", image_size=299)]) == ""
    assert differing_note([result("a", init_from="tv:a"), result("b")]) == \
        "Options that differ between runs: init_from (see results.json).\n"  # (one from weights, one from scratch)
    assert "epochs, image_size" in differing_note([result("a", epochs=3, image_size=32), result("b")])
