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


def versus(name: str, baseline: str, metric: str = "best_val_data_loss",
           **setting: object) -> tuple[float, float, float]:
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

    def add(claim: str, judged: str, effect: str, numbers: tuple, design: str, link: str, digits: int = 3) -> None:
        rows.append((claim, judged, f"{effect}: {fmt(*numbers, digits)}", design, f"[↓](#{link})"))

    left = versus("l2_rate", "l2=0", l2=0.001)
    right = versus("l2_rate", "l2=0.001", l2=0.1)
    held = sum(h < 0 for _, _, h in per_split("l2_rate", {"l2": 0.001}, {"l2": 0.0}))
    add("1. Validation loss is U-shaped in the L2 rate", f"holds in part: the right arm holds ({fmt(*right, 2)}); "
        f"the left arm on {held} of 3 splits, not beyond the noise between splits", "best rate 1e-3 − none", left,
        "10 × 3", "1-l2_rate-validation-loss-against-the-l2-rate-is-u-shaped")
    sp = versus("l1_vs_l2", "variant=L2 1e-3", metric="sparsity", variant="L1 1e-4")
    add("2. L1 zeroes weights, L2 only shrinks them", verdict(*sp, +1), "share of weights < 1e-3, L1 1e-4 − L2 1e-3",
        sp, "10 × 1", "2-l1_vs_l2-l1-zeroes-weights-l2-only-shrinks-them")
    under = versus("dropout_rate", "dropout=0", metric="train_data_loss_at_best", dropout=0.8)
    gap = versus("dropout_rate", "dropout=0", metric="gap", dropout=0.4)
    add("3. Too much dropout underfits; moderate dropout narrows the gap", "holds in part: underfitting shows in "
        f"the means (training loss, 0.8 − none: {fmt(*under)}); the gap: {verdict(*gap, -1)}",
        "gap, dropout 0.4 − none", gap, "10 × 3", "3-dropout_rate-too-much-dropout-underfits")
    es = versus("early_stopping", "variant=to the end", metric="final_val_data_loss", variant="patience 10")
    add("4. Early stopping beats training to the end", verdict(*es, -1), "kept model's loss, patience 10 − to the end",
        es, "10 × 1", "4-early_stopping-early-stopping-beats-training-to-the-end")
    small = versus("data_size", "train_size=100,l2=0", train_size=100, l2=0.001)
    large = versus("data_size", "train_size=1400,l2=0", train_size=1400, l2=0.001)
    add("5. Little data needs more regularization", f"{verdict(*small, -1)}: L2's benefit is no larger at 100 "
        f"samples than at 1,400 ({fmt(*large)}); the best rate falls half a decade", "L2 1e-3 − none at 100 samples",
        small, "10 × 3", "5-data_size-the-best-rate-against-the-amount-of-data")
    lr = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.003, l2=0.0)
    l2 = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.1, l2=0.001)
    add("6. A lower learning rate acts like L2", f"holds in part: it shrinks Σw² a little (L2 1e-3: "
        f"{fmt(*l2, 0)}) and does not lower the loss", "Σw², lr 0.003 − lr 0.1", lr, "10 × 1",
        "6-lr_vs_l2-a-lower-learning-rate-acts-like-l2", 0)
    big = versus("model_size", "variant=large 512x512x512", variant="large + L2")
    add("7. Regularize a large model rather than shrink it", verdict(*big, -1), "large + L2 − large", big, "20 × 1",
        "7-model_size-bigger-models-and-regularizing-them")
    res_mlp = versus("functional_residual", "variant=Residual MLP,l2=0", variant="Residual MLP", l2=0.001)
    add("8. L2 works the same in Functional models", verdict(*res_mlp, -1), "residual MLP, L2 1e-3 − none", res_mlp,
        "10 × 1", "8-functional_residual-functional-models")
    tf = mlreg.load_results("results/transfer_freeze").runs
    acc = tf.groupby(["train_size", "variant"])["test_accuracy"].mean().unstack()
    head = versus("transfer_freeze", "variant=none,train_size=1000", metric="test_accuracy", variant="all_but_last",
                  train_size=1000)
    add("9/15. Freeze most with little data, train everything with more", "holds in part: freezing all but the "
        f"head is best at every size (test accuracy at 30 / 100 / 1,000: {acc['all_but_last'].round(3).tolist()} "
        f"against {acc['none'].round(3).tolist()} for training everything)", "1,000 samples, head only − everything",
        head, "10 × 1", "9-and-15-transfer_freeze-what-to-freeze-when-fine-tuning")
    far = versus("shift", "shift=1.5,l2=0.001", shift=1.5, l2=0.03)
    best_rate = mlreg.load_results("results/shift").runs.groupby(["shift", "l2"])["best_val_data_loss"].mean()
    best_rate = best_rate.unstack().idxmin(axis=1)
    add("10. Shifted evaluation data need more regularization", f"{verdict(*far, -1)}: the best rate is "
        f"{', '.join(f'{r:g}' for r in best_rate)} at shifts {', '.join(f'{x:g}' for x in best_rate.index)}",
        "at shift 1.5, L2 3e-2 − 1e-3", far, "10 × 1", "10-shift-different-training-and-test-data")
    cv = pd.read_csv("results/cross_validation/summary.csv").set_index("procedure")
    one, five = cv.loc["one validation split"], cv.loc["5-fold cross-validation"]
    rows.append(("11. Tune the rate by cross-validation", f"holds in part: 5-fold picks the best rate in "
                 f"{five.picked_best:.0%} of draws, one split in {one.picked_best:.0%}; the cost of one split's "
                 f"misses is {one.regret:.4f} in test loss", "test loss of the choice, one split − 5-fold: "
                 f"{one.test_loss - five.test_loss:+.4f}", "12 draws", "[↓](#11-cross_validation-tuning-the-rate)"))
    shape = pd.read_csv("results/weight_distribution/summary.csv").set_index("l2")
    rows.append(("12. High L2: normal weights; low: even; L2: near 0, not 0", "holds in part: low rates keep the "
                 "even (uniform) initialisation; high rates give peaked, heavy-tailed weights, not normal ones",
                 f"excess kurtosis (normal 0, uniform −1.2): initial {shape.loc['initial', 'excess_kurtosis']:+.2f}, "
                 f"none {shape.loc['0.0', 'excess_kurtosis']:+.2f}, 1e-2 {shape.loc['0.01', 'excess_kurtosis']:+.2f}",
                 "10 × 1", "[↓](#12-weight_distribution-the-shape-of-the-weights)"))
    epochs = tf.groupby(["variant"])["best_epoch"].mean()
    rows.append(("13. Transfer needs 1–5 epochs, scratch more than 10", "does not hold: from scratch peaks first",
                 f"best epoch (mean over sizes): from scratch {epochs['from scratch']:.1f}, fine-tuning everything "
                 f"{epochs['none']:.1f}, the head only {epochs['all_but_last']:.1f}", "10 × 1",
                 "[↓](#13-transfer-epochs)"))
    m1 = versus("mnist1d", "early_stopping=false,l2=0,dropout=0", metric="test_accuracy", early_stopping=False,
                l2=0.001, dropout=0.3)
    stop = versus("mnist1d", "early_stopping=false,l2=0,dropout=0", metric="test_accuracy", early_stopping=True,
                  l2=0.0, dropout=0.0)
    add("14. MNIST-1D: regularization helps an MLP that overfits badly", f"holds for L2 with Dropout; early stopping "
        f"on the loss alone costs accuracy ({fmt(*stop)})", "test accuracy, L2 1e-3 + Dropout 0.3 − the paper's MLP",
        m1, "10 × 1", "14-mnist1d-a-benchmark-where-mlps-overfit")
    print("| claim | verdict | effect [95% interval] | seeds × splits | |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
