"""Claim 11: "tune the rate with cross-validation or a separate test set".

Two ordinary experiments choose the L2 rate from the same grid on digits with 300 training
samples and a fixed test set (30% of the data) that no choice ever sees: `cv_one_split`
picks the rate with the lowest validation loss on one validation split, `cv_kfold` the rate
with the lowest mean validation loss over 5 folds. Each is repeated over 12 draws (of the
split, of the partition). For each draw this scores the chosen rate on the test set (one
split: the chosen run's test loss; 5-fold: the mean test loss of the chosen rate's 5 fold
models) and writes results/cross_validation/choices.csv; the summary says which procedure
picks better and how much each choice varies.

    python experiments/cross_validation.py [--fresh]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import mlreg

HERE = Path(__file__).parent
OUT = Path("results/cross_validation")


def choices(runs: pd.DataFrame, procedure: str) -> pd.DataFrame:
    """Per draw: the rate with the lowest mean validation loss, its test loss, and the best test
    loss any rate reached in that draw (the oracle's)."""
    per_rate = runs.groupby(["split", "l2"])[["best_val_data_loss", "test_data_loss"]].mean().reset_index()
    rows = []
    for split, part in per_rate.groupby("split"):
        chosen = part.loc[part["best_val_data_loss"].idxmin()]
        oracle = part.loc[part["test_data_loss"].idxmin()]
        rows.append({"procedure": procedure, "draw": split, "chosen_l2": chosen["l2"],
                     "test_loss": chosen["test_data_loss"], "oracle_l2": oracle["l2"],
                     "oracle_test_loss": oracle["test_data_loss"]})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per procedure: mean test loss of its choices, their regret against the draw's best rate,
    how often it chose that rate, and how many different rates it chose over the draws."""
    table = table.assign(regret=table["test_loss"] - table["oracle_test_loss"],
                         hit=table["chosen_l2"] == table["oracle_l2"])
    return table.groupby("procedure").agg(
        draws=("draw", "count"), test_loss=("test_loss", "mean"), test_loss_sd=("test_loss", "std"),
        regret=("regret", "mean"), picked_best=("hit", "mean"), distinct_choices=("chosen_l2", "nunique"),
        most_chosen=("chosen_l2", lambda s: s.mode().iloc[0]),
    ).reset_index()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fresh", action="store_true", help="retrain (the old results are moved aside)")
    args = p.parse_args()
    table = []
    for name, procedure in (("cv_one_split", "one validation split"), ("cv_kfold", "5-fold cross-validation")):
        mlreg.run(mlreg.load_spec(HERE / f"{name}.toml"), fresh=args.fresh, progress=False)
        table.append(choices(mlreg.load_results(f"results/{name}").runs, procedure))
    OUT.mkdir(parents=True, exist_ok=True)
    both = pd.concat(table, ignore_index=True)
    both.to_csv(OUT / "choices.csv", index=False)
    result = summary(both)
    result.to_csv(OUT / "summary.csv", index=False)
    print(result.to_string(index=False))


if __name__ == "__main__":
    main()
