"""How much of the grid does a search spend, and does it find the grid's answer?

One plan, three ways, side by side in one run of this script: 6 L2 rates x 4 dropout rates
(24 settings) of a 2x128 MLP on 500 digits, Adam 1e-3, batch 32, 150 epochs, early stopping
(patience 15) on val_data_loss, the fused engine on the default backend:

1. `grid`: every setting, 10 seeds, to early stopping (240 runs);
2. `halving`: successive halving (factor 3, the default first rung), 10 seeds;
3. `halving + seeds`: the same with `seeds = {start = 3, max = 10}`.

Each runs in a fresh Python process (so none profits from another's compiled programs); its
clock starts before Keras is imported and stops when `mlreg.run` returns. Printed: wall time,
run-epochs trained (the `epochs_run` of every recorded run, pruned ones included), both as
ratios against the grid, and whether the search's best setting is the grid's best or one the
grid's paired intervals (10 seeds) call tied with it.

Usage:
    python benchmarks/bench_search.py [--quick]   # --quick: 40 epochs, 5 seeds (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLAN = {
    "name": "search_bench",
    "seeds": 10,
    "data": {"dataset": "digits", "train_size": 500},
    "model": {"hidden": [128, 128]},
    "training": {"epochs": 150, "batch_size": 32, "learning_rate": 1e-3, "engine": "fused"},
    "early_stopping": {"patience": 15},
    "grid": {"l2": [0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1], "dropout": [0.0, 0.2, 0.4, 0.6]},
}
WAYS = {
    "grid": {},
    "halving": {"search": {"strategy": "halving"}},
    "halving + seeds": {"search": {"strategy": "halving"}, "seeds": {"start": 3, "max": 10}},
}


def child(spec: dict, out: str) -> dict:
    t0 = time.perf_counter()
    from mlreg import run
    from mlreg.spec import ExperimentSpec

    report = run(ExperimentSpec.from_dict(spec), out=out, progress=False)
    wall = time.perf_counter() - t0
    import pandas as pd

    runs = pd.read_csv(Path(out) / "runs.csv")
    return {"wall_s": wall, "run_epochs": int(runs["epochs_run"].sum()), "runs": len(runs),
            "answer": report.answer}


def measure(spec: dict, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=3600)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def grid_answer(out: Path) -> tuple[str, set[str]]:
    """The grid's best setting and the settings its paired intervals over seeds call tied with
    it (the interval of the difference holds zero)."""
    from mlreg.analysis.compare import compare
    from mlreg.analysis.results import load_results

    table = compare(load_results(out))
    best = table.iloc[0]
    label = f"l2={best['l2']:g}, dropout={best['dropout']:g}"
    paired = compare(load_results(out), baseline=f"l2={best['l2']:g} dropout={best['dropout']:g}")
    tied = {f"l2={r['l2']:g}, dropout={r['dropout']:g}" for _, r in paired.iterrows()
            if r["verdict"] in ("inconclusive", "baseline")}
    return label, tied


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(json.loads(sys.argv[2]), sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    plan = json.loads(json.dumps(PLAN))
    if args.quick:
        plan |= {"seeds": 5}
        plan["training"]["epochs"] = 40
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for way, extra in WAYS.items():
            spec = plan | extra
            if args.quick and "seeds" in extra:
                spec = spec | {"seeds": {"start": 3, "max": 5}}
            results[way] = measure(spec, Path(tmp) / way.replace(" + ", "_"))
            print(f"{way}: {results[way]['wall_s']:.0f} s", file=sys.stderr, flush=True)
        best, tied = grid_answer(Path(tmp) / "grid")
    base = results["grid"]
    print(f"{'plan':<16} {'wall s':>7} {'x less':>7} {'runs':>5} {'run-epochs':>11} {'x fewer':>8}  best")
    for way, r in results.items():
        found = best if way == "grid" else r["answer"].splitlines()[0].removeprefix("best: ").split(" (mean")[0]
        verdict = "" if way == "grid" else ("= grid's best" if found == best else
                                            "tied with it in the grid" if found in tied else "NOT the grid's answer")
        print(f"{way:<16} {r['wall_s']:>7.0f} {base['wall_s'] / r['wall_s']:>7.2f} {r['runs']:>5} "
              f"{r['run_epochs']:>11,} {base['run_epochs'] / r['run_epochs']:>8.2f}  {found} {verdict}")
    print(f"grid's best: {best}; tied with it by the grid's intervals: {len(tied) - 1} settings")


if __name__ == "__main__":
    main()
