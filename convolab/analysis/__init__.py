"""Inspection: parameter and MAC counts, per-layer summaries, block design costs."""
from .cost import ConvSpec, DesignCost, LayerCost, compare_designs, design_cost, parse_design
from .counting import count_macs, count_params
from .summary import LayerRow, ModuleInfo, Summary, summary

__all__ = ["ConvSpec", "DesignCost", "LayerCost", "LayerRow", "ModuleInfo", "Summary", "compare_designs",
           "count_macs", "count_params", "design_cost", "parse_design", "summary"]
