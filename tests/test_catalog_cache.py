"""`convolab models` keeps the figures of convolab's own models in a file of the user's cache folder: the same
rows as counting them, a damaged or unwritable file only costing the time, a model registered elsewhere always
counted."""
from __future__ import annotations

import json
import os
import time

import pytest
from torch import nn

from convolab import register_model
from convolab.analysis import catalog
from convolab.analysis.catalog import catalog_file, model_catalog


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOLAB_CATALOG_CACHE", str(tmp_path / "catalog"))
    return tmp_path / "catalog"


def _no_counting(monkeypatch):
    """Counting made to fail: a row that still has its figures came from the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("counted, not read from the cache")
    monkeypatch.setattr(catalog, "count_macs", refuse)
    monkeypatch.setattr(catalog, "count_params", refuse)


def test_the_cache_gives_the_counted_rows(cache, monkeypatch):
    counted = model_catalog("lenet*", cache=False)
    assert not cache.exists()  # (cache=False neither reads nor writes)
    assert model_catalog("lenet*") == counted
    path = catalog_file()
    assert path.parent == cache and path.is_file()
    assert set(json.loads(path.read_text())) == {r["name"] for r in counted}
    assert [p.name for p in cache.iterdir()] == [path.name]  # (no temporary left)
    _no_counting(monkeypatch)
    assert model_catalog("lenet*") == counted
    assert model_catalog("lenet5")[0]["params"] == 61_706  # (REFERENCE.md: LeNet-5, 61,706)


def test_rows_are_added_to_the_file_as_they_are_counted(cache):
    model_catalog("lenet5")
    model_catalog("resnet20")
    assert set(json.loads(catalog_file().read_text())) == {"lenet5", "resnet20"}


@pytest.mark.parametrize("damage", ["not json", "[1, 2]", '{"lenet5": {"params": 1}}', '{"lenet5": 7}'])
def test_a_damaged_file_is_counted_again(cache, damage):
    counted = model_catalog("lenet5", cache=False)
    cache.mkdir()
    catalog_file().write_text(damage)
    assert model_catalog("lenet5") == counted
    assert json.loads(catalog_file().read_text())["lenet5"]["params"] == 61_706


def test_a_file_of_another_digest_is_not_read_and_is_removed_once_a_month_old(cache, monkeypatch):
    cache.mkdir()
    other = cache / "catalog-0123456789abcdef0123456789abcdef.json"  # (another install's: another venv, torch)
    other.write_text(json.dumps({"lenet5": {"params": 5, "macs": 5, "input_size": [1, 28, 28], "note": None}}))
    assert model_catalog("lenet5")[0]["params"] == 61_706
    assert other.exists() and catalog_file().exists()  # (before: removed, and the other install counted again)
    month = time.time() - 31 * 86400
    os.utime(other, (month, month))
    model_catalog("resnet20")
    assert not other.exists()


def test_an_unwritable_cache_only_costs_the_time(cache):
    cache.write_text("a file where the folder would be")  # (a folder it cannot make, even as root)
    assert model_catalog("lenet5")[0]["params"] == 61_706
    assert cache.read_text() == "a file where the folder would be"


@pytest.mark.usefixtures("fresh_registry")
def test_a_model_registered_elsewhere_is_counted_each_time(cache):
    @register_model
    def ext_catalog_net(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, num_classes))

    assert model_catalog("*catalog_net")[0]["params"] == 4 * 9 + 4 + 4 * 10 + 10
    assert not catalog_file().exists()  # (its code is not in the digest: a changed class would show stale figures)
