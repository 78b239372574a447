"""What every plot draws from: the results as frames (runs, history, weights; settings as
labels), one colour per setting, and the axes' helpers (scales, legends, which curves to show)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.analysis.aggregate import over_seeds
from mlreg.analysis.compare import as_list, combined_runs, experiment_names, independent, metric_of
from mlreg.records import higher_is_better
from mlreg.spec import label

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from mlreg.analysis.results import Results


MAX_CURVES = 10
"""Loss curves and histograms draw at most this many settings (spread over the grid, best included)."""

LABELS = {
    "best_val_data_loss": "validation data loss at best epoch",
    "train_data_loss_at_best": "training data loss at best epoch",
    "val_accuracy_at_best": "validation accuracy at best epoch",
    "train_accuracy_at_best": "training accuracy at best epoch",
    "val_mae_at_best": "validation MAE at best epoch",
    "train_mae_at_best": "training MAE at best epoch",
    "gap": "generalization gap (val - train data loss)",
    "weight_l2": "Σw² over kernels",
    "weight_l1": "Σ|w| over kernels",
    "sparsity": "fraction of kernel weights with |w| < 1e-3",
    "epochs_run": "epochs trained (early stopping)",
}
"""Axis labels of the metrics; a parameter's axis is labelled with its one name (`l2`, `learning_rate`)."""

@dataclass(frozen=True)
class Frames:
    """Runs, history and weights of one or several results directories, with a
    `setting` label per run and the colour of each setting. `by` defines the settings;
    `axes` are those of its columns that vary on their own (see `compare.independent`)."""

    runs: pd.DataFrame
    history: pd.DataFrame
    weights: pd.DataFrame
    by: list[str]
    axes: list[str]
    colors: dict[str, Any]


def frames(results: Results | Sequence[Results] | Frames, by: Sequence[str] | None = None) -> Frames:
    """Joins results into frames keyed by (`experiment`, `run_id`) with a `setting` label.
    `Frames` given with the same `by` are returned as they are (so `figures` joins once)."""
    import pandas as pd

    if isinstance(results, Frames) and (by is None or list(by) == results.by):
        return results
    if isinstance(results, Frames):
        raise ValueError("pass the results themselves to group them by other columns")

    runs, default_by = combined_runs(results)
    by = list(by) if by else default_by
    items = as_list(results)

    def stack(attr: str) -> pd.DataFrame:
        names = experiment_names(items)
        parts = [getattr(r, attr).assign(experiment=name) for r, name in zip(items, names, strict=True)]
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    runs = runs.copy()
    axes = independent(runs, by)
    runs["setting"] = _labels(runs, axes)
    keys = ["experiment", "run_id"]
    history = stack("history").merge(runs[[*keys, "setting"]], on=keys)
    weights = stack("weights").merge(runs[[*keys, "setting"]], on=keys)
    return Frames(runs, history, weights, by, axes, setting_colors(runs, axes))


def _labels(runs: pd.DataFrame, by: list[str]) -> pd.Series:
    if not by:
        return runs["experiment"].astype(str)
    if len(by) == 1 and by[0] != "experiment":
        return runs[by[0]].map(label)
    return runs[by].apply(lambda row: _join(row.items()), axis=1)


def _join(pairs: Any) -> str:
    """`l2=0.001, dropout=0.5`; experiments and variants go by their names alone, and a
    parameter a run does not have (another directory's) is left out."""
    return ", ".join(str(v) if k in ("experiment", "variant") else f"{k}={label(v)}"
                     for k, v in pairs if not (v is None or v != v))


def setting_colors(runs: pd.DataFrame, by: list[str]) -> dict[str, Any]:
    """One colour per setting: a sequential colormap in grid order for one numeric
    parameter, a qualitative palette otherwise. The same in every plot."""
    import matplotlib as mpl
    import pandas as pd

    order = runs.drop_duplicates("setting")
    if len(by) == 1 and pd.api.types.is_numeric_dtype(runs[by[0]]):
        order = order.sort_values(by[0])
        cmap = mpl.colormaps["viridis"]
        n = max(len(order) - 1, 1)
        return {s: cmap(0.9 * i / n) for i, s in enumerate(order["setting"])}
    if len(order) <= 20:
        palette = mpl.colormaps["tab10" if len(order) <= 10 else "tab20"].colors
        return {s: palette[i] for i, s in enumerate(order["setting"])}
    cmap, n = mpl.colormaps["turbo"], len(order) - 1
    return {s: cmap(0.05 + 0.9 * i / n) for i, s in enumerate(order["setting"])}


def _ax(ax: Axes | None) -> Axes:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    return ax


def set_param_scale(ax: Axes, values: Sequence[float], axis: str = "x") -> str:
    """A log scale when the positive values span a decade or more, symlog when 0 is among
    them (so 0 and the smallest rate stand apart); linear otherwise (a dropout of 0, 0.2, 0.5).
    Returns the scale chosen."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    positive = values[values > 0]
    if len(positive) < 2 or positive.max() / positive.min() < 10 or (values < 0).any():
        return "linear"
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if (values == 0).any():
        setter("symlog", linthresh=positive.min(), linscale=0.5)
        return "symlog"
    setter("log")
    return "log"


def _pick(settings: list[str], best: Sequence[str] = (), limit: int = MAX_CURVES) -> list[str]:
    """At most `limit` settings spread over the list, the `best` ones always among them."""
    if len(settings) <= limit:
        return settings
    keep = [b for b in best if b in settings]
    idx = np.unique(np.linspace(0, len(settings) - 1, max(limit - len(keep), 2)).round().astype(int))
    chosen = {settings[i] for i in idx} | set(keep)
    return [s for s in settings if s in chosen]


def _ordered_settings(f: Frames) -> list[str]:
    import pandas as pd

    order = f.runs.drop_duplicates("setting")
    if len(f.axes) == 1 and pd.api.types.is_numeric_dtype(f.runs[f.axes[0]]):
        order = order.sort_values(f.axes[0])
    return list(order["setting"])


def _ok(f: Frames) -> pd.DataFrame:
    """The `ok` runs of the settings that trained to the end (a search's pruned settings are
    drawn apart, never beside them)."""
    return f.runs[(f.runs["status"] == "ok") & ~f.runs["setting"].isin(_pruned(f))]


def _pruned(f: Frames) -> set[str]:
    return set(f.runs.loc[f.runs["status"] == "pruned", "setting"])


def _best_settings(f: Frames, metric: str | None = None) -> list[str]:
    """The best setting of each experiment (results directory) by a metric's mean."""
    ok = _ok(f)
    metric = metric or metric_of(ok)
    means = over_seeds(ok, ["experiment", "setting"], [metric])[(metric, "mean")].dropna()
    if means.empty:
        return []
    best = means.groupby(level=0).idxmax() if higher_is_better(metric) else means.groupby(level=0).idxmin()
    return [setting for _, setting in best]


def _legend_title(f: Frames, shown: int) -> str | None:
    total = f.runs["setting"].nunique()
    title = ", ".join(f.axes) or None
    return title if shown == total else f"{title}\n({shown} of {total} settings)"


def _no_runs(ax: Axes) -> Axes:
    """Says on the axes that there is nothing to draw: every run diverged or failed."""
    ax.text(0.5, 0.5, "no ok runs to draw (every run diverged or failed)", ha="center", va="center",
            transform=ax.transAxes, color="grey")
    return ax


def _legend(ax: Axes, title: str | None, legend: bool | str, styles: Sequence[tuple[str, dict]] = ()) -> None:
    """The legend of the settings, then an entry per style (`(label, Line2D kwargs)`, or a shaded
    band for `{"band": True}`): inside the axes (`True`, at matplotlib's best place), `"outside"`
    on their right, or none."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not legend:
        return
    handles, labels = ax.get_legend_handles_labels()
    for text, style in styles:
        handles.append(Patch(color="grey", alpha=0.3, lw=0) if style.get("band") else Line2D([], [], color="grey",
                                                                                              **style))
        labels.append(text)
    if handles:
        where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)} if legend == "outside" else {"loc": "best"}
        ax.legend(handles, labels, title=title, fontsize="small", title_fontsize="small", framealpha=0.8, **where)


def _readable_log(ax: Axes) -> None:
    """Plain tick labels (0.15, 0.2, ...) on a log axis that spans less than a decade, where
    matplotlib would write 1.5x10^-1 or nothing at all."""
    from matplotlib import ticker

    plain = ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        lo, hi = sorted(limits)
        if axis.get_scale() == "log" and lo > 0 and hi / lo < 10:
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)


# -- the plots ------------------------------------------------------------------------------
def _loss_columns(history: pd.DataFrame) -> tuple[str, str, str]:
    """The validation and training loss columns a history has values of, and the axis label:
    the honest data losses, or (runs imported from Keras's CSVLogger files) Keras's own."""
    if "val_data_loss" in history and history["val_data_loss"].notna().any():
        return "val_data_loss", "train_data_loss", "data loss (no penalty)"
    return "val_loss", "loss", "loss as Keras reports it (with the penalty)"
