"""One self-contained HTML report of a results directory: plots embedded as PNG data
URIs, the comparison table, the experiment file and the manifest. No server needed."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlreg.analysis.compare import as_list, compare, mark_empty
from mlreg.analysis.plots import KINDS, figures

if TYPE_CHECKING:
    from mlreg.store import Results

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { padding: 0.2rem 0.6rem; text-align: right; }
tr:nth-child(even) { background: #f5f5f5; } th { background: #e8e8e8; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 520px; border: 1px solid #eee; }
"""


def png_data_uri(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # type: ignore[attr-defined]
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render(results: Results | Sequence[Results], *, metric: str = "best_val_data_loss",
           baseline: str | None = None, kinds: Sequence[str] = KINDS) -> str:
    """The report as an HTML string.

    Args:
        results: one `Results` or a list.
        metric: the column the table ranks by. Defaults to `"best_val_data_loss"`.
        baseline: a setting to compare against, e.g. `"l2=0"`. Defaults to `None`.
        kinds: which plots. Defaults to all of `mlreg.plots.KINDS`.
    """
    import matplotlib.pyplot as plt

    items = as_list(results)
    table = compare(results, metric=metric, baseline=baseline)
    title = " vs ".join(r.name for r in items)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>mlreg: {html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>mlreg report: {html.escape(title)}</h1>"]
    for r in items:
        m = r.manifest
        statuses = ", ".join(f"{n} {s}" for s, n in r.runs["status"].value_counts().items())
        parts.append(f"<p>{html.escape(m.get('description', ''))} — {len(r.runs)} runs ({statuses}); "
                     f"swept: {html.escape(', '.join(r.params) or 'nothing')}</p>")
    parts.append(f"<h2>Settings ranked by {html.escape(metric)} (mean over seeds; * = best)</h2>")
    parts.append(mark_empty(table).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
    parts.append("<h2>Plots</h2>")
    for stem, fig in figures(results, kinds).items():
        parts.append(f"<figure><img alt='{stem}' src='{png_data_uri(fig)}'><figcaption>{stem}</figcaption></figure>")
        plt.close(fig)
    for r in items:
        parts.append(f"<h2>Experiment file: {html.escape(r.name)} (spec.toml)</h2>")
        parts.append(f"<pre>{html.escape(r.spec_toml)}</pre>")
        parts.append(f"<h2>Manifest</h2><pre>{html.escape(json.dumps(r.manifest, indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(results: Results | Sequence[Results], path: str | Path, **kw: object) -> Path:
    """Writes `render(results, **kw)` to `path` and returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, **kw))  # type: ignore[arg-type]
    return path
