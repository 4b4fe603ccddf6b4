"""Inspection edges found by this round's review: a two-head model's summary has its backbone's row (its rows of
one depth add up to the totals), input sizes with the batch or without channels are one line, and model names
are taken in any case."""
from __future__ import annotations

import pytest

import convolab
from convolab.analysis import count_macs, summary
from convolab.analysis.draw import architecture_graph
from convolab.errors import ConfigError


@pytest.mark.parametrize("name", ["lenet5_two_head", "multitask"])
def test_the_rows_of_depth_one_of_a_two_head_model_add_up_to_its_totals(name):
    table = summary(convolab.create_model(name), (1, 28, 28), depth=1)
    assert table.rows[0].name == "backbone" and table.rows[0].params > 0.99 * table.total_params
    assert sum(r.params for r in table.rows) == table.total_params
    assert sum(r.macs for r in table.rows) == table.total_macs
    assert table.rows[0].output_shape is None  # (never called itself: no output of its own)


def test_a_model_whose_parts_are_all_called_gets_no_extra_rows():
    rows = summary(convolab.create_model("lenet5"), (1, 28, 28)).rows
    assert [r.name for r in rows][:2] == ["features", "features.0"]
    assert all(r.output_shape is not None for r in rows)


@pytest.mark.parametrize("size, hint", [((1, 3, 32, 32), "; give (3, 32, 32)"), ((32, 32), "")])
def test_an_input_size_that_is_not_one_images_chw_is_one_line(size, hint):
    model = convolab.create_model("resnet20")
    for inspect in (summary, count_macs, architecture_graph):
        with pytest.raises(ConfigError) as caught:
            inspect(model, size)
        assert str(caught.value) == ("input_size must be (channels, height, width) of one image, without the batch, "
                                     f"got {size}{hint}"), inspect.__name__


def test_model_names_are_taken_in_any_case():
    assert convolab.create_model("RESNET20").model_name == "resnet20"
    assert convolab.create_model("LeNet").model_name == "lenet5"  # (an alias too)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_every_depth_of_a_two_head_model_adds_up_to_the_totals(depth):
    table = summary(convolab.create_model("lenet5_two_head"), (1, 28, 28), depth=depth)
    top = [r for r in table.rows if r.depth == depth or (r.depth < depth and not any(
        o.name.startswith(r.name + ".") and o.depth <= depth for o in table.rows))]
    assert sum(r.macs for r in top) == table.total_macs
