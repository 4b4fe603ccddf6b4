"""How a run's record of its options (`TrainConfig.to_record`, config.json) is read, whichever convolab wrote it."""
from __future__ import annotations

from typing import Any

from ..data import FOLDER_VAL_FRACTION

# A record of a run's options (`TrainConfig.to_record`) names its revision: 2 from when --val-fraction held validation
# images out of data with a test split of their own (its default became None); before, it applied to folders of one
# split only, and every record held its default, 0.1, which such a record means as None does now.
RECORD, RECORD_REVISION, DEFAULTED = "record", 2, "val_fraction_defaulted"
LEGACY_VAL_FRACTION = FOLDER_VAL_FRACTION  # (0.1)


def as_recorded_now(values: dict[str, Any]) -> dict[str, Any]:
    """A record of a run's options as this convolab reads it: --val-fraction's default, recorded as 0.1 and
    DEFAULTED, is None; of a record of revision 1 (no RECORD), 0.1, the default then, is None too (the same images
    held out, none of data with a test split), and another value holds its fraction out of folders of one split
    only, as that convolab did."""
    if values.get(RECORD) is not None:
        return {**values, "val_fraction": None} if values.get(DEFAULTED) else values
    if values.get("val_fraction") is None:
        return values
    if values["val_fraction"] == LEGACY_VAL_FRACTION:
        return {**values, "val_fraction": None}
    return {**values, "val_fraction_of_one_split": True}
