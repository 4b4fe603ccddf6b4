"""Inspection: parameter and MAC counts, per-layer summaries, block design costs."""
from .counting import count_macs, count_params

__all__ = ["count_macs", "count_params"]
