"""The README tells the truth: its model tables match what the code counts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import convolab
from convolab.analysis import count_macs, count_params

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `(?P<name>\w+)`(?: \((?P<option>\w+)=(?P<value>\w+)\))? \| (?P<params>[\d,]+) \| "
                 r"(?P<macs>[\d,]+) \| (?P<input>\d+x\d+x\d+) \|")


def model_rows() -> list[dict]:
    text = README.read_text()
    section = text[text.index("<!-- section:models -->"):text.index("<!-- /section:models -->")]
    return [m.groupdict() for line in section.splitlines() if (m := ROW.match(line))]


def test_the_readme_lists_every_registered_model():
    listed = {row["name"] for row in model_rows()}
    assert len(model_rows()) >= 30
    assert set(convolab.list_models()) - listed == set()


@pytest.mark.parametrize("row", model_rows(), ids=lambda r: r["name"] + (f"-{r['option']}" if r["option"] else ""))
def test_readme_model_table_matches_the_counted_figures(row):
    options = {row["option"]: row["value"] == "True"} if row["option"] else {}
    with torch.device("meta"):
        model = convolab.create_model(row["name"], **options)
    size = tuple(int(v) for v in row["input"].split("x"))
    assert size == tuple(model.data_config.input_size)
    assert count_params(model) == int(row["params"].replace(",", ""))
    assert count_macs(model, size) == int(row["macs"].replace(",", ""))


def test_every_citation_of_the_reference_figures_names_a_section_of_docs_reference():
    root = Path(__file__).resolve().parents[1]
    headings = set(re.findall(r"^#{2,3} (\d+[a-z]?)\.", (root / "docs" / "REFERENCE.md").read_text(), re.M))
    cited = set()
    for path in [root / "README.md", *root.glob("convolab/**/*.py"), *root.glob("tests/*.py")]:
        cited |= set(re.findall(r"docs/REFERENCE\.md(?:'s)?,? (?:section )?(\d+[a-z]?)\b", path.read_text()))
    assert cited and cited <= headings, cited - headings
    assert "4c and 4d output 608 channels" in (root / "docs" / "REFERENCE.md").read_text()
