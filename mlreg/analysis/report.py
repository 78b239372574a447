"""One self-contained HTML report of a results directory: the comparison table (scrolling in
its own box), every plot embedded as a PNG data URI with a caption in words (click one to
see it full size), a glossary of the columns, the runs that diverged or failed with their
errors, the experiment file and the manifest. No server and no network needed."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlreg.analysis.compare import as_list, baseline_note, combined_runs, compare, mark_empty
from mlreg.analysis.plots import caption, figures
from mlreg.search.answer import describe
from mlreg.spec import PLOTS
from mlreg.store import ERRORS

if TYPE_CHECKING:
    import pandas as pd

    from mlreg.analysis.results import Results

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.scroll { overflow-x: auto; border: 1px solid #e4e4e4; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { padding: 0.2rem 0.6rem; text-align: right; }
td { white-space: nowrap; } table.problems td:last-child { text-align: left; white-space: normal; min-width: 20rem; }
tr:nth-child(even) { background: #f5f5f5; } th { background: #e8e8e8; position: sticky; top: 0; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
pre.answer { white-space: pre-wrap; font-size: 0.9rem; background: #eef4fb; }
figure { display: block; margin: 1rem 0; max-width: 900px; }
figure img { width: 100%; border: 1px solid #eee; cursor: zoom-in; }
figcaption { font-size: 0.85rem; color: #444; }
figure.zoom { position: fixed; inset: 0; margin: 0; width: auto; background: rgba(0, 0, 0, 0.85); z-index: 9;
              display: flex; flex-direction: column; align-items: center; justify-content: center; }
figure.zoom img { width: min(96vw, 135vh); height: auto; cursor: zoom-out; }
figure.zoom figcaption { color: #eee; }
dl { font-size: 0.9rem; } dt { font-weight: 600; margin-top: 0.4rem; } dd { margin-left: 1.5rem; }
"""

_SCRIPT = """
document.querySelectorAll('figure').forEach(f => f.addEventListener('click', () => f.classList.toggle('zoom')));
document.addEventListener('keydown', e => { if (e.key === 'Escape')
  document.querySelectorAll('figure.zoom').forEach(f => f.classList.remove('zoom')); });
"""

GLOSSARY = {
    "n": "runs of the setting that finished ok (diverged and failed runs are counted apart)",
    "mean, std, min, max": "of the ranked metric over those runs (seeds)",
    "gap": "generalization gap: validation minus training data loss at the best epoch, mean over runs",
    "best_epoch": "the epoch with the best monitored value (early stopping restored its weights), mean over runs",
    "diverged": "runs whose loss became NaN or infinite; they are results and are not retried",
    "failed": "runs that raised an error (listed below); `mlreg run` retries them",
    "rank, best": "order by the mean (lower is better, except accuracy-like metrics); * marks the best",
    "diff": "mean paired difference to the baseline setting over the seeds both have",
    "ci_low, ci_high": "95% Student-t interval of that difference (not adjusted for the number of comparisons)",
    "p, p_holm": "two-sided paired t-test p-value; p_holm adjusts it for the comparisons (Holm), when asked",
    "verdict": "better or worse when the difference is clear of zero at the 5% level, else inconclusive",
    "best_val_data_loss": "the validation data loss at the best epoch: no penalty, no dropout, noise, augmentation or "
                          "label smoothing",
    "penalty (history.csv)": "every term the model adds to the data loss: its regularizers at the current weights and "
                             "its activity regularizers' mean over the training samples; weight decay is no loss "
                             "term and is not in it, nor is label smoothing",
}


def png_data_uri(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)  # type: ignore[attr-defined]
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render(results: Results | Sequence[Results], *, metric: str | None = None,
           baseline: str | None = None, adjust: str = "none", kinds: Sequence[str] = PLOTS) -> str:
    """The report as an HTML string.

    Args:
        results: one `Results` or a list.
        metric: the column the table ranks by. Defaults to `compare`'s default.
        baseline: a setting to compare against, e.g. `"l2=0"`. Defaults to `None`.
        adjust: `"none"` or `"holm"` (see `mlreg.compare`). Defaults to `"none"`.
        kinds: which plots. Defaults to all of `mlreg.spec.PLOTS`.
    """
    import matplotlib.pyplot as plt

    items = as_list(results)
    table = compare(results, metric=metric, baseline=baseline, adjust=adjust)
    metric = table.attrs["metric"]
    title = " vs ".join(r.name for r in items)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>mlreg: {html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>mlreg report: {html.escape(title)}</h1>"]
    for r in items:
        statuses = ", ".join(f"{n} {s}" for s, n in r.runs["status"].value_counts().items())
        description = r.manifest.get("description") or ""
        parts.append(f"<p>{html.escape(description) + ' — ' if description else ''}{len(r.runs)} runs ({statuses}); "
                     f"swept: {html.escape(', '.join(r.params) or 'nothing')}</p>")
    which = _which_kind(items)
    if which:
        parts.append(f"<h2>Which kind?</h2><p class='answer'>{html.escape(which)}</p>")
    for r in (r for r in items if r.answer):
        parts.append(f"<h2>The search's answer{': ' + html.escape(r.name) if len(items) > 1 else ''}</h2>"
                     f"<pre class='answer'>{html.escape(describe(r.answer))}</pre>")
    parts.append(f"<h2>Settings ranked by {html.escape(metric)} (mean over seeds; * = best)</h2>")
    shown = mark_empty(_for_reading(table)).to_html(index=False, na_rep="", border=0)
    parts.append(f"<div class='scroll'>{shown}</div>")
    if baseline is not None:
        parts.append(f"<p>{html.escape(baseline_note(table).strip())}.</p>")
    parts.append("<details><summary>What the columns mean</summary><dl>")
    parts += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in GLOSSARY.items()]
    parts.append("</dl></details>")
    parts.append("<h2>Plots</h2><p>Click a plot to see it full size; click again or press Esc to close.</p>")
    for stem, fig in figures(results, kinds).items():
        parts.append(f"<figure><img alt='{stem}' src='{png_data_uri(fig)}'>"
                     f"<figcaption>{html.escape(caption(stem))}</figcaption></figure>")
        plt.close(fig)
    parts.append(_problems(results))
    for r in items:
        parts.append(f"<h2>Experiment file: {html.escape(r.name)} (spec.toml)</h2>")
        parts.append(f"<pre>{html.escape(r.spec_toml)}</pre>")
        parts.append(f"<h2>Manifest</h2><pre>{html.escape(json.dumps(r.manifest, indent=2))}</pre>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _which_kind(items: Sequence[Results]) -> str:
    """The answer to "which kind?" in one sentence (`mlreg compare --kinds`), for one results
    directory that sweeps two kinds of regularization or more; else nothing."""
    from mlreg.analysis.kinds import kinds
    from mlreg.spec import KINDS, InputError

    if len(items) != 1 or sum(p in KINDS for p in items[0].params) < 2:
        return ""
    try:
        return kinds(items[0]).attrs["sentence"]
    except InputError:  # no setting without any kind
        return ""


SIGNIFICANT = 3
"""Significant digits of every number in the report's table, the same down each column."""


def _for_reading(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report shows it: `rank` and `best` first, then the setting, then what
    answers the question (mean, spread, the comparison with the baseline), then the rest; each
    column of numbers with one count of decimals, `SIGNIFICANT` digits for its typical value
    (p-values, which span orders of magnitude, with `SIGNIFICANT` significant digits each)."""
    import numpy as np
    import pandas as pd

    first = ["rank", "best"]
    answer = [c for c in ("n", "mean", "std", "diff", "ci_low", "ci_high", "p", "p_holm", "verdict") if c in table]
    setting = [c for c in table.columns[:table.columns.get_loc("n")] if c not in first]
    order = [*first, *setting, *answer, *(c for c in table.columns if c not in {*first, *setting, *answer})]
    shown = table[order].copy()
    for col in shown.columns:
        values = shown[col]
        if col in setting or col in ("rank", "n", "diverged", "failed") or not pd.api.types.is_float_dtype(values):
            continue
        finite = values[np.isfinite(values)]
        if finite.empty:
            continue
        if col in ("p", "p_holm"):
            shown[col] = values.map(lambda v: "" if v != v else f"{v:.{SIGNIFICANT}g}")
            continue
        typical = float(np.median(np.abs(finite[finite != 0]))) if (finite != 0).any() else 1.0
        decimals = max(0, SIGNIFICANT - 1 - int(np.floor(np.log10(typical))))
        shown[col] = values.map(lambda v, d=decimals: "" if v != v else f"{v:.{d}f}")
    return shown


def _problems(results: Results | Sequence[Results]) -> str:
    """A section listing the runs that diverged or failed, with their settings and errors, and
    the whole traceback of each failed run (kept in the results directory's `errors/`)."""
    runs, by = combined_runs(results)
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return "<h2>Diverged and failed runs</h2><p>None: every run finished ok.</p>"
    cols = [c for c in dict.fromkeys(["experiment", *by, "seed", "status", "epochs_run", "error"]) if c in bad.columns]
    table = bad[cols].to_html(index=False, na_rep="", border=0, classes="problems")  # the error last, wrapped
    traces = []
    for r in as_list(results):
        for run_id in r.runs.loc[r.runs["status"] == "failed", "run_id"]:
            path = r.root / ERRORS / f"{run_id}.txt"
            if path.is_file():
                traces.append(f"<details><summary>Traceback of run {html.escape(str(run_id))} "
                              f"({html.escape(str(path))})</summary><pre>{html.escape(path.read_text())}</pre></details>")
    return f"<h2>Diverged and failed runs ({len(bad)})</h2><div class='scroll'>{table}</div>" + "".join(traces)


def write(results: Results | Sequence[Results], path: str | Path, **kw: object) -> Path:
    """Writes `render(results, **kw)` to `path` and returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, **kw))  # type: ignore[arg-type]
    return path
