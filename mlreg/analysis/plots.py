"""Comparison plots from saved results (matplotlib + pandas, no TensorFlow or JAX).

Each function takes results (one `Results`, or a list of them) and an optional `ax`, draws
what `mlreg.analysis.aggregate.over_seeds` computes (means and spreads over seeds), and returns
the `Axes`. Nothing here shows or saves a figure: that is the CLI's job (`mlreg plot`). One
colour per setting in every plot; legends inside the axes they describe (`legend="outside"`
puts them on the right, as `mlreg plot` does for its own figures); `**line_kw` goes to the
main lines. Runs imported from Keras's CSVLogger files, which lack the honest columns, are
drawn with the columns they have (`val_loss`, the validation metric), and the labels say so.

Example:
    >>> res = mlreg.load_results("results/l2_rate")  # doctest: +SKIP
    >>> ax = validation_curve(res, param="l2")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlreg.analysis.aggregate import over_seeds
from mlreg.analysis.compare import as_list, combined_runs, metric_of
from mlreg.analysis.frames import (
    LABELS,
    MAX_CURVES,
    Frames,
    _ax,
    _best_settings,
    _join,
    _legend,
    _legend_title,
    _loss_columns,
    _no_runs,
    _ok,
    _ordered_settings,
    _pick,
    _pruned,
    _readable_log,
    frames,
    set_param_scale,
)
from mlreg.analysis.kinds import kinds_curves
from mlreg.spec import KINDS, InputError, label

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from mlreg.analysis.results import Results

__all__ = ["MAX_CURVES", "PLOTS", "Plot", "caption", "figures", "frames", "generalization_gap", "kinds_curves",
           "extrapolation", "loss_curves", "metric_against", "set_param_scale", "stopping_epoch", "validation_curve",
           "weight_histograms", "weight_stat"]


def __dir__() -> list[str]:
    return __all__


def loss_curves(
    results: Results | Sequence[Results],
    *,
    by: Sequence[str] | None = None,
    ax: Axes | None = None,
    max_settings: int = MAX_CURVES,
    legend: bool | str = True,
    **line_kw: Any,
) -> Axes:
    """Validation (solid) and training (dashed) data loss against epoch, per setting.

    The lines are the mean over seeds (over the runs still training at that epoch), drawn
    while at least half of a setting's runs still train (early-stopped runs leave the mean,
    which would jump when few are left), the band is ± one standard deviation of the
    validation loss, and a dot marks the restored best epoch (the median over seeds) on the
    validation line.

    Args:
        results: one `Results` or a list.
        by: the columns that define a setting. Defaults to the swept parameters.
        ax: where to draw. Defaults to a new figure.
        max_settings: draw at most this many settings. Defaults to `MAX_CURVES`.
        legend: inside the axes (`True`), `"outside"` on their right, or `False`. Defaults to `True`.
        **line_kw: passed to the validation lines (`lw`, `alpha`, ...).

    Returns:
        The `Axes`.
    """
    from matplotlib import ticker

    f = frames(results, by)
    ax = _ax(ax)
    ok_runs, pruned = _ok(f), _pruned(f)
    drawn = f.runs[f.runs["run_id"].isin(ok_runs["run_id"]) | (f.runs["status"] == "pruned")]
    hist = f.history[f.history["run_id"].isin(drawn["run_id"])]
    val_col, train_col, ylabel = _loss_columns(hist)
    if hist.empty or hist[val_col].isna().all():
        return _no_runs(ax)
    present = set(hist["setting"].unique())
    settings = _pick([s for s in _ordered_settings(f) if s in present], _best_settings(f), max_settings)
    stats = over_seeds(hist, ["setting", "epoch"], [val_col, train_col], ("count", "mean", "std"))
    best_epochs = over_seeds(ok_runs, ["setting"], ["best_epoch"], ("median",))[("best_epoch", "median")]
    runs_of = hist.groupby("setting")["run_id"].nunique()
    for s in settings:
        st = stats.loc[s].sort_index()
        st = st[2 * st[(val_col, "count")] >= runs_of[s]]  # while half of its runs or more still train
        epochs, color = st.index.to_numpy(), f.colors[s]
        val, sd = st[(val_col, "mean")].to_numpy(), st[(val_col, "std")].fillna(0).to_numpy()
        if s in pruned:  # up to its rung, dotted, without band
            ax.plot(epochs, val, **{"color": color, "lw": 1.0, "ls": ":", "label": f"{s} (pruned)"} | line_kw)
            continue
        ax.plot(epochs, val, **{"color": color, "lw": 1.6, "label": s} | line_kw)
        ax.fill_between(epochs, val - sd, val + sd, color=color, alpha=0.15, lw=0)
        ax.plot(epochs, st[(train_col, "mean")].to_numpy(), color=color, lw=1.2, ls="--")
        best = best_epochs.get(s)
        if best == best and int(best) in st.index:
            ax.plot([int(best)], [st.loc[int(best), (val_col, "mean")]], "o", color=color, ms=5, mec="black",
                    mew=0.6)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title("Loss per epoch, mean over seeds", fontsize="medium")
    styles = [("validation (band: ±1 std)", {"lw": 1.6}), ("training", {"lw": 1.2, "ls": "--"}),
              ("best epoch (median)", {"ls": "none", "marker": "o", "mec": "black", "mew": 0.6})]
    _legend(ax, _legend_title(f, len(settings)), legend, styles)
    _readable_log(ax)
    return ax


def _param_values(f: Frames, param: str) -> tuple[pd.Series, bool]:
    import pandas as pd

    if param not in f.runs:
        raise InputError(f"Invalid value for `param`: no column {param!r} in runs.csv. Received: param={param!r}")
    col = f.runs[param]
    # a swept boolean (`early_stopping`) is a category, not a 0-1 axis
    return col, bool(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))


def _against_param(
    f: Frames, param: str, metrics: list[tuple[str, str, str]], ax: Axes, *, legend: bool | str = True,
    line_kw: dict[str, Any] | None = None,
) -> Axes:
    """Draws mean ± std over seeds of metrics (column, label, line style) against a parameter,
    each run a dot; one line per value of a second swept parameter. The first metric is drawn
    in full; the others (a training counterpart) as a thin line without band or dots, so that
    the two can cross without hiding each other."""
    col, numeric = _param_values(f, param)
    col = col.dropna()  # runs of another directory, without this parameter
    ok = _ok(f)
    ok = ok[ok[param].notna()].copy()
    metrics = [m for m in metrics if m[0] in ok and ok[m[0]].notna().any()]
    if ok.empty or not metrics:
        return _no_runs(ax)
    if not numeric:
        cats = list(dict.fromkeys(col))
        ok["_x"] = ok[param].map({c: i for i, c in enumerate(cats)})
        crowded = len(cats) > 4
        ax.set_xticks(range(len(cats)), [label(c) for c in cats], rotation=30 if crowded else 0,
                      ha="right" if crowded else "center")
    else:
        ok["_x"] = ok[param]
    others = [b for b in f.axes if b != param and ok[b].notna().any()]
    groups = list(ok.groupby(others, sort=True, dropna=False)) if others else [((), ok)]
    keep = set(_pick([str(k) for k, _ in groups]))  # at most MAX_CURVES values of the others
    for key, part in groups:
        if str(key) not in keep:
            continue
        key = key if isinstance(key, tuple) else (key,)
        group_label = _join(zip(others, key, strict=True))
        color = f.colors.get(part["setting"].iloc[0]) if not others else None
        stats = over_seeds(part, ["_x"], [m for m, _, _ in metrics]).sort_index()
        x = stats.index.to_numpy(dtype=float)
        for i, (metric, text, style) in enumerate(metrics):
            mean, sd = stats[(metric, "mean")], stats[(metric, "std")].fillna(0)
            name = (group_label if i == 0 else None) if group_label else text
            main = i == 0
            if numeric and main:  # a line over an ordered axis, with a ±std band kept within the runs' range
                kw = {"color": color, "marker": "o", "ms": 4, "lw": 1.6, "label": name} | (line_kw or {})
                (line,) = ax.plot(x, mean, style, **kw)
                low = np.maximum(mean - sd, stats[(metric, "min")])
                high = np.minimum(mean + sd, stats[(metric, "max")])
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
                ax.scatter(part["_x"], part[metric], s=8, color=line.get_color(), alpha=0.5, lw=0)
            elif numeric:
                (line,) = ax.plot(x, mean, style, color=color, lw=1.0, alpha=0.8, label=name)
            else:  # categories have no order: points with error bars, the training ones hollow
                line = ax.errorbar(x, mean, yerr=sd, fmt="o", ls="none", capsize=3, color=color,
                                   mfc=None if main else "white", label=name).lines[0]
                if main:
                    ax.scatter(part["_x"], part[metric], s=8, color=line.get_color(), alpha=0.5, lw=0)
            color = line.get_color()
    if numeric:
        set_param_scale(ax, col.dropna().unique())
    ax.set_xlabel(param)
    shown = len(keep) if others else 0
    title = (", ".join(others) + (f" ({shown} of {len(groups)})" if shown < len(groups) else "")) if others else None
    spread = ("band: ±1 std over seeds (within their range)", {"band": True}) if numeric else \
        ("bars: ±1 std over seeds", {"marker": "|", "ls": "none", "ms": 8})
    _legend(ax, title, legend, [spread, ("dots: one run each", {"ls": "none", "marker": "o", "ms": 3, "alpha": 0.5})])
    _readable_log(ax)
    return ax


def validation_curve(
    results: Results | Sequence[Results] | pd.DataFrame,
    *,
    param: str | None = None,
    metric: str | None = None,
    train_metric: str | None = None,
    ax: Axes | None = None,
    legend: bool | str = True,
    **line_kw: Any,
) -> Axes:
    """The metric at the best epoch against a swept parameter: validation (solid, with a band
    of ± one std over seeds kept within the runs' range, each run a dot) and training (a thin
    dashed line). A log x axis when the values span a decade or more, symlog when 0 is among
    them. With a second swept parameter, one pair of lines per value of it.

    Args:
        results: one `Results` or a list, or the frame `mlreg.validation_curve` returns.
        param: the parameter on the x axis, e.g. `"l2"`. Defaults to the frame's parameter.
        metric: a `runs.csv` column. Defaults to `best_val_data_loss`, or the validation metric
            for runs without it (imported from Keras's CSVLogger files).
        train_metric: its training counterpart. Defaults to the matching `train_*` column.
        ax: where to draw. Defaults to a new figure.
        legend: inside the axes (`True`), `"outside"` on their right, or `False`. Defaults to `True`.
        **line_kw: passed to the validation lines.

    Returns:
        The `Axes`.
    """
    import pandas as pd

    if isinstance(results, pd.DataFrame):  # mlreg.validation_curve's frame: the sweep behind it
        param, results = param or str(results.columns[0]), results.attrs["results"]
    if param is None:
        raise TypeError("validation_curve() needs `param`, the swept parameter on the x axis")
    f = frames(results)
    ax = _ax(ax)
    metric = metric or metric_of(_ok(f))
    if train_metric is None:
        guess = {"best_val_data_loss": "train_data_loss_at_best"}.get(metric, metric.replace("val_", "train_", 1))
        train_metric = guess if guess in f.runs and guess != metric and f.runs[guess].notna().any() else None
    lines = [(metric, "validation", "-")] + ([(train_metric, "training", "--")] if train_metric else [])
    _against_param(f, param, lines, ax, legend=legend, line_kw=line_kw)
    ax.set_ylabel(LABELS.get(metric, metric).replace("validation ", ""))
    if "loss" in metric:
        ax.set_yscale("log")
        _readable_log(ax)
    ax.set_title(f"{LABELS.get(metric, metric).capitalize()}, against {param}", fontsize="medium")
    return ax


def metric_against(
    results: Results | Sequence[Results], *, param: str, metric: str, title: str | None = None,
    ax: Axes | None = None, legend: bool | str = True, **line_kw: Any,
) -> Axes:
    """Any `runs.csv` column against a parameter: mean ± std over seeds, each run a dot."""
    ax = _against_param(frames(results), param, [(metric, "", "-")], _ax(ax), legend=legend, line_kw=line_kw)
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(title or f"{metric} against {param}", fontsize="medium")
    return ax


def generalization_gap(results: Results | Sequence[Results], *, param: str, ax: Axes | None = None,
                       legend: bool | str = True, **line_kw: Any) -> Axes:
    """The gap `val_data_loss - train_data_loss` at the best epoch against a parameter."""
    ax = metric_against(results, param=param, metric="gap", title=f"Generalization gap against {param}", ax=ax,
                        legend=legend, **line_kw)
    ax.axhline(0, color="grey", lw=0.8)
    return ax


def weight_stat(
    results: Results | Sequence[Results], *, param: str, stat: str = "sparsity", ax: Axes | None = None,
    legend: bool | str = True, **line_kw: Any,
) -> Axes:
    """A final-weight statistic (`sparsity`, `weight_l2` or `weight_l1`) against a parameter."""
    ax = metric_against(results, param=param, metric=stat, ax=ax, legend=legend, **line_kw)
    if stat in ("weight_l2", "weight_l1"):
        ax.set_yscale("log")
        _readable_log(ax)
    return ax


def extrapolation(results: Results, *, ax: Axes | None = None, legend: bool | str = True) -> Axes:
    """An extrapolating search (`[search] strategy = "extrapolate"`): the best rate at each subset
    of the training set against its size, on log axes; the power law fitted to them and its
    prediction for all the data with the bootstrap's 95% interval; the rates trained at the full
    size, and the confirmed best among them (a star).

    Raises:
        InputError: the results hold no extrapolating search's answer.
    """
    answer = (results.answer or {}).get("extrapolation")
    if not answer:
        raise InputError(f"Invalid value for `results`: {results.root} holds no extrapolating search's answer "
                         "(`[search] strategy = \"extrapolate\"`)")
    ax = _ax(ax)
    param, fractions, fit = answer["param"], np.asarray(answer["fractions"]), answer["fit"]
    full = float(results.runs.loc[results.runs.train_size == results.runs.train_size.max(), "n_train"].median())
    sizes = fractions * full
    best = np.asarray(answer["best_by_size"], dtype=float)
    shown = best > 0
    ax.plot(sizes[shown], best[shown], "o", color="C0", ms=7, label="best rate on a subset")
    if fit is not None:
        xs = np.geomspace(sizes.min() * 0.8, full * 1.25, 50)
        ax.plot(xs, fit["prediction"] * (xs / full) ** fit["slope"], "-", color="C0", lw=1.2,
                label=f"power law, slope {fit['slope']:.2f}")
        low, high = fit["interval"]
        ax.errorbar([full], [fit["prediction"]], yerr=[[fit["prediction"] - low], [high - fit["prediction"]]], fmt="s",
                    color="C1", capsize=5, ms=7, label=f"predicted {fit['prediction']:.3g} (95% interval)")
    trained = np.asarray(answer["trained"], dtype=float)
    ax.plot([full] * int((trained > 0).sum()), trained[trained > 0], "_", color="0.4", ms=14, mew=1.5,
            label="trained at the full size")
    if answer["confirmed"] > 0:
        ax.plot([full], [answer["confirmed"]], "*", color="C3", ms=16, mec="k", mew=0.6,
                label=f"confirmed best {label(answer['confirmed'])}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([*sizes, full], [f"{v:,.0f}" for v in [*sizes, full]])
    ax.minorticks_off()
    ax.set_xlabel("training samples")
    ax.set_ylabel(f"best {param}")
    _legend(ax, None, legend)
    return ax


def stopping_epoch(results: Results | Sequence[Results], *, param: str, ax: Axes | None = None,
                   legend: bool | str = True, **line_kw: Any) -> Axes:
    """The number of epochs trained (where early stopping stopped) against a parameter."""
    ax = metric_against(results, param=param, metric="epochs_run", ax=ax, legend=legend,
                        title=f"Epochs trained against {param}", **line_kw)
    ax.set_ylim(bottom=0)
    return ax


def weight_histograms(
    results: Results | Sequence[Results],
    *,
    by: Sequence[str] | None = None,
    layer: str | None = None,
    ax: Axes | None = None,
    max_settings: int = MAX_CURVES,
    legend: bool | str = True,
    **line_kw: Any,
) -> Axes:
    """Histograms of the final kernel weights per setting (all seeds and layers pooled,
    or one `layer`), as densities on a log y axis: the L1 spike at zero against the L2 bell.

    Returns:
        The `Axes`.
    """
    f = frames(results, by)
    ax = _ax(ax)
    w = f.weights if layer is None else f.weights[f.weights["layer"] == layer]
    w = w[np.isfinite(w["bin_left"]) & np.isfinite(w["bin_right"])]  # the overflow bins are not drawn
    if w.empty:
        return _no_runs(ax)
    present = set(w["setting"].unique())
    settings = _pick([s for s in _ordered_settings(f) if s in present], _best_settings(f), max_settings)
    counts = w.groupby(["setting", "bin_left"])["count"].sum()
    totals = f.weights.groupby("setting")["count"].sum()
    grid = np.unique(np.concatenate([w["bin_left"], w["bin_right"]]))  # the fixed bins (only non-empty are stored)
    for s in settings:
        per_bin = counts.loc[s].reindex(grid[:-1], fill_value=0).to_numpy()
        ax.stairs(per_bin / totals[s] / np.diff(grid), grid, **{"color": f.colors[s], "lw": 1.4, "label": s} | line_kw)
    ax.set_yscale("log")
    reach = float(np.abs(w.loc[w["count"] > 0, ["bin_left", "bin_right"]].to_numpy()).max())
    ax.set_xlim(-1.05 * reach, 1.05 * reach)
    ax.set_xlabel("final kernel weight" + (f" ({layer})" if layer else ""))
    ax.set_ylabel("density (log)")
    ax.set_title(f"Final kernel weights ({f'layer {layer}' if layer else 'all layers'}, all seeds)",
                 fontsize="medium")
    _legend(ax, ", ".join(f.axes) or None, legend)
    return ax


@dataclass(frozen=True)
class Plot:
    """One plot of `mlreg plot` (keyed by `mlreg.spec.PLOTS`): everything about it.

    Attributes:
        stem: its file's name, `{p}` for the kinds drawn once per swept parameter.
        draw: the plot function.
        kw: the function's keyword arguments.
        caption: what it shows, in words (`{p}`: the parameter's label), for the report.
        needs: a `runs.csv` column (or `weights`) it needs values of, else it is left out.
        panels: draws a row of panels (`axes=`) rather than one `ax`.
    """

    stem: str
    draw: Any
    caption: str
    kw: dict[str, str] = field(default_factory=dict)
    needs: str | None = None
    panels: bool = False


PLOTS: dict[str, Plot] = {
    "loss_curves": Plot("loss_curves", loss_curves,
                            "Training (dashed) and validation (solid) data loss per epoch, mean over seeds."),
    "validation_curve": Plot("validation_curve_{p}", validation_curve,
                                 "Best validation data loss (and the training loss at that epoch) against {p}: mean "
                                 "over seeds, the band ± one standard deviation, each run a dot."),
    "gap": Plot("gap_{p}", generalization_gap,
                    "Generalization gap (validation minus training data loss at the best epoch) against {p}.",
                    needs="gap"),
    "weights": Plot("weight_histograms", weight_histograms,
                        "Histograms of the final kernel weights per setting (all seeds and layers).", needs="weights"),
    "sparsity": Plot("sparsity_{p}", weight_stat,
                         "Fraction of final kernel weights below 1e-3 in size, against {p}.", {"stat": "sparsity"},
                         needs="sparsity"),
    "weight_l2": Plot("weight_l2_{p}", weight_stat, "Sum of squared final kernel weights against {p}.",
                          {"stat": "weight_l2"}, needs="weight_l2"),
    "stopping": Plot("stopping_epoch_{p}", stopping_epoch, "Epochs trained before early stopping stopped, "
                         "against {p}.", needs="epochs_run"),
    "kinds": Plot("kinds", kinds_curves,
                      "Each kind of regularization against its own axis, the other kinds at none: mean over seeds, "
                      "the band ± one standard deviation, each run a dot, the kind's best value a star; the grey "
                      "band is the setting without any (its mean and the 95% interval of that mean).", panels=True),
    "extrapolation": Plot("extrapolation", extrapolation,
                          "An extrapolating search: the best rate on each subset of the training set against its size "
                          "(log axes), the power law fitted to them and its prediction for all the data with the 95% "
                          "interval of a bootstrap over seeds, the rates trained at the full size and the confirmed "
                          "best (star).", needs="extrapolation"),
}


def caption(stem: str) -> str:
    """What a figure of `mlreg plot` shows, in words, from its file stem."""
    for kind in PLOTS.values():
        prefix = kind.stem.removesuffix("{p}")
        if stem == kind.stem or ("{p}" in kind.stem and stem.startswith(prefix)):
            param = stem.removeprefix(prefix)
            return kind.caption.format(p=LABELS.get(param, param))
    return stem


def figures(results: Results | Sequence[Results], kinds: Sequence[str] = PLOTS) -> dict[str, Any]:
    """Every figure of `mlreg plot` as `{file stem: Figure}`: one per kind, and per swept
    parameter for the kinds drawn against a parameter; a kind whose column has no values (the
    weights of runs imported from Keras's CSVLogger files) is left out."""
    import matplotlib.pyplot as plt

    unknown = [k for k in kinds if k not in PLOTS]
    if unknown:
        raise InputError(f"Invalid value for `kind`: expected some of {list(PLOTS)}. Received: kind={unknown}")
    f = frames(results)
    params = [p for p in f.axes if p != "experiment"] or (["experiment"] if "experiment" in f.axes else [])
    has = {c for c in f.runs if f.runs[c].notna().any()} | ({"weights"} if not f.weights.empty else set())
    one = as_list(results)[0] if len(as_list(results)) == 1 else None
    has |= {"extrapolation"} if one is not None and (one.answer or {}).get("extrapolation") else set()
    out: dict[str, Any] = {}
    for name in kinds:
        kind = PLOTS[name]
        if kind.needs is not None and kind.needs not in has:
            continue
        if kind.needs == "extrapolation":  # of one search's answer
            fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
            out[kind.stem] = kind.draw(one, ax=ax, legend="outside").figure
            continue
        if kind.panels:
            swept = [p for p in combined_runs(results)[1] if p in KINDS]  # variants' kinds too
            if len(swept) < 2 or len(as_list(results)) != 1:  # which kind: a question of two or more
                continue
            try:
                axes = kind.draw(results, legend="outside", **kind.kw)
            except InputError:  # no setting without any kind to compare with
                continue
            out[kind.stem] = axes[0].figure
            continue
        for p in params if "{p}" in kind.stem else [None]:
            fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
            kind.draw(f, ax=ax, legend="outside", **kind.kw, **({"param": p} if p else {}))
            out[kind.stem.format(p=p)] = fig
    return out
