"""The fifth edition's table (experiments/README.md, section 23): each extrapolating search
(`results/extrapolate_*`, trained by `make experiments`) set against the full grid of the same
model, seeds and draws at the full size, committed by an earlier experiment.

For each case: the best rate at each subset and the prediction for all the data with its 95%
interval (from the search's journal); the full grid's best with its own interval (the same
location of the minimum on the curve's shape, bootstrapped over the same pairs); the confirmed
answer's validation loss against the grid's best, paired over seeds and draws as `compare` pairs
them (Nadeau-Bengio corrected over digits' repeated splits; tied when the interval lies inside
+-0.01, better or worse when it is clear of zero beyond that); and what the search spent, in
full-size run-epochs (an epoch on a fraction f of the data costs f), as a share of what its own
grid costs at the full size (each rate's run-epochs there as the committed grid's mean per run).
The grid for MNIST-1D's L2 is mnist1d_l2's half-decade one (mnist1d_data_size's decade grid
missed the minimum between 1e-3 and 1e-2).

    python experiments/extrapolation.py [--results DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import mlreg
from mlreg.analysis.compare import pairing
from mlreg.search.extrapolate import best_rate, resamples
from mlreg.spec import label
from mlreg.stats import paired_test

CASES = {  # the search's results: (the committed grid at the full size, what it is)
    "extrapolate_digits": ("data_size", "digits, MLP 2x128, L2 (5 seeds x 3 splits)"),
    "extrapolate_digits_halving": ("data_size", "the same, with halving inside each size"),
    "extrapolate_mnist1d": ("mnist1d_l2", "MNIST-1D, residual MLP, L2 (10 draws)"),  # half-decade, as digits' grid
    "extrapolate_adamw": ("adamw_data_size", "MNIST-1D, residual MLP, AdamW decay (5 draws)"),
    "extrapolate_cnn": ("cnn_l2", "MNIST-1D, CNN, L2 (10 draws)"),
}
TIE = 0.01
"""Tied with the grid's best: the paired interval of the difference inside +-TIE of the validation loss;
better or worse: the interval clear of zero, not inside +-TIE."""


def case(results: Path, name: str) -> dict | None:
    """The case's row, or None while its search has not answered."""
    grid_name, what = CASES[name]
    if not (results / name / "runs.csv").exists() or not (search := mlreg.load_results(results / name)).answer:
        return None
    answer = search.answer["extrapolation"]
    param, full = answer["param"], search.runs.train_size.max()
    grid = mlreg.load_results(results / grid_name).runs
    grid = grid[(grid.status == "ok") & (grid.n_train == full)]
    pair, ratio = pairing(grid)  # as compare pairs them: Nadeau-Bengio corrected over repeated splits
    table = grid.pivot_table(index=pair, columns=param, values="best_val_data_loss")
    rates = table.columns.to_numpy(dtype=float)
    located = np.array([best_rate(rates, table.to_numpy()[r]) for r in resamples(len(table))])
    grid_best = float(table.mean().idxmin())

    runs = search.runs[search.runs.status == "ok"]
    at_full = runs[runs.n_train == full].pivot_table(index=pair, columns=param, values="best_val_data_loss")
    confirmed = answer["confirmed"]
    d = (at_full[confirmed] - table[grid_best]).dropna().to_numpy()
    mean, low, high, _ = paired_test(d.tolist(), ratio)
    spent = float((runs.epochs_run * runs.n_train / full).sum())
    grid_rates = runs[runs.n_train == runs.n_train.min()][param].nunique()  # its grid, as trained on the subsets
    same_grid = grid.epochs_run.mean() * grid_rates * len(table)
    fit = answer["fit"] or {}
    return {"case": name, "what": what, "param": param, "fractions": answer["fractions"],
            "subsets": sorted(int(n) for n in runs.n_train.unique() if n != full), "full": int(full),
            "best_by_size": answer["best_by_size"], "prediction": fit.get("prediction"),
            "interval": fit.get("interval"), "slope": fit.get("slope"), "slope_interval": fit.get("slope_interval"),
            "inverse_n": fit.get("inverse_n"), "trained": answer["trained"], "confirmed": confirmed,
            "grid_best": grid_best, "grid_best_located": float(located[0]),
            "grid_interval": [float(v) for v in np.percentile(located, [2.5, 97.5])],
            "difference": [float(mean), float(low), float(high)], "pairs": int(len(d)),
            "verdict": verdict(low, high), "run_epochs": spent, "grid_run_epochs": float(same_grid),
            "share": spent / same_grid}


def verdict(low: float, high: float) -> str:
    if -TIE <= low and high <= TIE:
        return "tied"
    return "better" if high < 0 else "worse" if low > 0 else "inconclusive"


def g(v: float | None) -> str:
    return "-" if v is None else label(float(f"{v:.3g}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    rows = [row for name in CASES if (row := case(args.results, name))]
    print("| case | subsets -> full | best at each subset | predicted [95%] | slope [95%] | grid's best "
          "[95%] | trained at full size | confirmed | confirmed - grid's best [95%] | verdict | share of the grid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pred = f"{g(r['prediction'])} [{g(r['interval'][0])}, {g(r['interval'][1])}]" if r["prediction"] else "no fit"
        slope = (f"{r['slope']:.2f} [{r['slope_interval'][0]:.2f}, {r['slope_interval'][1]:.2f}]"
                 if r["prediction"] else "-")
        grid = f"{g(r['grid_best'])} (located {g(r['grid_best_located'])} [{g(r['grid_interval'][0])}, " \
               f"{g(r['grid_interval'][1])}])"
        print(f"| {r['what']} | {'/'.join(map(str, r['subsets']))} -> {r['full']} | "
              f"{', '.join(g(v) for v in r['best_by_size'])} | {pred} | {slope} | {grid} | "
              f"{', '.join(g(v) for v in r['trained'])} | {g(r['confirmed'])} | "
              "{:+.4f} [{:+.4f}, {:+.4f}] | ".format(*r["difference"]) +
              f"{r['verdict']} | {r['share']:.2f} |")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
