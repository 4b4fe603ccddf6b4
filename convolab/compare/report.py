"""The comparison report: results.json, results.md, curves.png and a self-contained report.html."""
from __future__ import annotations

import base64
import html
import io
import json
import platform
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._atomic import atomic_write
from .._platform import cpu_name
from ..errors import ConfigError
from .results import ModelResult

FORMAT = "convolab-compare-report-1"
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
    """Options equal in every run (shown once) and the names of those that differ."""
    configs = [r.options for r in results if r.options]
    if not configs:
        return {}, []
    keys = sorted(set().union(*configs))
    shared = {k: configs[0].get(k) for k in keys if all(c.get(k) == configs[0].get(k) for c in configs)}
    return shared, [k for k in keys if k not in shared]


def environment(results: list[ModelResult]) -> dict[str, str]:
    """Versions of what produced the report and the devices the runs trained on."""
    import torch
    import torchvision

    from .. import __version__

    devices = sorted({r.device for r in results if r.device})
    names = []
    for device in devices:
        if device.startswith("cuda") and torch.cuda.is_available():
            names.append(f"{device} ({torch.cuda.get_device_name(torch.device(device))})")
        else:
            names.append(f"{device} ({cpu_name()}, {torch.get_num_threads()} threads)")
    return {"convolab": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "device": "; ".join(names) or "-"}


# ----- the table ---------------------------------------------------------------------------------
COLUMNS = ("model", "parameters", "MACs", "lr", "train img/s", "train time (s)", "epochs", "best test acc",
           "final test acc", "best epoch")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_rows(results: list[ModelResult]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and formatted cells, shared by the Markdown and HTML tables; a status column only when
    some model did not finish."""
    with_status = any(not r.ok for r in results)
    header = COLUMNS + (("status",) if with_status else ())
    rows = []
    for r in results:
        cells = (r.model, _fmt(r.params, ","), _fmt(r.macs, ","), _fmt(r.lr, "g"),
                 _fmt(r.images_per_second, ",.0f"), _fmt(r.wall_seconds, ".1f"), str(r.epochs),
                 _fmt(r.best_acc, ".4f"), _fmt(r.final_acc, ".4f"), _fmt(r.best_epoch, "d"))
        rows.append(cells + ((r.status,) if with_status else ()))
    return header, rows


def markdown_table(results: list[ModelResult]) -> str:
    header, rows = table_rows(results)
    numeric = {i for i, h in enumerate(header) if h not in ("model", "status")}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ----- the curves --------------------------------------------------------------------------------
def _label(r: ModelResult) -> str:
    return r.model if r.ok else f"{r.model} ({r.status.split(':')[0]})"


def plot_comparison(results: list[ModelResult], title: str = "") -> bytes:
    """Training loss and test accuracy of every model, against epoch (top) and wall time (bottom), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="col")
    for i, r in enumerate(results):
        if not r.history:
            continue
        color = f"C{i % 10}"
        for row, x_key in enumerate(("epoch", "wall_seconds")):
            x = [h[x_key] for h in r.history]
            style = dict(color=color, marker="o", markersize=3, label=_label(r),
                         linestyle="-" if r.ok else ":")
            axes[row, 0].plot(x, [h["train_loss"] for h in r.history], **style)
            axes[row, 1].plot(x, [h["test_acc"] for h in r.history], **style)
    for row, xlabel in enumerate(("epoch", "training wall time (s, evaluation excluded)")):
        axes[row, 0].set(xlabel=xlabel, ylabel="training loss", yscale="log")
        axes[row, 1].set(xlabel=xlabel, ylabel="test accuracy")
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_title("training loss")
    axes[0, 1].set_title("test accuracy")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    if any(r.history for r in results):
        axes[0, 1].legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


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
             f'<img id="curves" alt="training loss and test accuracy of every model" '
             f'src="{_data_uri(curves_png)}">']
    own = [(r, Path(r.run_dir) / "curves.png") for r in results]
    own = [(r, path) for r, path in own if path.is_file()]
    if own:
        parts.append("<h2>Each run</h2>")
        for r, path in own:
            parts.append(f"<h3>{html.escape(r.model)}</h3><p><code>{html.escape(r.run_dir)}</code></p>"
                         f'<img alt="curves of {html.escape(r.model)}" src="{_data_uri(path.read_bytes())}">')
    parts.append("<h2>Command</h2>")
    parts.append(f"<pre>{html.escape(report['command'])}</pre>")
    for resumed in report.get("resumed_by", []):
        parts.append(f"<p>resumed with</p><pre>{html.escape(resumed)}</pre>")
    options = [(k, json.dumps(v)) for k, v in report["shared_options"].items()]
    parts.append("<h2>Training options (equal for all runs)</h2>")
    parts.append(_html_table(("option", "value"), options, set()))
    if report["differing_options"]:
        parts.append("<p>Options that differ between runs: "
                     f"{html.escape(', '.join(report['differing_options']))} (see results.json)</p>")
    parts.append("<h2>Versions</h2>")
    parts.append(_html_table(("", "version"), list(report["versions"].items()), set()))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(results: list[ModelResult], output: str | Path, command: list[str] | str,
                 resumed_by: list[str] | None = None) -> dict[str, Any]:
    """Write the four report files into `output` (each atomically) and return results.json's content."""
    data = check_same_data(results)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    shared, differing = split_options(results)
    report = {
        "format": FORMAT,
        "data": data,
        "command": command if isinstance(command, str) else shlex.join(command),
        "resumed_by": list(resumed_by or []),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": environment(results),
        "shared_options": shared,
        "differing_options": differing,
        "models": [r.to_dict() for r in results],
    }
    text = json.dumps(report, indent=1) + "\n"
    atomic_write(output / "results.json", lambda tmp: Path(tmp).write_text(text))
    md = markdown_table(results)
    atomic_write(output / "results.md", lambda tmp: Path(tmp).write_text(md))
    epochs = sorted({r.planned_epochs for r in results if r.planned_epochs})
    title = f"{data}: " + ", ".join(r.model for r in results)
    if epochs:
        title += f" ({'/'.join(map(str, epochs))} epochs)"
    curves = plot_comparison(results, title)
    atomic_write(output / "curves.png", lambda tmp: Path(tmp).write_bytes(curves))
    page = render_html(report, results, curves)
    atomic_write(output / "report.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return report
