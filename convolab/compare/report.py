"""The comparison report: results.json, results.md, curves.png and a self-contained report.html; a row
per model, or with several seeds per model their mean and standard deviation and a test of each pair."""
from __future__ import annotations

import base64
import dataclasses
import html
import json
import platform
import shlex
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import torch

from .._atomic import json_text, write_together, write_utf8
from .._platform import cpu_name
from .._version import __version__
from ..errors import ConfigError
from ..training import metrics as plots  # (what every picture of curves draws alike)
from .curves import BAND, plot_comparison, plot_seed_comparison, scored_name
from .results import OK, ModelResult
from .seeds import (
    ALPHA,
    FIGURES,
    NOT_NOTED,
    SPREAD,
    VALIDATED,
    SeedSummary,
    compare_pairs,
    compared_figure,
    figures_of,
    has_several_seeds,
    run_label,
    scored_word,
    settings_apart,
    summarize_seeds,
    trained_options,
    validated,
)

FORMAT = "convolab-compare-report-1"
SEEDS_FORMAT = "convolab-compare-seeds-report-1"
REPORT_FILES = ("results.json", "results.md", "curves.png", "report.html")


def check_same_data(results: list[ModelResult]) -> str:
    """The one data set of all runs that have one; a comparison across data sets is refused."""
    by_data: dict[str, list[str]] = {}
    for r in results:
        if r.data is not None:
            by_data.setdefault(r.data, []).append(r.model)
    if len(by_data) > 1:
        listing = "; ".join(f"{data}: {', '.join(models)}" for data, models in by_data.items())
        raise ConfigError(f"runs of different data sets cannot be compared ({listing}); give runs made "
                          "on one data set")
    return next(iter(by_data), "")


def split_options(results: list[ModelResult]) -> tuple[dict[str, Any], list[str]]:
    """Options equal in every run (shown once) and the names of those that differ. Where a run gave an lr, one left
    to its model's default counts as the lr it trained at (lr 0.1 given and lr 0.1 by default do not differ)."""
    given = [r for r in results if r.options]
    if not given:
        return {}, []
    lr_given = any(r.options.get("lr") is not None for r in given)
    configs = [trained_options(r) if lr_given else r.options for r in given]
    keys = sorted(set().union(*configs))
    shared = {k: configs[0].get(k) for k in keys if all(c.get(k) == configs[0].get(k) for c in configs)}
    return shared, [k for k in keys if k not in shared]


# Options that change which test images a run is scored on, or how: runs that differ in one are not comparable
SCORING = ("test_subset", "val_fraction", "tta")
def differing_note(results: list[ModelResult]) -> str:
    """The lines under a table of runs whose options differ (`report` of runs made apart): which options, and a
    warning where one changes the images or the way their test figures were scored, and where the runs trained on
    other devices or threads (their img/s and train time then measure those too)."""
    # (runs that all start from published weights: each model's own, as init_from, at its own input size)
    weights = all(r.options.get("init_from") for r in results if r.options)
    differing = [k for k in split_options(results)[1]
                 if k not in NOT_NOTED and not (weights and k in ("init_from", "image_size"))]
    note = f"Options that differ between runs: {', '.join(differing)} (see results.json).\n" if differing else ""
    scoring = [k for k in differing if k in SCORING]
    if scoring:
        note += (f"Not comparable: the runs were scored on different test images or otherwise "
                 f"({', '.join(scoring)} differ), so their test figures do not measure the same thing.\n")
    elif "train_subset" in differing and validated(results):  # (validation images are held out of the subset)
        note += ("Not comparable on validation: the runs validated on different images (train_subset differs, and "
                 "the validation images are held out of it), so their val figures do not measure the same thing; "
                 "their test acc (best.pt) is of the same test images.\n")
    return note + speed_note(results)


def speed_note(results: list[ModelResult]) -> str:
    """A line where the runs that trained did so on other devices, numbers of threads or of processes (--nproc): their
    img/s and train time measure the machine as much as the model."""
    trained = [r for r in results if r.images_per_second is not None or r.wall_seconds is not None]
    devices = sorted({"cuda:0" if r.device == "cuda" else r.device for r in trained if r.device})  # (cuda's 0)
    threads = sorted({r.threads for r in trained if r.threads and (r.device or "cpu") == "cpu"})
    processes = sorted({r.processes or 1 for r in trained if r.processes is not None})  # (--nproc)
    differ = ([f"devices {', '.join(devices)}"] if len(devices) > 1 else []) + \
        ([f"threads {', '.join(map(str, threads))}"] if len(threads) > 1 else []) + \
        ([f"numbers of processes {', '.join(map(str, processes))}"] if len(processes) > 1 else [])
    if not differ:
        return ""
    return (f"Not comparable in speed: the runs trained with different {' and '.join(differ)}, so their train "
            "img/s and train time do not measure the same thing.\n")


def environment(results: list[ModelResult]) -> dict[str, str]:
    """Versions of what produced the report and the devices the runs trained on."""
    devices = sorted({r.device for r in results if r.device})
    names = []
    for device in devices:
        if device.startswith("cuda") and torch.cuda.is_available():
            names.append(f"{device} ({torch.cuda.get_device_name(torch.device(device))})")
        else:  # the threads the runs trained with (this process's are the report's own)
            threads = sorted({r.threads for r in results if r.device == device and r.threads})
            said = f", {'-'.join(map(str, threads[::max(1, len(threads) - 1)]))} threads" if threads else ""
            names.append(f"{device} ({cpu_name()}{said})")
    return {"convolab": __version__, "torch": torch.__version__, "torchvision": package_version("torchvision"),
            "python": platform.python_version(), "device": "; ".join(names) or "-"}


# ----- the table ---------------------------------------------------------------------------------
COLUMNS = ("model", "parameters", "MACs", "lr", "train img/s", "train time (s)", "epochs", "best test acc",
           "final test acc", "best epoch")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_rows(results: list[ModelResult]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and formatted cells, shared by the Markdown and HTML tables; a status column only when
    some model did not finish."""
    with_status, held = any(not r.ok for r in results), validated(results)
    # (runs that validated on held-out images: best and final are the validation images', and best.pt's accuracy
    # on the unseen test split follows)
    word = scored_word(results)
    header = (tuple(c.replace(" test ", f" {word} " if word else " ") for c in COLUMNS)
              + (VALIDATED["unseen_test_acc"],) if held else COLUMNS) + (("status",) if with_status else ())
    rows = []
    for r in results:
        cells = (r.model, _fmt(r.params, ","), _fmt(r.macs, ","), _fmt(r.lr, "g"),
                 _fmt(r.images_per_second, ",.0f"), _fmt(r.wall_seconds, ".1f"), str(r.epochs),
                 _fmt(r.best_acc, ".4f"), _fmt(r.final_acc, ".4f"), _fmt(r.best_epoch, "d"),
                 *((_fmt(r.unseen_test_acc, ".4f"),) if held else ()))
        rows.append(cells + ((r.status,) if with_status else ()))
    return header, rows


def markdown_table(results: list[ModelResult], escape: bool = True) -> str:
    """The comparison as a Markdown table, one row per model, numbers right-aligned; "-" where a run has none.
    `escape`: & < > as HTML entities, for a file a renderer reads (not for a terminal)."""
    return _markdown(*table_rows(results), escape=escape)


def _markdown(header: tuple[str, ...], rows: list[tuple[str, ...]], escape: bool = True) -> str:
    numeric = {i for i, h in enumerate(header) if h not in ("model", "status")}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
    # (& < > escaped: renderers pass inline HTML through, and a run folder named `<img src=x onerror=...>` ran)
    lines += ["| " + " | ".join((html.escape(c, quote=False) if escape else c).replace("|", "\\|") for c in row) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


# ----- the page ----------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;white-space:pre-wrap}img{max-width:100%}
.failed{color:#b00}.interrupted,.notrun{color:#a60}"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]], numeric: set[int],
                row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if i in numeric
                        else f"<td>{html.escape(c)}</td>" for i, c in enumerate(row))
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _row_class(r: ModelResult) -> str:
    return "" if r.ok else r.status.split(":")[0].replace(" ", "")


def render_html(report: dict[str, Any], results: list[ModelResult], curves_png: bytes) -> str:
    """One page holding everything: table, curves, each run's own curves, command, options, versions."""
    header, rows = table_rows(results)
    numeric = {i for i, h in enumerate(header) if h not in ("model", "status")}
    title = f"convolab comparison on {report['data']}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(results)} models, created {html.escape(report['created'])}. Training images/s is "
             "the mean of the epochs after the first; train time is the training steps of all epochs "
             "(device-synchronized), evaluation excluded.</p>",
             "<h2>Results</h2>",
             _html_table(header, rows, numeric, [_row_class(r) for r in results]),
             "<h2>Curves</h2>",
             f'<img id="curves" alt="training loss and {scored_name(results)} accuracy of every model" '
             f'src="{_data_uri(curves_png)}">']
    own = [(r, Path(r.run_dir) / "curves.png") for r in results]
    own = [(r, path) for r, path in own if path.is_file()]
    if own:
        parts.append("<h2>Each run</h2>")
        for r, path in own:
            parts.append(f"<h3>{html.escape(r.model)}</h3><p><code>{html.escape(r.run_dir)}</code></p>"
                         f'<img alt="curves of {html.escape(r.model)}" src="{_data_uri(path.read_bytes())}">')
    return _page(title, parts + _html_footer(report))


def _html_footer(report: dict[str, Any]) -> list[str]:
    """The end of the page: the command, the options, the versions."""
    parts = ["<h2>Command</h2>", f"<pre>{html.escape(report['command'])}</pre>"]
    for resumed in report.get("resumed_by", []):
        parts.append(f"<p>resumed with</p><pre>{html.escape(resumed)}</pre>")
    options = [(k, json.dumps(v)) for k, v in report["shared_options"].items()]
    parts.append("<h2>Training options (equal for all runs)</h2>")
    parts.append(_html_table(("option", "value"), options, set()))
    parts += [f"<p>{html.escape(line)}</p>" for line in report["notes"]]
    parts.append("<h2>Versions</h2>")
    parts.append(_html_table(("", "version"), list(report["versions"].items()), set()))
    return parts


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _report_head(results: list[ModelResult], output: Path, command: list[str] | str,
                 resumed_by: list[str] | None, form: str) -> dict[str, Any]:
    """What results.json holds of any comparison (the data are checked to be one set); creates `output`."""
    data = check_same_data(results)
    output.mkdir(parents=True, exist_ok=True)
    shared, differing = split_options(results)
    return {
        "format": form,
        "data": data,
        "command": command if isinstance(command, str) else shlex.join(command),
        "resumed_by": list(resumed_by or []),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": environment(results),
        "shared_options": shared,
        "differing_options": differing,
        "notes": differing_note(results).splitlines(),  # (what results.md says under its table)
    }


def _curves_title(data: str, models: list[str], results: list[ModelResult]) -> str:
    epochs = "/".join(map(str, sorted({r.planned_epochs for r in results if r.planned_epochs})))
    unit = "epoch" if epochs == "1" else "epochs"
    named = ", ".join(models) if len(models) <= 8 else f"{len(models)} curves, named below"  # (in the legend)
    return f"{plots.data_name(data)}: {named}" + (f" ({epochs} {unit})" if epochs else "")


def write_report(results: list[ModelResult], output: str | Path, command: list[str] | str,
                 resumed_by: list[str] | None = None) -> dict[str, Any]:
    """Write the four report files into `output` (together: `_write_files`) and return results.json's content."""
    output = Path(output)
    settings_apart(results)
    report = _report_head(results, output, command, resumed_by, FORMAT)
    report["models"] = [r.to_dict() for r in results]
    curves = plot_comparison(results, _curves_title(report["data"], [r.model for r in results], results))
    note = differing_note(results)
    _write_files(output, json_text(report), markdown_table(results) + (f"\n{note}" if note else ""), curves,
                 render_html(report, results, curves))
    return report


def _write_files(output: Path, results_json: str, results_md: str, curves_png: bytes, report_html: str) -> None:
    """The four files of a report, replaced together or (failed, interrupted) not at all: one report's table
    beside another's page was what a second report into the folder, or SIGTERM midway, left."""
    write_together([(output / "results.json", lambda tmp: Path(tmp).write_text(results_json, encoding="utf-8")),
                    (output / "results.md", lambda tmp: write_utf8(tmp, results_md)),
                    (output / "curves.png", lambda tmp: Path(tmp).write_bytes(curves_png)),
                    (output / "report.html", lambda tmp: write_utf8(tmp, report_html))])


# ----- several seeds -----------------------------------------------------------------------------
SEED_COLUMNS = ("model", "parameters", "MACs", "lr", "seeds", "epochs", "train img/s", "train time (s)",
                *FIGURES.values())
SIGNIFICANCE = (f"Is the difference in final test accuracy larger than seed-to-seed noise? Welch's t-test, "
                f"two-sided, at {ALPHA:.0%}; of several pairs, each judged on its p-value Holm-adjusted for the number "
                f"of pairs tested")
# (of runs that validated on held-out images: best.pt's accuracy on the test split no epoch was scored on)
SIGNIFICANCE_UNSEEN = SIGNIFICANCE.replace("final test accuracy",
                                           "the test accuracy of best.pt on the unseen test split")


def significance_title(results: list[ModelResult]) -> str:
    """The heading of the tests of pairs: of the figure `compared_figure` tests."""
    if compared_figure(results) == "unseen_test_acc":
        return SIGNIFICANCE_UNSEEN
    word = scored_word(results)
    return SIGNIFICANCE.replace("final test", f"final {word}".replace("val", "validation") if word else "final")


def _range(values: list[int]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def seeds_table_rows(summaries: list[SeedSummary]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and cells of the table of several seeds: each figure as mean ± sample standard deviation;
    `seeds` counts the runs that finished; a status column only when some run did not finish."""
    with_status = any(s.status != OK for s in summaries)
    figures = figures_of([r for s in summaries for r in s.runs])
    header = SEED_COLUMNS[:-len(FIGURES)] + tuple(figures.values()) + (("status",) if with_status else ())
    rows = []
    for s in summaries:
        finished, total = len(s.finished), len(s.runs)
        cells = (s.model, _fmt(s.first("params"), ","), _fmt(s.first("macs"), ","), _fmt(s.lr, "g"),
                 str(finished) if finished == total else f"{finished} of {total}",
                 _range([r.epochs for r in s.finished]), s.spread("images_per_second").format(",.0f"),
                 s.spread("wall_seconds").format(".1f"),
                 *(s.spread(figure).format(".4f") for figure in figures))
        rows.append(cells + ((s.status,) if with_status else ()))
    return header, rows


def seeds_markdown_table(summaries: list[SeedSummary], escape: bool = True) -> str:
    return _markdown(*seeds_table_rows(summaries), escape=escape)


def _seeds_note(summaries: list[SeedSummary]) -> str:
    """The line under a table of seeds: what each figure is, and of which seeds (each model's, where they differ)."""
    def listed(seeds: list[int]) -> str:
        return ', '.join(map(str, sorted(seeds))) or '-'

    every = {tuple(sorted(s.seeds)) for s in summaries}
    if len(every) <= 1:
        return f"Each figure: {SPREAD} (seeds {listed(next(iter(every), ()))})."
    each = "; ".join(f"{s.model} {listed(s.seeds)}" for s in summaries)
    return f"Each figure: {SPREAD} (seeds that finished: {each})."


def summary_table(results: list[ModelResult], escape: bool = True) -> str:
    """The table `convolab compare` prints: a row per model, or with several seeds per model the mean and
    standard deviation of each figure and a line saying so. `escape`: & < > as HTML entities, for a Markdown file
    (the CLI prints it unescaped, on a terminal)."""
    note = differing_note(results)
    if not has_several_seeds(results):
        return markdown_table(results, escape=escape) + note
    summaries = summarize_seeds(results)
    return seeds_markdown_table(summaries, escape=escape) + _seeds_note(summaries) + "\n" + note


def significance_lines(results: list[ModelResult]) -> list[str]:
    """A line per pair of models saying whether their final test accuracies (of runs that validated on held-out
    images: best.pt's on the unseen test split) differ by more than
    seed-to-seed noise; none when each model ran once."""
    if not has_several_seeds(results):
        return []
    return [pair.line for pair in compare_pairs(summarize_seeds(results))]


def unfinished_line(results: list[ModelResult]) -> str:
    """`2 of 6 models did not finish: ...` naming them (with several seeds: the runs), or ''."""
    several = has_several_seeds(results)
    failed = [run_label(r) if several else r.model for r in results if not r.ok]
    if not failed:
        return ""
    return f"{len(failed)} of {len(results)} {'runs' if several else 'models'} did not finish: {', '.join(failed)}"


def render_seeds_html(report: dict[str, Any], summaries: list[SeedSummary], results: list[ModelResult],
                      curves_png: bytes) -> str:
    """render_html's page for several seeds: the table of means and deviations, the test of each pair of
    models, the mean curves, then every run."""
    header, rows = seeds_table_rows(summaries)
    numeric = {i for i, h in enumerate(header) if h not in ("model", "status")}
    title = f"convolab comparison on {report['data']}"
    classes = ["" if s.status == OK else "failed" for s in summaries]
    runs = [dataclasses.replace(r, model=run_label(r)) for r in results]
    run_header, run_rows = table_rows(runs)
    run_numeric = {i for i, h in enumerate(run_header) if h not in ("model", "status")}
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(summaries)} models, {len(results)} runs, created {html.escape(report['created'])}. "
             f"{html.escape(_seeds_note(summaries))} The seeds column counts the runs that finished. Train time "
             "is the training steps of all epochs (device-synchronized), evaluation excluded.</p>",
             "<h2>Results</h2>",
             _html_table(header, rows, numeric, classes),
             f"<h2>{html.escape(significance_title(results))}</h2>",
             "<ul>" + "".join(f"<li><code>{html.escape(p['line'])}</code></li>" for p in report["significance"])
             + "</ul>",
             "<h2>Curves</h2>",
             f"<p>Lines: each model's mean over its seeds (at each epoch, of the seeds that reached it); "
             f"{html.escape(BAND)}.</p>",
             f'<img id="curves" alt="mean training loss and {scored_name(results)} accuracy of every model over its '
             f'seeds" '
             f'src="{_data_uri(curves_png)}">',
             "<h2>Each run</h2>",
             _html_table(run_header, run_rows, run_numeric, [_row_class(r) for r in results])]
    for r in runs:
        path = Path(r.run_dir) / "curves.png"
        if path.is_file():
            parts.append(f"<h3>{html.escape(r.model)}</h3><p><code>{html.escape(r.run_dir)}</code></p>"
                         f'<img alt="curves of {html.escape(r.model)}" src="{_data_uri(path.read_bytes())}">')
    return _page(title, parts + _html_footer(report))


def write_seeds_report(results: list[ModelResult], output: str | Path, command: list[str] | str,
                       resumed_by: list[str] | None = None) -> dict[str, Any]:
    """write_report for a comparison of several seeds per model (`results`: a row per run); results.json
    holds a row per model with the mean and sample standard deviation of each figure, the test of each
    pair of models and every run's row."""
    output = Path(output)
    settings_apart(results)
    summaries = summarize_seeds(results)
    pairs = compare_pairs(summaries)
    report = _report_head(results, output, command, resumed_by, SEEDS_FORMAT) | {
        "statistics": SPREAD,
        "models": [s.to_dict() for s in summaries],
        "significance": [{"models": list(p.models), "figure": compared_figure(results), "test": "welch", "alpha": ALPHA,
                          "t": p.test.t if p.test else None, "p": p.test.p if p.test else None,
                          "p_holm": p.p_adjusted,  # (None: one pair tested, or none)
                          "different": p.test.different if p.test else None, "line": p.line} for p in pairs],
        "runs": [r.to_dict() for r in results],
    }
    note = differing_note(results)
    md = (seeds_markdown_table(summaries) + "\n" + _seeds_note(summaries) + "\n" + (f"\n{note}" if note else "")
          + "\n" + f"## {significance_title(results)}\n\n"
          + "".join(f"- {html.escape(p.line, quote=False)}\n" for p in pairs))
    curves = plot_seed_comparison(summaries, _curves_title(report["data"], [s.model for s in summaries], results))
    _write_files(output, json_text(report), md, curves,
                 render_seeds_html(report, summaries, results, curves))
    return report
