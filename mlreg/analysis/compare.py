"""Compare settings over seeds, from `runs.csv` alone (pandas + numpy, no TensorFlow).

A *setting* is one combination of the swept parameters (and the experiment,
when several results directories are compared). Per setting: how many runs,
the mean, std, min and max of a metric over the `ok` runs, the mean gap and
best epoch, how many runs diverged or failed, and a rank. Against a baseline
setting: the mean paired difference over the seeds both share, with a 95%
Student-t interval and a plain verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlreg.analysis.aggregate import over_seeds
from mlreg.records import default_metric, higher_is_better
from mlreg.spec import ADJUSTMENTS, InputError
from mlreg.stats import holm, paired_test

if TYPE_CHECKING:
    import pandas as pd

    from mlreg.analysis.results import Results

ADJUST = {"none": None, "holm": holm}
"""How each adjustment of `mlreg.spec.ADJUSTMENTS` adjusts the p-values (`p_<name>`)."""


def as_list(results: Results | Sequence[Results]) -> list[Results]:
    return [results] if hasattr(results, "runs") else list(results)  # type: ignore[list-item]


def experiment_names(items: Sequence[Results]) -> list[str]:
    """One label per results directory: its experiment name, with the path when names repeat."""
    names = [r.name for r in items]
    return names if len(set(names)) == len(names) else [f"{r.name} ({r.root})" for r in items]


def combined_runs(results: Results | Sequence[Results]) -> tuple[pd.DataFrame, list[str]]:
    """The runs of one or several results directories in one frame, and the default
    grouping: the swept parameters (and `experiment` for several directories)."""
    import pandas as pd

    items = as_list(results)
    empty = [str(r.root) for r in items if r.runs.empty]
    if empty:
        raise InputError(f"{', '.join(empty)}: no runs recorded yet (runs.csv holds its header only); "
                         "run the experiment first")
    frames, params = [], []
    for res, name in zip(items, experiment_names(items), strict=True):
        frames.append(res.runs.assign(experiment=name))
        params += [p for p in res.params if p not in params]
    runs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    by = (["experiment"] if len(items) > 1 else []) + params
    return runs, by


def independent(runs: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """The grouping columns that vary on their own: those set by the named variants (constant
    within each variant) are implied by the variant's name and left out."""
    if "variant" not in by:
        return list(by)
    per_variant = runs.groupby("variant", dropna=False)
    return [p for p in by if p in ("variant", "experiment") or per_variant[p].nunique(dropna=False).max() > 1]


def parse_setting(text: str) -> dict[str, str]:
    """`"l2=0 dropout=0.5"` (or with commas) -> `{"l2": "0", "dropout": "0.5"}`; a word without
    `=` continues the value before it, so a variant's name may hold spaces
    (`"variant=L2 1e-3"`)."""
    out: dict[str, str] = {}
    key = None
    for part in text.replace(",", " ").split():
        name, sep, value = part.partition("=")
        if not sep and key is not None:
            out[key] += f" {part}"
            continue
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"Invalid value for `baseline`: expected 'param=value', several separated by spaces "
                             f"or commas (\"l2=0 dropout=0\"). Received: baseline={text!r}")
        key = name.strip()
        out[key] = value.strip()
    return out


def _matches(frame: pd.DataFrame, setting: dict[str, str]) -> pd.Series:
    import numpy as np
    import pandas as pd

    mask = pd.Series(True, index=frame.index)
    for key, value in setting.items():
        if key not in frame.columns:
            raise InputError(f"Invalid value for `baseline`: no column {key!r}. Received: baseline key {key!r}")
        col = frame[key]
        if pd.api.types.is_bool_dtype(col):  # early_stopping=false, as TOML writes it, or False
            if value.lower() not in ("true", "false"):
                raise InputError(f"Invalid value for `baseline`: {key} is true or false. Received: {key}={value!r}")
            mask &= col == (value.lower() == "true")
        elif pd.api.types.is_numeric_dtype(col):
            try:
                mask &= np.isclose(col.astype(float), float(value), rtol=1e-9, atol=0)
            except ValueError:
                raise InputError(f"Invalid value for `baseline`: {key} is numeric. "
                                 f"Received: {key}={value!r}") from None
        else:
            mask &= col.astype(str) == value
    return mask


def compare(
    results: Results | Sequence[Results],
    *,
    metric: str | None = None,
    by: Sequence[str] | None = None,
    baseline: str | dict[str, str] | None = None,
    adjust: str = "none",
) -> pd.DataFrame:
    """Ranks the settings of one or several results directories by a metric over seeds.

    Args:
        results: from `mlreg.load_results` (one, or a list to compare experiments).
        metric: any numeric `runs.csv` column. Lower is better, except for
            accuracy-like columns. Defaults to `best_val_data_loss`, or, for runs without it
            (imported from Keras's CSVLogger files), the validation metric at the best epoch
            (`records.default_metric`); `table.attrs["metric"]` says which.
        by: the columns that define a setting. Defaults to the swept parameters
            (and `experiment` when several directories are given).
        baseline: a setting such as `"l2=0"`: adds the mean paired difference to it
            over shared seeds (`diff`, its 95% interval `ci_low`, `ci_high`, and the
            paired t-test's `p`) and a `verdict` (`better`, `worse`, `inconclusive`, or
            `baseline`). Defaults to `None`.
        adjust: `"none"`, or `"holm"` to adjust the p-values for comparing several settings
            with the baseline (`p_holm`); the verdict then follows `p_holm < 0.05`. The
            intervals are never adjusted. Defaults to `"none"`.

    Returns:
        One row per setting, best first: the `by` columns, `n`, `mean`, `std`,
        `min`, `max`, `gap`, `best_epoch`, `diverged`, `failed`, `rank`, `best`
        (`"*"` on the best), and the baseline columns when asked.

    Raises:
        ValueError: an unknown metric, grouping column or baseline.

    Example:
        >>> table = compare(load_results("results/l2_rate"), baseline="l2=0")  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    runs, default_by = combined_runs(results)
    by = list(by) if by else default_by
    metric = metric or metric_of(runs)
    if metric not in runs.columns or not pd.api.types.is_numeric_dtype(runs[metric].dropna()):
        numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
        raise InputError(f"Invalid value for `metric`: not a numeric column of runs.csv (try one of "
                         f"{numeric}). Received: metric={metric!r}")
    for col in by:
        if col not in runs.columns:
            raise InputError(f"Invalid value for `by`: no column {col!r} in runs.csv. Received: by={list(by)}")
    if not by:
        runs = runs.assign(setting="all")
        by = ["setting"]
    at = next((runs[c] for c in ("pruned_at", "epochs_run") if c in runs), pd.Series(np.nan, index=runs.index))
    pruned_at = runs.assign(_at=at)[runs["status"] == "pruned"].groupby(by, sort=False, dropna=False)["_at"].min()
    pruned = runs.set_index(by).index.isin(pruned_at.index)  # a search stopped these settings at a rung
    ok = runs[(runs["status"] == "ok") & ~pruned]  # never ranked against settings trained to the end
    keys = runs[by].drop_duplicates().reset_index(drop=True)
    agg = over_seeds(ok, by, list(dict.fromkeys([metric, "gap", "best_epoch"])))  # --metric gap: once
    stats = pd.DataFrame({"n": agg[(metric, "count")], "mean": agg[(metric, "mean")], "std": agg[(metric, "std")],
                          "min": agg[(metric, "min")], "max": agg[(metric, "max")], "gap": agg[("gap", "mean")],
                          "best_epoch": agg[("best_epoch", "mean")]})
    status = runs.groupby(by, sort=False, dropna=False)["status"]
    counted = pd.DataFrame({
        "diverged": status.apply(lambda s: int((s == "diverged").sum())),
        "failed": status.apply(lambda s: int((s == "failed").sum())),
        "_ok": status.apply(lambda s: int((s == "ok").sum())),  # for the display only (`mark_empty`)
        "_pruned_at": pruned_at.reindex(status.size().index),
    })
    table = keys.merge(stats.reset_index(), on=by, how="left").merge(counted.reset_index(), on=by, how="left")
    table["n"] = table["n"].fillna(0).astype(int)
    ascending = not higher_is_better(metric)
    # settings without an ok run (all diverged or failed) are shown, ranked last
    table["rank"] = table["mean"].rank(ascending=ascending, method="min", na_option="bottom").astype("Int64")
    table.loc[table["_pruned_at"].notna() & (table["n"] == 0), "rank"] = pd.NA  # a search stopped it: no rank
    table["best"] = np.where((table["rank"] == 1).fillna(False) & (table["n"] > 0), "*", "")
    if adjust not in ADJUST:
        raise InputError(f"Invalid value for `adjust`: expected one of {list(ADJUSTMENTS)}. "
                         f"Received: adjust={adjust!r}")
    if baseline is not None:
        hashes = {r.name: r.manifest.get("data_hash") for r in as_list(results)}
        if len(set(hashes.values())) > 1:
            raise InputError(f"Invalid value for `baseline`: these results were trained on different data (data "
                             f"hash {', '.join(f'{n}: {h}' for n, h in hashes.items())}), so runs of one cannot be "
                             "paired with runs of another; compare them without a baseline to list them side by "
                             f"side. Received: baseline={baseline!r}")
        table = _with_baseline(table, runs, by, metric, baseline, ascending, adjust)
    table = table.sort_values(["rank"], kind="stable", na_position="last").reset_index(drop=True)
    table.attrs["metric"] = metric
    table.attrs["ok_runs"] = table.pop("_ok").fillna(0).astype(int).tolist()
    table.attrs["pruned_at"] = table.pop("_pruned_at").tolist()
    return table


def metric_of(runs: pd.DataFrame) -> str:
    """The metric settings are ranked by when none is named (see `records.default_metric`)."""
    return default_metric([c for c in runs.columns if runs[c].notna().any()])


def _with_baseline(
    table: pd.DataFrame, runs: pd.DataFrame, by: list[str], metric: str,
    baseline: str | dict[str, str], lower_is_better: bool, adjust: str,
) -> pd.DataFrame:
    import numpy as np

    setting = parse_setting(baseline) if isinstance(baseline, str) else dict(baseline)
    base_rows = table[_matches(table, setting)]
    if len(base_rows) != 1:
        example = " ".join(f"{c}={table.iloc[0][c]}" for c in by)
        raise InputError(f"Invalid value for `baseline`: matches {len(base_rows)} settings, expected 1; settings "
                         f"differ in {by}, so give a value for each: --baseline \"{example}\". "
                         f"Received: baseline={baseline!r}")
    if base_rows.iloc[0]["n"] == 0:
        raise InputError(f"Invalid value for `baseline`: the baseline has no ok runs (all diverged or failed). "
                         f"Received: baseline={baseline!r}")
    base_key = base_rows.iloc[0][by]
    ok = runs[runs["status"] == "ok"]
    pair_on, ratio = pairing(ok)
    base = ok[(ok[by] == base_key.values).all(axis=1)].groupby(pair_on)[metric].mean()
    cols: dict[str, list] = {"diff": [], "ci_low": [], "ci_high": [], "p": []}
    kinds = []
    for _, row in table.iterrows():
        if (row[by].values == base_key.values).all():
            values, kind = (0.0, np.nan, np.nan, np.nan), "baseline"
        elif row["_pruned_at"] == row["_pruned_at"]:
            values, kind = (np.nan,) * 4, "pruned"
        elif row["n"] == 0:
            values, kind = (np.nan,) * 4, "no values" if len(ok[(ok[by] == row[by].values).all(axis=1)]) else \
                "no ok runs"
        else:
            mine = ok[(ok[by] == row[by].values).all(axis=1)].groupby(pair_on)[metric].mean()
            values, kind = paired_test((mine - base).dropna(), ratio), "compared"
        for col, v in zip(cols, values, strict=True):
            cols[col].append(v)
        kinds.append(kind)
    if ADJUST[adjust] is not None:
        cols[f"p_{adjust}"] = ADJUST[adjust](cols["p"])
    significant = cols.get(f"p_{adjust}", cols["p"])
    verdicts = []
    for kind, diff, p in zip(kinds, cols["diff"], significant, strict=True):
        if kind != "compared":
            verdicts.append(kind)
        elif not p < 0.05:  # NaN too: fewer than two pairs
            verdicts.append("inconclusive")
        else:
            verdicts.append("better" if (diff < 0) == lower_is_better else "worse")
    out = table.assign(**cols, verdict=verdicts)
    out.attrs["pairing"] = {"on": pair_on, "nadeau_bengio": ratio}
    return out


def pairing(runs: pd.DataFrame) -> tuple[list[str], float]:
    """What runs of two settings are paired on, and the Nadeau-Bengio ratio `n_val/n_train`:
    `seed` alone on one fixed split (ratio 0: the interval covers seed noise only),
    `(seed, draw)` over independent draws of generated data (ratio 0: the draws share no
    sample, so the plain paired t holds), and `(seed, split, fold)` when the runs span several
    splits of one data set (the ratio of their mean validation and training sizes)."""
    on = ["seed", *(c for c in ("draw", "split", "fold") if c in runs and runs[c].notna().any())]
    if len(on) == 1 or on[1] == "draw" or len(runs[on[1:]].drop_duplicates()) < 2:
        return on, 0.0
    if not {"n_train", "n_val"} <= set(runs) or runs["n_train"].isna().all():
        return on, math.nan
    return on, float(runs["n_val"].mean() / runs["n_train"].mean())


def mark_empty(table: pd.DataFrame) -> pd.DataFrame:
    """The table for display: a setting without ok runs, or pruned by a search, says so where
    its mean would be (its verdict says so already when there is a baseline)."""
    import pandas as pd

    if "verdict" in table:
        return table
    ok_runs = table.attrs.get("ok_runs", table["n"].tolist())
    pruned = table.attrs.get("pruned_at", [math.nan] * len(table))
    mean = [m if n else f"pruned at epoch {at:.0f}" if at == at else ("no values" if ok else "no ok runs")
            for m, n, ok, at in zip(table["mean"], table["n"], ok_runs, pruned, strict=True)]
    return table.assign(mean=pd.Series(mean, index=table.index, dtype=object))


def format_table(table: pd.DataFrame, *, metric: str | None = None) -> str:
    """A readable terminal table of `compare`'s output."""
    metric = metric or table.attrs.get("metric", "best_val_data_loss")
    shown = table.copy()
    for col in ("mean", "std", "min", "max", "gap", "diff", "ci_low", "ci_high", "p", "p_holm"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: "" if v != v else f"{v:.4g}")
    if "best_epoch" in shown:
        shown["best_epoch"] = shown["best_epoch"].map(lambda v: "" if v != v else f"{v:.1f}")
    if "rank" in shown:
        shown["rank"] = ["" if str(v) in ("<NA>", "nan") else str(v) for v in shown["rank"]]
    shown = mark_empty(shown).rename(columns={"mean": f"mean {metric}"})
    return shown.to_string(index=False) + baseline_note(table) + metric_note(metric)


def metric_note(metric: str) -> str:
    """A line saying why settings are ranked by another column than the honest validation loss."""
    if metric == "best_val_data_loss" or metric not in ("val_accuracy_at_best", "val_mae_at_best"):
        return ""
    return (f"\nranked by {metric}: these runs have no best_val_data_loss (runs imported from Keras's "
            "CSVLogger files lack the honest columns)")


def baseline_note(table: pd.DataFrame) -> str:
    """The line under a table with a baseline: what the intervals and verdicts are."""
    if "verdict" not in table:
        return ""
    m = int((~table["verdict"].isin(["baseline", "no ok runs", "no values", "pruned"])).sum())
    pairs = table.attrs.get("pairing", {"on": ["seed"], "nadeau_bengio": 0.0})
    over = "shared seeds (one fixed split: seed noise only)" if pairs["on"] == ["seed"] else (
        "shared (seed, draw): independent draws of the data, a plain paired t" if "draw" in pairs["on"] else
        f"shared ({', '.join(pairs['on'])}), Nadeau-Bengio corrected for overlapping training sets "
        f"(n_val/n_train = {pairs['nadeau_bengio']:.3g})")
    if m <= 1:
        return f"\n{m} setting compared with the baseline: a 95% paired t interval over {over}"
    how = ("verdicts from Holm-adjusted p-values (p_holm)" if "p_holm" in table
           else "verdicts not adjusted either (--adjust holm adjusts them)")
    return (f"\n{m} settings compared with the baseline: 95% paired t intervals over {over}, "
            f"not adjusted for the {m} comparisons; {how}")
