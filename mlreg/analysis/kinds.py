"""Which kind of regularization? From `runs.csv` alone (pandas, no TensorFlow).

For a sweep over several kinds (`mlreg.spec.KINDS`: L1, L2, weight decay, dropout, noise, label
smoothing, max-norm, augmentation, ...): each kind's best setting with every other kind at none,
its paired difference to the setting without any (the *baseline*: every kind at none) with a
95% interval, the best combination of kinds and its difference to the best kind alone, and one
sentence that answers the question. Other swept parameters (a learning rate, say) are held at
the values of the best setting overall; named variants are read as the kinds' settings they
set (an experiment that tries each kind alone, one variant each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlreg.analysis.compare import as_list, combined_runs, compare, pairing
from mlreg.analysis.frames import LABELS, set_param_scale
from mlreg.records import higher_is_better
from mlreg.spec import KINDS, InputError, label
from mlreg.stats import paired_test, t975

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from mlreg.analysis.results import Results


def kinds(results: Results | Sequence[Results], *, metric: str | None = None) -> pd.DataFrame:
    """Each swept kind of regularization against none, and the best combination.

    Args:
        results: one results directory (`mlreg.load_results`).
        metric: a `runs.csv` column, as `compare` takes it. Defaults to `compare`'s.

    Returns:
        One row per kind, best first (`kind`, `setting`, `n`, `mean`, `diff`, `ci_low`,
        `ci_high`, `p`, `verdict` against the baseline), then `combination` (the best setting
        with two kinds or more, with `vs_best_diff`, `vs_best_low`, `vs_best_high` against the
        best kind alone). `attrs`: `metric`, `baseline`, `held` (the other parameters' values),
        `reference` (the words that say which setting serves as none where no setting has every
        kind at none, else empty), `sentence`.

    Raises:
        InputError: several directories, no kind swept, or no setting without any kind and
            several equally close to it.
    """
    import pandas as pd

    if len(as_list(results)) != 1:
        raise InputError("Invalid value for `kinds`: it answers for one results directory; give one")
    runs, by = combined_runs(results)
    swept = [p for p in by if p in KINDS]
    if not swept:
        raise InputError(f"Invalid value for `kinds`: no kind of regularization is swept here (the kinds: "
                         f"{', '.join(KINDS)}). Received: swept {by}")
    ranked = compare(results, metric=metric)
    metric = ranked.attrs["metric"]
    held = {p: ranked.iloc[0][p] for p in by if p not in KINDS and p != "variant"}  # a variant is kinds' settings
    none = {k: KINDS[k].none for k in swept}
    reference = _reference(ranked, swept, none, held)
    baseline = {**none, **held}
    table = compare(results, metric=metric, baseline={k: str(v) for k, v in baseline.items()})
    for p, v in held.items():
        table = table[table[p] == v]

    def at_none(row: Any, but: Sequence[str] = ()) -> bool:
        return all(_is_none(row[k], none[k]) for k in swept if k not in but)

    rows = []
    for k in swept:
        alone = table[[at_none(r, [k]) and not _is_none(r[k], none[k]) for _, r in table.iterrows()]]
        alone = alone[alone["n"] > 0]
        if not alone.empty:
            best = alone.sort_values("rank").iloc[0]
            rows.append({"kind": KINDS[k].label, "setting": f"{k}={label(best[k])}", **_against(best)})
    out = pd.DataFrame(rows).sort_values("mean", ascending=not higher_is_better(metric)) if rows else \
        pd.DataFrame(columns=["kind", "setting"])
    combos = table[[sum(not _is_none(r[k], none[k]) for k in swept) >= 2 and r["n"] > 0 for _, r in table.iterrows()]]
    if not combos.empty and rows:
        best = combos.sort_values("rank").iloc[0]
        first = out.iloc[0]
        name = ", ".join(f"{k}={label(best[k])}" for k in swept if not _is_none(best[k], none[k]))
        versus = _paired(runs, {**held, **{k: best[k] for k in swept}},
                         {**held, **{k: none[k] for k in swept}, **_setting(first["setting"])}, metric)
        combo = {"kind": "combination", "setting": name, **_against(best),
                 "vs_best_diff": versus[0], "vs_best_low": versus[1], "vs_best_high": versus[2]}
        out = pd.concat([out, pd.DataFrame([combo])], ignore_index=True)
    out = out.reset_index(drop=True)
    said = sentence(out, ", ".join(f"{k}={label(v)}" for k, v in held.items()), higher=higher_is_better(metric))
    out.attrs |= {"metric": metric, "held": held, "reference": reference,
                  "baseline": ", ".join(f"{k}={label(v)}" for k, v in baseline.items()),
                  "sentence": f"{said} {reference}" if reference else said}
    return out


def _reference(ranked: pd.DataFrame, swept: Sequence[str], none: dict[str, Any], held: dict[str, Any]) -> str:
    """Where no setting has every kind at none (AdamW decays at 0.004 unless told otherwise, so
    an AdamW sweep's plainest setting has weight decay), the setting closest to it serves as none:
    of those with the fewest kinds on, the one at the least value of every kind; `none` takes its
    values (changed in place), and the words that say so are returned (empty where a setting of
    none exists).

    Raises:
        InputError: no such setting, or several equally close."""
    rows = ranked[[all(r[p] == v for p, v in held.items()) and r["n"] > 0 for _, r in ranked.iterrows()]]
    on = {i: [k for k in swept if not _is_none(r[k], none[k])] for i, r in rows.iterrows()}
    fewest = min((len(v) for v in on.values()), default=0)
    if fewest == 0:
        return ""
    closest = [i for i, v in on.items() if len(v) == fewest]
    closest = [i for i in closest
               if all(float(rows.loc[i, k]) <= float(rows.loc[j, k]) for j in closest for k in swept)]
    if len(closest) != 1:  # none or several least in every kind
        plain = ", ".join(f"{k}={label(v)}" for k, v in none.items())
        raise InputError(f"Invalid value for `kinds`: no setting has every kind at none, nor one closest to it (the "
                         f"fewest kinds on, each at its least); add a setting with {plain}"
                         f" (a variant named none) to compare with")
    row = rows.loc[closest[0]]
    for k in on[closest[0]]:
        none[k] = row[k]
    default = " (AdamW's default decay)" if "weight_decay" in on[closest[0]] else ""
    return (f"No setting has every kind at none: {', '.join(f'{k}={label(row[k])}' for k in on[closest[0]])}"
            f"{default} serves as none.")


def _is_none(value: Any, none: Any) -> bool:
    return bool(value == none) if not isinstance(none, bool) else str(value).lower() == str(none).lower()


def _setting(text: str) -> dict[str, Any]:
    key, _, value = text.partition("=")
    try:
        return {key: float(value)}
    except ValueError:
        return {key: value == "True"}


def _against(row: Any) -> dict[str, Any]:
    return {c: row[c] for c in ("n", "mean", "diff", "ci_low", "ci_high", "p", "verdict")}


def _paired(runs: pd.DataFrame, a: dict[str, Any], b: dict[str, Any], metric: str) -> tuple[float, float, float]:
    """The paired difference of setting `a` to `b` over their shared seeds (and splits, draws)."""
    ok = runs[runs["status"] == "ok"]
    on, ratio = pairing(ok)

    def of(setting: dict[str, Any]) -> pd.Series:
        mask = True
        for k, v in setting.items():
            mask = mask & (ok[k].astype(str).str.lower() == str(v).lower() if isinstance(v, bool) else ok[k] == v)
        return ok[mask].groupby(on)[metric].mean()

    diff, low, high, _ = paired_test((of(a) - of(b)).dropna(), ratio)
    return diff, low, high


def _interval(diff: float, low: float, high: float) -> str:
    return f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]"


def sentence(table: pd.DataFrame, held: str = "", *, higher: bool = False) -> str:
    """The answer in one sentence, with its intervals (see `kinds`); `higher`: the metric is
    better higher (an accuracy), so a combination beats the best kind when its interval against
    it lies above zero."""
    alone = table[table["kind"] != "combination"]
    if alone.empty:
        return "No kind of regularization has a run without the others to compare with none."
    first = alone.iloc[0]
    at = f" (at {held})" if held else ""
    combo = table[table["kind"] == "combination"]
    if not combo.empty:
        c = combo.iloc[0]
        beats = c["vs_best_low"] > 0 if higher else c["vs_best_high"] < 0  # False where no interval (NaN)
        if beats and c["verdict"] == "better":
            return (f"{c['setting']} together beat each kind alone{at}: "
                    f"{_interval(c['vs_best_diff'], c['vs_best_low'], c['vs_best_high'])} against the best alone "
                    f"({first['kind']}, {first['setting']}), {_interval(c['diff'], c['ci_low'], c['ci_high'])} "
                    f"against none (95% paired intervals).")
    if first["verdict"] == "better":
        rest = f"; next: {alone.iloc[1]['kind']} ({alone.iloc[1]['setting']}, " \
               f"{_interval(alone.iloc[1]['diff'], alone.iloc[1]['ci_low'], alone.iloc[1]['ci_high'])})" \
            if len(alone) > 1 else ""
        together = "; no combination beats it beyond its interval" if not combo.empty else ""
        return (f"{first['kind'].capitalize()} is the best kind{at}: {first['setting']}, "
                f"{_interval(first['diff'], first['ci_low'], first['ci_high'])} against none{rest}{together} "
                f"(95% paired intervals).")
    return (f"No kind beats none beyond its interval{at}: the best, {first['kind']} ({first['setting']}), is "
            f"{_interval(first['diff'], first['ci_low'], first['ci_high'])} against none (95% paired interval).")


def format_kinds(table: pd.DataFrame) -> str:
    """`mlreg compare --kinds`'s text: the table, the baseline, and the sentence."""
    shown = table.copy()
    for col in ("mean", "diff", "ci_low", "ci_high", "p", "vs_best_diff", "vs_best_low", "vs_best_high"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: "" if v != v else f"{v:.4g}")
    shown = shown.rename(columns={"mean": f"mean {table.attrs['metric']}"})
    held = ", ".join(f"{k}={label(v)}" for k, v in table.attrs["held"].items())
    return (shown.to_string(index=False) + f"\nagainst none: {table.attrs['baseline']}"
            + (f" (other parameters held at the best setting's: {held})" if held else "")
            + f"\n{table.attrs['sentence']}")


def curves(results: Results | Sequence[Results], *, metric: str | None = None) -> dict[str, Any]:
    """What the `kinds` plot draws: for each swept kind, its runs with every other kind at none
    (and the other parameters held as `kinds` holds them), by the kind's value; the baseline's
    mean and 95% interval of the mean; each kind's best value.

    Returns:
        `{"metric", "baseline": (mean, half width), "kinds": {param: (runs frame, best value)}}`.
    """
    import pandas as pd

    table = kinds(results, metric=metric)
    metric = table.attrs["metric"]
    runs, by = combined_runs(results)
    swept = [p for p in by if p in KINDS]
    none = {k: KINDS[k].none for k in swept}
    ok = runs[runs["status"] == "ok"]
    for p, v in table.attrs["held"].items():
        ok = ok[ok[p] == v]
    base = ok[[all(_is_none(r[k], none[k]) for k in swept) for _, r in ok.iterrows()]][metric].dropna()
    half = float(t975(len(base) - 1) * base.std(ddof=1) / len(base) ** 0.5) if len(base) > 1 else float("nan")
    best = {_setting(s).popitem()[0]: _setting(s) for s in table.loc[table["kind"] != "combination", "setting"]}
    out: dict[str, Any] = {}
    for k in swept:
        mine = ok[[all(_is_none(r[j], none[j]) for j in swept if j != k) for _, r in ok.iterrows()]]
        out[k] = (pd.DataFrame({"value": mine[k], "metric": mine[metric]}).dropna(), best.get(k, {}).get(k))
    return {"metric": metric, "baseline": (float(base.mean()), half), "kinds": out}


KIND_COLUMNS = 3
"""Panels in a row of the kinds figure: wider than a notebook's or the report's column past it."""


def kinds_curves(
    results: Results | Sequence[Results],
    *,
    metric: str | None = None,
    axes: Sequence[Axes] | None = None,
    legend: bool | str = True,
    **line_kw: Any,
) -> Sequence[Axes]:
    """Each swept kind of regularization's validation curve, a panel each against its own axis
    (the other kinds at none): mean ± std over seeds, each run a dot, the kind's best value a
    star; the setting without any kind as a grey band (its mean and 95% interval) in every panel.

    Args:
        results: one `Results`.
        metric: a `runs.csv` column. Defaults to `compare`'s.
        axes: one `Axes` per swept kind. Defaults to a new figure with the panels in rows of
            `KIND_COLUMNS`.
        legend: in the first panel (`True`), `"outside"` on its right, or `False`. Defaults to `True`.
        **line_kw: passed to the curves.

    Returns:
        The axes, one per kind (`mlreg.analysis.kinds.curves` computes what they show).
    """
    import pandas as pd

    drawn = curves(results, metric=metric)
    swept = list(drawn["kinds"])
    if axes is None:
        import matplotlib.pyplot as plt

        cols = min(len(swept), KIND_COLUMNS)  # wrapped: seven in a row were 2808 px wide (issue 35.8)
        rows = -(-len(swept) // cols)
        fig, grid = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.6, 3.0 * rows + 0.8), sharey=True,
                                 layout="constrained", squeeze=False)
        axes = list(grid.flat[: len(swept)])
        for ax in grid.flat[len(swept):]:
            fig.delaxes(ax)
    mean, half = drawn["baseline"]
    for i, (ax, k) in enumerate(zip(axes, swept, strict=True)):
        part, best = drawn["kinds"][k]
        ax.axhspan(mean - half, mean + half, color="0.85", lw=0, label="none (mean, 95% interval)")
        ax.axhline(mean, color="0.5", lw=0.8)
        numeric = pd.api.types.is_numeric_dtype(part["value"]) and not pd.api.types.is_bool_dtype(part["value"])
        x = part["value"] if numeric else part["value"].astype(str).map({"False": 0, "True": 1})
        stats = part.assign(x=x).groupby("x")["metric"].agg(["mean", "std"]).sort_index()
        (line,) = ax.plot(stats.index, stats["mean"], "o-", ms=4, lw=1.6, **({"color": f"C{i}"} | line_kw))
        ax.fill_between(stats.index, stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                        color=line.get_color(), alpha=0.15, lw=0)
        ax.scatter(x, part["metric"], s=8, color=line.get_color(), alpha=0.5, lw=0)
        if best is not None:
            bx = best if numeric else int(bool(best))
            ax.plot([bx], [stats.loc[bx, "mean"]], "*", ms=13, color=line.get_color(), mec="k", mew=0.6,
                    label="its best")
        if numeric:
            set_param_scale(ax, stats.index)
            if len(stats) <= 6:  # few values: each its own tick, as the grid wrote it
                ax.set_xticks(list(stats.index), [label(float(v)) for v in stats.index])
                ax.minorticks_off()
        else:
            ax.set_xticks([0, 1], ["off", "on"])
        ax.set_xlabel(k)
        ax.set_title(KINDS[k].label, fontsize="medium")
        if i % KIND_COLUMNS == 0:
            ax.set_ylabel(LABELS.get(drawn["metric"], drawn["metric"]).replace("validation ", ""))
    if legend == "outside":
        axes[0].figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
                              frameon=False, fontsize="small")
    elif legend:
        axes[0].legend(loc="best", fontsize="small", frameon=False)
    return axes
