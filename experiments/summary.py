"""The summary table of experiments/README.md, computed from the committed results.

For each claim: the effect that decides it, its 95% interval (paired over seeds on one split;
over seeds x splits with the Nadeau-Bengio correction where the experiment draws 3 splits),
how many seeds x splits, and the verdict by these rules:

- holds: the effect points the way the claim says and its interval is clear of zero;
- holds in part: a claim of several parts of which some hold, or an effect that holds on
  every split or most, one by one, but not beyond the noise between splits;
- does not hold: the effect points the other way, clear of zero, or its whole interval lies
  within +-0.01 of zero in validation data loss (a practically meaningless size);
- inconclusive: otherwise.

    python experiments/summary.py
"""

from __future__ import annotations

import pandas as pd

import mlreg
from mlreg.analysis.compare import paired_test

MEANINGLESS = 0.01
"""Differences of validation data loss within +-0.01 are practically meaningless here (3-8% of
the losses compared)."""


def row_of(table: pd.DataFrame, **setting: object) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for key, value in setting.items():
        mask &= table[key] == value
    return table[mask].iloc[0]


def versus(name: str, baseline: str, metric: str = "best_val_data_loss", **setting: object) -> tuple[float, float, float]:
    """The mean paired difference `setting - baseline` of a metric, and its 95% interval."""
    table = mlreg.compare(mlreg.load_results(f"results/{name}"), metric=metric, baseline=baseline)
    r = row_of(table, **setting)
    return r["diff"], r["ci_low"], r["ci_high"]


def per_split(name: str, a: dict, b: dict, metric: str = "best_val_data_loss") -> list[tuple[float, float, float]]:
    """`a - b` paired over seeds within each split: `(mean, low, high)` per split."""
    runs = mlreg.load_results(f"results/{name}").runs
    out = []
    for _, part in runs[runs.status == "ok"].groupby("split"):
        x = part[(part[list(a)] == pd.Series(a)).all(axis=1)].set_index("seed")[metric]
        y = part[(part[list(b)] == pd.Series(b)).all(axis=1)].set_index("seed")[metric]
        out.append(paired_test((x - y).dropna())[:3])
    return out


def verdict(mean: float, low: float, high: float, claimed_sign: int) -> str:
    if low > 0 or high < 0:
        return "holds" if (mean > 0) == (claimed_sign > 0) else "does not hold"
    if -MEANINGLESS < low and high < MEANINGLESS:
        return "does not hold (smaller than 0.01)"
    return "inconclusive"


def fmt(mean: float, low: float, high: float, digits: int = 3) -> str:
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def main() -> None:
    rows = []

    def add(claim: str, effect: str, numbers: tuple, design: str, judged: str, link: str) -> None:
        rows.append((claim, judged, f"{effect}: {fmt(*numbers)}", design, link))

    left = versus("l2_rate", "l2=0", l2=0.001)
    right = versus("l2_rate", "l2=0.001", l2=0.1)
    splits = per_split("l2_rate", {"l2": 0.001}, {"l2": 0.0})
    held = sum(h < 0 for _, _, h in splits)
    add("1. L2: validation loss U-shaped in the rate", "best (1e-3) − none", left, "10 × 3 splits",
        f"holds in part: right arm {fmt(*right, 2)}; left arm on {held} of 3 splits, not beyond split noise",
        "#1-l2_rate")
    sp = versus("l1_vs_l2", "variant=L2 1e-3", metric="sparsity", variant="L1 1e-4")
    add("2. L1 zeroes weights, L2 only shrinks them", "sparsity, L1 1e-4 − L2 1e-3", sp, "10 × 1", verdict(*sp, +1),
        "#2-l1_vs_l2")
    under = versus("dropout_rate", "dropout=0", metric="train_data_loss_at_best", dropout=0.8)
    gap = versus("dropout_rate", "dropout=0", metric="gap", dropout=0.4)
    add("3. Dropout: too much underfits, moderate narrows the gap", "gap, 0.4 − none", gap, "10 × 3 splits",
        f"holds in part: too much underfits (training loss, 0.8 − none: {fmt(*under)}); the gap: "
        f"{verdict(*gap, -1)}", "#3-dropout_rate")
    es = versus("early_stopping", "variant=to the end", metric="final_val_data_loss", variant="patience 10")
    add("4. Early stopping beats training to the end", "kept model, patience 10 − to the end", es, "10 × 1",
        verdict(*es, -1), "#4-early_stopping")
    small = versus("data_size", "train_size=100,l2=0", train_size=100, l2=0.001)
    large = versus("data_size", "train_size=1400,l2=0", train_size=1400, l2=0.001)
    add("5. Little data needs more regularization", "L2 1e-3 − none, 100 samples", small, "10 × 3 splits",
        f"{verdict(*small, -1)} at 100 samples; at 1,400: {fmt(*large)}", "#5-data_size")
    lr = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.003, l2=0.0)
    l2 = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.1, l2=0.001)
    add("6. A lower learning rate acts like L2", "Σw², lr 0.003 − lr 0.1", lr, "10 × 1",
        f"holds in part: {verdict(*lr, -1)} for Σw², 7% against L2's {fmt(*l2, 0)}; no better loss",
        "#6-lr_vs_l2")
    big = versus("model_size", "variant=large 512x512x512", variant="large + L2")
    add("7. Regularize a large model rather than shrink it", "large + L2 − large", big, "20 × 1",
        verdict(*big, -1), "#7-model_size")
    for builder in ("Residual MLP", "Wide and deep"):
        best = versus("functional_residual", f"variant={builder},l2=0", variant=builder, l2=0.001)
        add(f"8. Functional models: {builder} shares the L2 optimum", "L2 1e-3 − none", best, "10 × 1",
            verdict(*best, -1), "#8-functional_residual")
    shift = mlreg.load_results("results/shift").runs
    best_rate = shift.groupby(["shift", "l2"])["best_val_data_loss"].mean().unstack().idxmin(axis=1)
    far = versus("shift", "shift=1.5,l2=0.001", shift=1.5, l2=0.03)
    add("10. Shifted evaluation data need more regularization", "at shift 1.5, L2 3e-2 − 1e-3", far, "10 × 1",
        f"{verdict(*far, -1)}: best rate {', '.join(f'{r:g}' for r in best_rate)} at shifts "
        f"{', '.join(f'{s:g}' for s in best_rate.index)}", "#10-shift")
    cv = pd.read_csv("results/cross_validation/summary.csv").set_index("procedure")
    one, five = cv.loc["one validation split"], cv.loc["5-fold cross-validation"]
    rows.append(("11. Tune the rate by cross-validation", "holds in part: 5-fold picks more consistently, at no "
                 "practical gain", f"best rate picked: 5-fold {five.picked_best:.0%}, one split "
                 f"{one.picked_best:.0%}; regret of one split {one.regret:+.4f}", "12 draws", "#11-cross_validation"))
    shape = pd.read_csv("results/weight_distribution/summary.csv").set_index("l2")
    rows.append(("12. High L2: normal weights; low: even; L2: near 0 but not 0", "holds in part",
                 f"excess kurtosis: initial {shape.loc['initial', 'excess_kurtosis']:+.2f}, no L2 "
                 f"{shape.loc['0.0', 'excess_kurtosis']:+.2f}, 1e-2 {shape.loc['0.01', 'excess_kurtosis']:+.2f}",
                 "10 × 1", "#12-weight_distribution"))
    for r in rows:
        print(" | ".join(str(x) for x in r))


if __name__ == "__main__":
    main()
