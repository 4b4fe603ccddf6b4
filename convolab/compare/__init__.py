"""Architectures side by side: train several models under one set of options, report them together."""
from .report import REPORT_FILES, markdown_table, write_report
from .results import ModelResult, read_run
from .runner import Comparison, compare_models, default_compare_dir, report_runs, resume_comparison

__all__ = ["REPORT_FILES", "Comparison", "ModelResult", "compare_models", "default_compare_dir",
           "markdown_table", "read_run",
           "report_runs", "resume_comparison", "write_report"]
