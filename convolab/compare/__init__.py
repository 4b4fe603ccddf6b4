"""Architectures side by side: train several models under one set of options, report them together."""
from .report import (
    REPORT_FILES,
    markdown_table,
    significance_lines,
    summary_table,
    unfinished_line,
    write_report,
    write_seeds_report,
)
from .reporting import report_runs
from .results import ModelResult, read_run
from .runner import RESUME_AFTER_A_WRITE, Comparison, compare_models, default_compare_dir, resume_comparison
from .seeds import SeedSummary, seed_values, summarize_seeds, verdict_line, welch_test

__all__ = ["REPORT_FILES", "RESUME_AFTER_A_WRITE", "Comparison", "ModelResult", "SeedSummary", "compare_models",
           "default_compare_dir", "markdown_table", "read_run", "report_runs", "resume_comparison", "seed_values",
           "significance_lines", "summarize_seeds", "summary_table", "unfinished_line", "verdict_line", "welch_test",
           "write_report", "write_seeds_report"]
