"""The summary table of experiments/README.md, computed from the committed results.

For each claim: the effect that decides it, its 95% interval (paired over seeds on one split;
over seeds x splits with the Nadeau-Bengio correction where the experiment draws 3 splits;
over seeds x independent draws, a plain paired t, on MNIST-1D), how many seeds x splits or
draws, whether the effect moved beyond its interval since the third edition
(`third_edition.csv`, written by `--results OLD/results --csv experiments/third_edition.csv`
from the third edition's results), and the verdict by these rules:

- holds: the effect points the way the claim says and its interval is clear of zero;
- holds in part: a claim of several parts of which some hold, or an effect that holds on
  every split or most, one by one, but not beyond the noise between splits;
- does not hold: the effect points the other way, clear of zero, or its whole interval lies
  within +-0.01 of zero in validation data loss (a practically meaningless size);
- inconclusive: otherwise.

    python experiments/summary.py [--results DIR] [--csv OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import mlreg
from mlreg.stats import paired_test

RESULTS = Path("results")
PREVIOUS = Path(__file__).parent / "third_edition.csv"

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
    table = mlreg.compare(mlreg.load_results(RESULTS / name), metric=metric, baseline=baseline)
    r = row_of(table, **setting)
    return r["diff"], r["ci_low"], r["ci_high"]


def per_split(name: str, a: dict, b: dict, metric: str = "best_val_data_loss") -> list[tuple[float, float, float]]:
    """`a - b` paired over seeds within each split: `(mean, low, high)` per split."""
    runs = mlreg.load_results(RESULTS / name).runs
    out = []
    for _, part in runs[runs.status == "ok"].groupby("split"):
        x = part[(part[list(a)] == pd.Series(a)).all(axis=1)].set_index("seed")[metric]
        y = part[(part[list(b)] == pd.Series(b)).all(axis=1)].set_index("seed")[metric]
        out.append(paired_test((x - y).dropna())[:3])
    return out


def verdict(mean: float, low: float, high: float, claimed_sign: int, meaningless: float = MEANINGLESS) -> str:
    """The verdict of an effect by the rules above, with `meaningless` the practically meaningless size."""
    if low > 0 or high < 0:
        return "holds" if (mean > 0) == (claimed_sign > 0) else "does not hold"
    if -meaningless < low and high < meaningless:
        return f"does not hold (smaller than {meaningless:g})"
    return "inconclusive"


def equivalent(mean: float, low: float, high: float, meaningless: float = MEANINGLESS) -> str:
    """The verdict of a claim that two things are the same: it holds when the whole interval of
    their difference lies within the practically meaningless size, does not hold when it lies
    beyond it, and is inconclusive otherwise."""
    if -meaningless < low and high < meaningless:
        return f"holds (within ±{meaningless:g})"
    if low >= meaningless or high <= -meaningless:
        return "does not hold"
    return "inconclusive"


def fmt(mean: float, low: float, high: float, digits: int = 3) -> str:
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


MNIST1D_MEANINGLESS = 0.03
"""On MNIST-1D the losses compared are near 1.0 (the MLP) and 0.3 (the CNN): +-0.03 is the
practically meaningless size there (3% of the MLP's losses, 10% of the CNN's)."""


def best_of(name: str, by: str, metric: str = "best_val_data_loss", **fixed: object) -> float:
    """The value of `by` with the best mean `metric` (lowest), among the runs with `fixed`."""
    runs = mlreg.load_results(RESULTS / name).runs
    runs = runs[runs.status == "ok"]
    for key, value in fixed.items():
        runs = runs[runs[key] == value]
    return float(runs.groupby(by)[metric].mean().idxmin())


def rows_of_the_second_edition(add: Callable) -> None:
    left = versus("l2_rate", "l2=0", l2=0.001)
    right = versus("l2_rate", "l2=0.001", l2=0.1)
    held = sum(h < 0 for _, _, h in per_split("l2_rate", {"l2": 0.001}, {"l2": 0.0}))
    add("1", "1. Validation loss is U-shaped in the L2 rate", f"holds in part: the right arm holds ({fmt(*right, 2)}); "
        f"the left arm on {held} of 3 splits, not beyond the noise between splits", "best rate 1e-3 − none", left,
        "10 × 3 splits", "1-l2_rate-validation-loss-against-the-l2-rate-is-u-shaped")
    sp = versus("l1_vs_l2", "variant=L2 1e-3", metric="sparsity", variant="L1 1e-4")
    add("2", "2. L1 zeroes weights, L2 only shrinks them", verdict(*sp, +1), "share of weights < 1e-3, L1 1e-4 − "
        "L2 1e-3", sp, "10 × 1", "2-l1_vs_l2-l1-zeroes-weights-l2-only-shrinks-them")
    under = versus("dropout_rate", "dropout=0", metric="train_data_loss_at_best", dropout=0.8)
    gap = versus("dropout_rate", "dropout=0", metric="gap", dropout=0.4)
    add("3", "3. Too much dropout underfits; moderate dropout narrows the gap", "holds in part: underfitting shows "
        f"in the means (training loss, 0.8 − none: {fmt(*under)}); the gap: {verdict(*gap, -1)}",
        "gap, dropout 0.4 − none", gap, "10 × 3 splits", "3-dropout_rate-too-much-dropout-underfits")
    es = versus("early_stopping", "variant=to the end", metric="final_val_data_loss", variant="patience 10")
    add("4", "4. Early stopping beats training to the end", verdict(*es, -1), "kept model's loss, patience 10 − to "
        "the end", es, "10 × 1", "4-early_stopping-early-stopping-beats-training-to-the-end")
    small = versus("data_size", "train_size=100,l2=0", train_size=100, l2=0.001)
    large = versus("data_size", "train_size=1400,l2=0", train_size=1400, l2=0.001)
    add("5", "5. Little data needs more regularization", f"{verdict(*small, -1)}: L2's benefit is no larger at 100 "
        f"samples than at 1,400 ({fmt(*large)}); the best rate {best_of('data_size', 'l2', train_size=100):g} "
        f"at 100, {best_of('data_size', 'l2', train_size=1400):g} at 1,400", "L2 1e-3 − none at 100 samples",
        small, "5 × 3 splits", "5-data_size-the-best-rate-against-the-amount-of-data")
    lr = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.003, l2=0.0)
    l2 = versus("lr_vs_l2", "learning_rate=0.1,l2=0", metric="weight_l2", learning_rate=0.1, l2=0.001)
    add("6", "6. A lower learning rate acts like L2", f"holds in part: it shrinks Σw² a little (L2 1e-3: "
        f"{fmt(*l2, 0)}) and does not lower the loss", "Σw², lr 0.003 − lr 0.1", lr, "10 × 1",
        "6-lr_vs_l2-a-lower-learning-rate-acts-like-l2", 0)
    big = versus("model_size", "variant=large 512x512x512", variant="large + L2")
    add("7", "7. Regularize a large model rather than shrink it", verdict(*big, -1), "large + L2 − large", big,
        "10 × 1", "7-model_size-bigger-models-and-regularizing-them")
    res_mlp = versus("functional_residual", "variant=Residual MLP,l2=0", variant="Residual MLP", l2=0.001)
    add("8", "8. L2 works the same in Functional models", verdict(*res_mlp, -1), "residual MLP, L2 1e-3 − none",
        res_mlp, "10 × 1", "8-functional_residual-functional-models")
    tf = mlreg.load_results(RESULTS / "transfer_freeze").runs
    acc = tf.groupby(["train_size", "variant"])["test_accuracy"].mean().unstack()
    head = versus("transfer_freeze", "variant=none,train_size=1000", metric="test_accuracy", variant="all_but_last",
                  train_size=1000)
    add("9", "9/15. Freeze most with little data, train everything with more", "holds in part: freezing all but the "
        f"head is best at every size (test accuracy at 30 / 100 / 1,000: {acc['all_but_last'].round(3).tolist()} "
        f"against {acc['none'].round(3).tolist()} for training everything)", "1,000 samples, head only − everything",
        head, "10 × 1", "9-and-15-transfer_freeze-what-to-freeze-when-fine-tuning")
    far = versus("shift", "shift=1.5,l2=0.001", shift=1.5, l2=0.03)
    best_rate = mlreg.load_results(RESULTS / "shift").runs.groupby(["shift", "l2"])["best_val_data_loss"].mean()
    best_rate = best_rate.unstack().idxmin(axis=1)
    add("10", "10. Shifted evaluation data need more regularization", f"{verdict(*far, -1)}: the best rate is "
        f"{', '.join(f'{r:g}' for r in best_rate)} at shifts {', '.join(f'{x:g}' for x in best_rate.index)}",
        "at shift 1.5, L2 3e-2 − 1e-3", far, "10 × 1", "10-shift-different-training-and-test-data")
    cv = pd.read_csv(RESULTS / "cross_validation" / "summary.csv").set_index("procedure")
    one, five = cv.loc["one validation split"], cv.loc["5-fold cross-validation"]
    add("11", "11. Tune the rate by cross-validation", f"holds in part: 5-fold picks the best rate in "
        f"{five.picked_best:.0%} of draws, one split in {one.picked_best:.0%}; the cost of one split's misses is "
        f"{one.regret:.4f} in test loss", "test loss of the choice, one split − 5-fold",
        (one.test_loss - five.test_loss, math.nan, math.nan), "12 draws", "11-cross_validation-tuning-the-rate", 4)
    shape = pd.read_csv(RESULTS / "weight_distribution" / "summary.csv").set_index("l2")
    add("12", "12. High L2: normal weights; low: even; L2: near 0, not 0", "holds in part: low rates keep the even "
        "(uniform) initialisation; high rates give peaked, heavy-tailed weights, not normal ones",
        f"excess kurtosis (normal 0, uniform −1.2): initial {shape.loc['initial', 'excess_kurtosis']:+.2f}, none "
        f"{shape.loc['0.0', 'excess_kurtosis']:+.2f}, 1e-2", (shape.loc["0.01", "excess_kurtosis"], math.nan,
                                                              math.nan), "10 × 1",
        "12-weight_distribution-the-shape-of-the-weights", 2)
    epochs = tf.groupby(["variant"])["best_epoch"].mean()
    add("13", "13. Transfer needs 1–5 epochs, scratch more than 10", "does not hold: from scratch peaks first",
        f"best epoch (mean over sizes): fine-tuning everything {epochs['none']:.1f}, the head only "
        f"{epochs['all_but_last']:.1f}, from scratch", (epochs["from scratch"], math.nan, math.nan), "10 × 1",
        "13-transfer-epochs", 1)
    m1 = versus("mnist1d", "early_stopping=false,l2=0,dropout=0", metric="test_accuracy", early_stopping=False,
                l2=0.001, dropout=0.3)
    stop = versus("mnist1d", "early_stopping=false,l2=0,dropout=0", metric="test_accuracy", early_stopping=True,
                  l2=0.0, dropout=0.0)
    add("14", "14. MNIST-1D: regularization helps an MLP that overfits badly", f"holds for L2 with Dropout; early "
        f"stopping on the loss alone costs accuracy ({fmt(*stop)})", "test accuracy, L2 1e-3 + Dropout 0.3 − the "
        "paper's MLP", m1, "10 × 1", "14-mnist1d-a-benchmark-where-mlps-overfit")


def rows_of_the_third_edition(add: Callable) -> None:
    m = MNIST1D_MEANINGLESS
    best = best_of("mnist1d_l2", "l2")
    left = versus("mnist1d_l2", "l2=0", l2=best)
    right = versus("mnist1d_l2", f"l2={best:g}", l2=0.01)
    add("1m", "1. (MNIST-1D, MLP) U-shaped in the L2 rate", f"left arm: {verdict(*left, -1, m)}; right arm "
        f"(1e-2 − best): {verdict(*right, +1, m)} ({fmt(*right)})", f"best rate {best:g} − none", left,
        "1 × 10 draws", "16-mnist1d-independent-draws-decide-claims-1-3-and-5")
    under = versus("mnist1d_dropout", "dropout=0", metric="train_data_loss_at_best", dropout=0.8)
    gap = versus("mnist1d_dropout", "dropout=0", metric="gap", dropout=0.4)
    early = versus("mnist1d_dropout", "dropout=0", metric="gap", dropout=0.2)
    add("3m", "3. (MNIST-1D, MLP) Too much dropout underfits; moderate dropout narrows the gap",
        f"holds: underfitting at 0.8 (training loss − none {fmt(*under)}); the gap narrows from 0.4 on, not at "
        f"0.2, the best rate, whose kept epoch comes later ({fmt(*early)})", "gap, dropout 0.4 − none", gap,
        "1 × 10 draws", "16-mnist1d-independent-draws-decide-claims-1-3-and-5")
    small = versus("mnist1d_data_size", "train_size=400,l2=0.001", train_size=400, l2=0.01)
    large = versus("mnist1d_data_size", "train_size=3200,l2=0.001", train_size=3200, l2=0.01)
    rates = [best_of("mnist1d_data_size", "l2", train_size=n) for n in (400, 1000, 3200)]
    add("5m", "5. (MNIST-1D, MLP) Little data needs more regularization", f"{verdict(*small, -1, m)}: "
        f"the best rate {', '.join(f'{r:g}' for r in rates)} at 400, 1,000, 3,200 samples; L2 1e-2 − 1e-3 at "
        f"3,200: {fmt(*large)}", "L2 1e-2 − 1e-3 at 400 samples", small, "1 × 10 draws",
        "16-mnist1d-independent-draws-decide-claims-1-3-and-5")
    cbest = best_of("cnn_l2", "l2")
    cleft = versus("cnn_l2", "l2=0", l2=cbest)
    cright = versus("cnn_l2", f"l2={cbest:g}", l2=0.01)
    add("1c", "1. (MNIST-1D, CNN) U-shaped in the L2 rate", f"left arm: {verdict(*cleft, -1, m)}; right arm "
        f"(1e-2 − best): {verdict(*cright, +1, m)} ({fmt(*cright)}); the MLP's best rate {best:g}",
        f"best rate {cbest:g} − none", cleft, "1 × 10 draws", "17-cnn-the-claims-on-a-convolutional-model")
    cdrop = best_of("cnn_dropout", "dropout")
    cd = versus("cnn_dropout", "dropout=0", dropout=cdrop)
    cunder = versus("cnn_dropout", "dropout=0", metric="train_data_loss_at_best", dropout=0.6)
    add("3c", "3. (MNIST-1D, CNN) Too much dropout underfits; moderate dropout helps",
        f"best dropout {cdrop:g}: {verdict(*cd, -1, m)}; underfitting (training loss, 0.6 − none "
        f"{fmt(*cunder)}): {verdict(*cunder, +1, m)}", f"val loss, dropout {cdrop:g} − none", cd,
        "1 × 10 draws", "17-cnn-the-claims-on-a-convolutional-model")
    ces = versus("cnn_early_stopping", "variant=to the end", metric="final_val_data_loss", variant="patience 10")
    acc = versus("cnn_early_stopping", "variant=to the end", metric="test_accuracy", variant="patience 10")
    add("4c", "4. (MNIST-1D, CNN) Early stopping beats training to the end", f"{verdict(*ces, -1, m)} on "
        f"the loss; stopping on the loss costs test accuracy ({fmt(*acc)}), as for the MLP (claim 14)",
        "kept model's loss, patience 10 − to the end", ces, "1 × 10 draws",
        "17-cnn-the-claims-on-a-convolutional-model")
    searched = mlreg.load_results(RESULTS / "l2_rate_search")
    answer, runs = searched.answer, searched.runs
    grid_runs = mlreg.load_results(RESULTS / "l2_rate").runs
    on_grid = runs[runs.l2.isin(set(grid_runs.l2))]
    kept = on_grid[on_grid.status == "ok"].groupby("l2")["best_val_data_loss"].mean()
    pruned = sorted(on_grid[on_grid.status == "pruned"].l2.unique())
    rates = ", ".join(f"{json.loads(s)['l2']:g}" for s in [answer["best"], *answer["open"], *answer["tied"]])
    spent, grid = int(on_grid.epochs_run.sum()), int(grid_runs.epochs_run.sum())
    add("s", "Search: the L2 curve of l2_rate by halving, seeds where needed and a zoom",
        f"the grid's answer: best of its rates {kept.idxmin():g} (the grid's {best_of('l2_rate', 'l2'):g}), "
        f"{', '.join(f'{r:g}' for r in pruned)} pruned at epoch {int(on_grid.pruned_at.max())}; not separated at "
        f"{answer['seeds']} seeds: {rates} (the zoom's too); the zoom's values cost "
        f"{int(runs.epochs_run.sum()) - spent:,} run-epochs more", "run-epochs on the grid's rates, search ÷ grid",
        (spent / grid, math.nan, math.nan), f"3 to {answer['seeds']} seeds × 3 splits",
        "18-l2_rate_search-the-l2-curve-by-a-search", 2)


def best_variant(name: str, prefix: str, metric: str = "best_val_data_loss") -> str:
    """The variant whose name starts with `prefix` with the best mean `metric` (lowest)."""
    runs = mlreg.load_results(RESULTS / name).runs
    runs = runs[(runs.status == "ok") & runs.variant.str.startswith(prefix)]
    return str(runs.groupby("variant")[metric].mean().idxmin())


def tau_epoch(weight_decay: float, batch_size: int, n: int, learning_rate: float = 1e-2) -> float:
    """Wang & Aitchison's timescale of AdamW in epochs: batch_size / (lr * weight_decay * N)."""
    return batch_size / (learning_rate * weight_decay * n)


def rows_of_the_fourth_edition(add: Callable) -> None:
    m = MNIST1D_MEANINGLESS
    mlp = mlreg.kinds(mlreg.load_results(RESULTS / "mnist1d_kinds"))
    first = mlp.iloc[0]
    add("k", "Which kind? (MNIST-1D, MLP): each kind alone against none", f"{first['kind']} first "
        f"({first['setting']}); {mlp.attrs['sentence']}", f"{first['setting']} − none",
        (first["diff"], first["ci_low"], first["ci_high"]), "1 × 6 draws", "19-which-kind")
    cnn = mlreg.kinds(mlreg.load_results(RESULTS / "cnn_kinds"))
    first = cnn.iloc[0]
    add("kc", "Which kind? (MNIST-1D, CNN): each kind and every combination", f"{first['kind']} first "
        f"({first['setting']}); {cnn.attrs['sentence']}", f"{first['setting']} − none",
        (first["diff"], first["ci_low"], first["ci_high"]), "1 × 4 draws", "19-which-kind")
    adam_l2, adamw = best_variant("adam_l2_vs_decay", "Adam + L2"), best_variant("adam_l2_vs_decay", "AdamW")
    better = versus("adam_l2_vs_decay", f"variant={adam_l2}", variant=adamw)
    add("lh", "Decoupled decay beats Adam + L2 (Loshchilov & Hutter)", f"{verdict(*better, -1, m)}: the best "
        f"of each curve, {adamw} − {adam_l2}", f"{adamw} − {adam_l2}", better, "1 × 6 draws",
        "20-adam_l2_vs_decay-l2-against-decoupled-weight-decay")
    same = versus("adam_l2_vs_decay", "variant=SGD + decay 2e-3", variant="SGD + L2 1e-3")
    add("lh-sgd", "With SGD, L2 = weight decay at weight_decay = 2 l2 (Loshchilov & Hutter)",
        equivalent(*same, m), "SGD + L2 1e-3 − SGD + decay 2e-3", same, "1 × 6 draws",
        "20-adam_l2_vs_decay-l2-against-decoupled-weight-decay", 4)
    sizes = (400, 1000, 3200)
    best = [best_of("adamw_data_size", "weight_decay", train_size=n) for n in sizes]
    taus = [tau_epoch(w, 100, n) if w else math.inf for w, n in zip(best, sizes, strict=True)]
    small = versus("adamw_data_size", f"train_size=400,weight_decay={best[2]:g}", train_size=400,
                   weight_decay=best[0])
    falls = best == sorted(best, reverse=True) and best[0] > best[2] and small[2] < 0
    constant = max(taus) / min(taus) <= math.sqrt(10)  # within one half-decade step of the grid
    judged = ("holds" if falls and constant else "holds in part: it falls, faster than 1/N" if falls
              else "does not hold" if small[1] > 0 else "inconclusive")
    add("wa", "AdamW's best decay falls as 1/N (Wang & Aitchison)", f"{judged}: the best decay "
        f"{', '.join(f'{w:g}' for w in best)} at 400, 1,000, 3,200 samples (tau_epoch "
        f"{', '.join(f'{t:.2g}' for t in taus)})",
        f"at 400 samples, decay {best[0]:g} − {best[2]:g} (the best at 3,200)", small, "1 × 5 draws",
        "21-adamw_data_size-and-adamw_batch_size-the-best-decay-against-n-and-the-batch")
    batches = [best_of("adamw_batch_size", "weight_decay", batch_size=b) for b in (25, 100)]
    big = versus("adamw_batch_size", f"batch_size=100,weight_decay={batches[0]:g}", batch_size=100,
                 weight_decay=batches[1])
    grows = batches[1] > batches[0] and big[2] < 0
    batch_taus = [tau_epoch(w, b, 1000) for w, b in zip(batches, (25, 100), strict=True)]
    add("wa-b", "AdamW's best decay grows with the batch size (Wang & Aitchison; Bergsma et al.)",
        f"{'holds' if grows else 'does not hold' if big[1] > 0 else 'inconclusive'}: the best decay "
        f"{batches[0]:g} at batch 25, {batches[1]:g} at 100 (tau_epoch {batch_taus[0]:.2g}, {batch_taus[1]:.2g})",
        f"at batch 100, decay {batches[1]:g} − {batches[0]:g} (the best at 25)", big, "1 × 5 draws",
        "21-adamw_data_size-and-adamw_batch_size-the-best-decay-against-n-and-the-batch")
    for kind, prefix in (("Label smoothing", "label smoothing"), ("Input noise", "noise")):
        best_ls = best_variant("mnist1d_kinds", prefix)
        ls = versus("mnist1d_kinds", "variant=none", variant=best_ls)
        acc = versus("mnist1d_kinds", "variant=none", metric="test_accuracy", variant=best_ls)
        add(f"es-{prefix[:5]}", f"{kind} helps a model already early-stopped", f"{verdict(*ls, -1, m)} on the "
            f"loss; test accuracy {fmt(*acc)}", f"{best_ls} − none", ls, "1 × 6 draws", "19-which-kind")
    lr = best_variant("mnist1d_lr_vs_l2", "lr ", metric="best_val_data_loss")
    lr = lr if "L2" not in lr else "lr 1e-2"
    against = versus("mnist1d_lr_vs_l2", "variant=lr 1e-2 + L2 3e-3", variant=lr)
    add("6m", "6. (MNIST-1D, MLP) A lower learning rate with early stopping acts like L2", f"{equivalent(*against, m)}"
        f": the best rate without L2 ({lr}) against the paper's rate with L2 3e-3", f"{lr} − lr 1e-2 + L2 3e-3",
        against, "1 × 6 draws", "22-mnist1d_lr_vs_l2-a-lower-learning-rate-against-l2")


def main() -> None:
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results directory (default: results)")
    parser.add_argument("--csv", type=Path, help="write each row's key and effect to this CSV")
    args = parser.parse_args()
    RESULTS = args.results
    rows: list[dict] = []
    previous = None
    if PREVIOUS.exists() and not args.csv:
        previous = pd.read_csv(PREVIOUS, dtype={"key": str}).set_index("key")

    def add(key: str, claim: str, judged: str, effect: str, numbers: tuple, design: str, link: str,
            digits: int = 3) -> None:
        mean, low, high = numbers
        shown = fmt(mean, low, high, digits) if low == low else f"{mean:+.{digits}f}"
        moved = ""
        if previous is not None and key in previous.index:
            was = previous.loc[key]
            if low == low and not low <= was["mean"] <= high:
                moved = f"moved: was {was['mean']:+.{digits}f}"
            elif low != low:
                moved = "" if abs(was["mean"] - mean) < 10 ** -digits * 5 else f"was {was['mean']:+.{digits}f}"
        elif previous is not None:
            moved = "new"
        rows.append({"key": key, "claim": claim, "verdict": judged, "effect": f"{effect}: {shown}", "design": design,
                     "moved": moved or "–", "link": f"[↓](#{link})", "mean": mean, "low": low, "high": high})

    for part in (rows_of_the_second_edition, rows_of_the_third_edition, rows_of_the_fourth_edition):
        try:
            part(add)
        except (mlreg.ResultsError, FileNotFoundError, KeyError) as e:  # an edition without these results
            print(f"(left out: {e})", file=sys.stderr)
    if args.csv:
        pd.DataFrame(rows)[["key", "mean", "low", "high"]].to_csv(args.csv, index=False)
        return
    print("| claim | verdict | effect [95% interval] | seeds × splits or draws | since the 3rd edition | |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in ("claim", "verdict", "effect", "design", "moved", "link")) + " |")


if __name__ == "__main__":
    main()
