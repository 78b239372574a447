"""The extrapolating search (`[search] strategy = "extrapolate"`) replayed on the committed grids that
swept the training-set size: the smaller sizes are its subsets, the largest its "full size". Trains
nothing: each case's prediction for the largest size is set beside the grid's best there, and the
rate it confirms (the best of the grid's rates at the largest size inside its candidates' range)
beside the grid's best, paired over the grid's seeds and draws.

Its cost is counted as the search counts it: every run-epoch on a fraction f of the largest size
costs f, and it is set against the run-epochs of the largest size's full grid (as recorded, with
early stopping).

    python benchmarks/replay_extrapolate.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlreg  # noqa: E402
from mlreg.search.extrapolate import BOOTSTRAP, best_rate, candidates, fit, resamples  # noqa: E402
from mlreg.spec import label  # noqa: E402
from mlreg.stats import paired_test  # noqa: E402

CASES = {  # results directory: what it is
    "data_size": "digits, MLP 2x128, L2 (5 seeds x 3 splits)",
    "mnist1d_data_size": "MNIST-1D, residual MLP 2x100, L2 (10 draws)",
    "adamw_data_size": "MNIST-1D, residual MLP 2x100, AdamW decay (5 seeds)",
}
TIE = 0.01
"""Tied with the grid's best: the paired interval of the difference inside +-TIE of the validation loss."""


def replay(name: str) -> dict:
    res = mlreg.load_results(ROOT / "results" / name)
    param = next(p for p in res.params if p != "train_size")
    runs = res.runs[res.runs.status == "ok"]
    pair = [c for c in ("seed", "split", "fold", "draw") if c in runs and runs[c].notna().any()]
    sizes = sorted(runs.train_size.unique())
    full, subsets = sizes[-1], sizes[:-1]
    table = runs.pivot_table(index=pair, columns=["train_size", param], values="best_val_data_loss")
    rates = np.array(sorted(runs[param].unique()), dtype=float)
    pairs = len(table)
    x = np.log(np.array(subsets, dtype=float) / full)
    located = np.array([[best_rate(rates, table[s].to_numpy()[rows]) for s in subsets] for rows in resamples(pairs)])
    fits = [fit(x, np.log(row)) for row in located if np.all(row > 0) and np.all(np.isfinite(row))]
    point = located[0]
    at_full = table[full]
    means = at_full.mean()
    grid_best = float(means.idxmin())
    out = {"case": name, "what": CASES[name], "param": param, "subsets": [int(s) for s in subsets], "full": int(full),
           "best_by_size": [float(v) for v in point], "grid_best": grid_best}
    if np.all(point > 0) and len(fits) >= BOOTSTRAP // 2:
        slope, intercept = fit(x, np.log(point))
        predicted = float(np.exp(intercept))
        low, high = (float(v) for v in np.percentile(np.exp([b for _, b in fits]), [2.5, 97.5]))
        slopes = np.percentile([a for a, _ in fits], [2.5, 97.5])
        wanted = candidates(predicted, low, high, param)
        span = (min(wanted), max(wanted))
        on_grid = [r for r in rates if span[0] / 1.5 <= r <= span[1] * 1.5] or \
            [min(rates[rates > 0], key=lambda r: abs(math.log(r / predicted)))]
        out |= {"prediction": predicted, "interval": [low, high], "slope": slope, "slope_interval": list(slopes),
                "candidates": wanted, "trained": on_grid}
    else:
        out |= {"prediction": None, "trained": [float(r) for r in rates]}
    confirmed = float(min(out["trained"], key=lambda r: means[r]))
    d = (at_full[confirmed] - at_full[grid_best]).to_numpy()
    mean, lo, hi, _ = paired_test(d.tolist()) if confirmed != grid_best else (0.0, 0.0, 0.0, 1.0)
    spent_subsets = sum(runs[runs.train_size == s].epochs_run.sum() * s / full for s in subsets)
    spent_full = runs[(runs.train_size == full) & runs[param].isin(out["trained"])].epochs_run.sum()
    grid = runs[runs.train_size == full].epochs_run.sum()
    return out | {"confirmed": confirmed, "difference": [float(mean), float(lo), float(hi)],
                  "tied": bool(confirmed == grid_best or (-TIE <= lo and hi <= TIE)),
                  "share": float((spent_subsets + spent_full) / grid), "pairs": pairs}


def g(v: float) -> str:
    return label(float(f"{v:.3g}"))


def main() -> None:
    rows = [replay(name) for name in CASES]
    print("| case | subsets -> full | best at each subset | predicted [95%] | slope [95%] | grid's best | "
          "confirmed (paired diff [95%]) | tied | share of the grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        best = ", ".join(g(v) for v in r["best_by_size"])
        pred = f"{g(r['prediction'])} [{g(r['interval'][0])}, {g(r['interval'][1])}]" if r["prediction"] else "no fit"
        slope = f"{r['slope']:.2f} [{r['slope_interval'][0]:.2f}, {r['slope_interval'][1]:.2f}]" if r[
            "prediction"] else "-"
        diff = "{:+.3f} [{:+.3f}, {:+.3f}]".format(*r["difference"])
        print(f"| {r['what']} | {'/'.join(map(str, r['subsets']))} -> {r['full']} | {best} | {pred} | {slope} | "
              f"{label(r['grid_best'])} | {label(r['confirmed'])} ({diff}) | {'yes' if r['tied'] else 'no'} | "
              f"{r['share']:.2f} |")
    (ROOT / "benchmarks" / "replay_extrapolate.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
