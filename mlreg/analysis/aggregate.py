"""Aggregation over repeats (seeds, splits, folds, draws): the one place where mlreg computes
statistics of runs of one setting, for the table, the plots and the notebook view. Pandas only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def over_seeds(frame: pd.DataFrame, by: Sequence[str], columns: Sequence[str],
               stats: Sequence[str] = ("count", "mean", "std", "min", "max")) -> pd.DataFrame:
    """Statistics of `columns` over the seeds (and splits, folds) of each group of `by`: the one
    place where mlreg aggregates over repeats, for the table, the plots and the notebook view.
    `frame` is runs (one row each; settings as `by`) or history (`by` then ends with `epoch`).
    Returns one row per group (keyed by `by`, in order of appearance), one column per
    `(column, statistic)`; a column without values gives NaN, not an error."""
    present = [c for c in columns if c in frame]
    grouped = frame.groupby(list(by), sort=False, dropna=False)[present]
    out = grouped.agg(list(stats))
    for c in columns:
        if c not in present:
            for st in stats:
                out[(c, st)] = 0 if st == "count" else float("nan")
    return out
