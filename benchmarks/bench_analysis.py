"""How fast are compare and plot on a big results directory?

Builds a synthetic results directory of 10,000 runs x 100 epochs (1,000,000 history
rows: 200 settings of l2 x dropout, 50 seeds), then times, in this one process:

- the baseline: `pandas.read_csv` of runs.csv, history.csv and weights.csv (the floor:
  no analysis can be faster than reading its input),
- `mlreg.load_results`, `mlreg.compare` (with a paired baseline), and every figure of
  `mlreg plot` (drawn and saved as PNG),
- and, apart, `mlreg --help` in a fresh process against a bare interpreter's start,

and prints each time with its ratio to the baseline. Usage:
    python benchmarks/bench_analysis.py [--runs 10000] [--epochs 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(root: Path, n_runs: int, epochs: int) -> None:
    from mlreg.records import columns
    from mlreg.store import ResultsStore

    rng = np.random.default_rng(0)
    l2s = np.array([0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1])
    dropouts = np.round(np.linspace(0, 0.57, 20), 2)
    n_settings = len(l2s) * len(dropouts)
    seeds = max(1, n_runs // n_settings)
    l2 = np.repeat(np.tile(l2s, len(dropouts)), seeds)[:n_runs]
    dropout = np.repeat(np.repeat(dropouts, len(l2s)), seeds)[:n_runs]
    seed = np.tile(np.arange(seeds), n_settings)[:n_runs]
    cols = columns("single_label", ["l2", "dropout"])
    with ResultsStore.open(root, spec_toml="name = 'bench'\n", columns=cols,
                           manifest={"experiment": "bench", "swept": ["l2", "dropout"]}):
        pass
    run_id = np.array([f"r{i:06d}" for i in range(n_runs)])
    best = 0.2 + 0.5 * (np.log10(l2 + 1e-6) + 3) ** 2 / 9 + 0.1 * dropout + rng.normal(0, 0.02, n_runs)
    runs = pd.DataFrame({"run_id": run_id, "status": "ok", "seed": seed, "l2": l2, "dropout": dropout,
                         "best_epoch": rng.integers(min(10, epochs), epochs + 1, n_runs), "epochs_run": epochs,
                         "best_val_data_loss": best, "train_data_loss_at_best": best * 0.5, "gap": best * 0.5,
                         "weight_l2": 100 / (1 + 1000 * l2), "sparsity": np.minimum(l2 * 5, 1)})
    runs = runs.reindex(columns=cols["runs.csv"])
    e = np.tile(np.arange(1, epochs + 1), n_runs)
    base = np.repeat(best, epochs)
    history = pd.DataFrame({"run_id": np.repeat(run_id, epochs), "epoch": e,
                            "val_data_loss": base + 1 / e, "train_data_loss": base * 0.5 + 0.5 / e,
                            "loss": base + 1 / e, "penalty": 0.01, "val_loss": base + 1 / e + 0.01})
    history = history.reindex(columns=cols["history.csv"])
    edges = np.linspace(-0.3, 0.3, 61)
    bins = len(edges) - 1
    weights = pd.DataFrame({"run_id": np.repeat(run_id, bins), "layer": "hidden_1",
                            "bin_left": np.tile(edges[:-1], n_runs), "bin_right": np.tile(edges[1:], n_runs),
                            "count": rng.integers(1, 100, n_runs * bins)})
    runs.to_csv(root / "runs.csv", index=False)
    history.to_csv(root / "history.csv", index=False)
    weights.to_csv(root / "weights.csv", index=False)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--dir", type=Path, help="keep the results directory here")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mlreg
    from mlreg.analysis.plots import figures

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp) / "bench"
        t0 = time.perf_counter()
        build(root, args.runs, args.epochs)
        res = mlreg.load_results(root)
        print(f"built {len(res.runs):,} runs x {args.epochs} epochs = {len(res.history):,} history rows, "
              f"{len(res.weights):,} weight rows in {time.perf_counter() - t0:.1f} s")

        baseline = timed(lambda: [pd.read_csv(root / n) for n in ("runs.csv", "history.csv", "weights.csv")], 2)
        rows = [("baseline: pd.read_csv of the 3 CSVs", baseline)]
        rows.append(("mlreg.load_results", timed(lambda: mlreg.load_results(root), 2)))
        rows.append(("mlreg.compare (baseline l2=0,dropout=0)",
                     timed(lambda: mlreg.compare(res, baseline="l2=0,dropout=0"), 2)))

        saved: list[str] = []

        def plot_all() -> None:
            out = root / "plots"
            out.mkdir(exist_ok=True)
            for stem, fig in figures(res).items():
                fig.savefig(out / f"{stem}.png", dpi=100)
                plt.close(fig)
                saved.append(stem)

        secs = timed(plot_all)
        rows.append((f"mlreg plot: all {len(saved)} figures, saved as PNG", secs))
        width = max(len(name) for name, _ in rows)
        print(f"{'step'.ljust(width)}  {'seconds':>8}  {'x baseline':>10}")
        for name, secs in rows:
            print(f"{name.ljust(width)}  {secs:8.2f}  {secs / baseline:10.2f}")

    # `mlreg --help` against a bare interpreter's start (it imports neither TensorFlow nor JAX)
    import subprocess
    import sys

    bare = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 3)
    helped = timed(lambda: subprocess.run([sys.executable, "-m", "mlreg", "--help"], check=True,
                                          capture_output=True), 3)
    print(f"mlreg --help: {helped:.2f} s, {helped / bare:.1f}x a bare `python -c pass` ({bare:.2f} s)")


if __name__ == "__main__":
    main()
