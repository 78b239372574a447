"""Does memory stay flat over thousands of runs in one process?

Keras leaks a few MB per model build in one process (keras-team/keras#17458; a plain loop of
`clear_session`, build, fit grows the same, and `gc.collect()` does not help). This trains
tiny runs (a 16-unit MLP on 200 digits, 3 epochs) through the engines, packed and executed as
`mlreg run` does, in this one process, and prints the resident memory after run 10 and after the last run:

- the fused engine, 1,000 runs (packs of up to 64), then 1,000 more in the same process: the
  first thousand compile a program per pack size (64, 32, 8) and grow by what they hold; the
  target is growth under 100 MB, and none after;
- the keras engine, 100 runs: Keras's own growth, for comparison (the process executor of
  `mlreg run --workers` recycles its workers to bound it).

Usage:
    python benchmarks/bench_memory.py [--runs 1000] [--keras-runs 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench_engines import rss_mb  # this script's folder is on sys.path when it runs

ROOT = Path(__file__).resolve().parents[1]


def measure(engine: str, n_runs: int, label: str = "") -> None:
    import mlreg
    from mlreg import engines, executors

    spec = mlreg.ExperimentSpec.from_dict({
        "name": f"memory_{engine}", "seeds": n_runs // 10,
        "data": {"dataset": "digits", "train_size": 200},
        "model": {"hidden": [16]}, "training": {"epochs": 3},
        "early_stopping": {"enabled": False},
        "grid": {"l2": [i / 1e4 for i in range(10)]},
    })
    runs = spec.expand()
    packs, _ = engines.plan(runs, engine)
    t0, seen, at10 = time.perf_counter(), 0, None
    for result in executors.inline(packs):
        assert result.status == "ok", result.summary.get("error")
        seen += 1
        if seen == 10:
            at10 = rss_mb()
    wall = time.perf_counter() - t0
    grow = rss_mb() - at10
    print(f"  {engine + label:<12} {n_runs:>5} runs  {wall:7.1f} s   RSS after run 10: {at10:6.0f} MB   "
          f"after run {n_runs}: {rss_mb():6.0f} MB   growth {grow:+6.0f} MB ({grow / max(n_runs - 10, 1):+.2f} MB/run)",
          flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000, help="runs through the fused engine")
    p.add_argument("--keras-runs", type=int, default=100, help="runs through the keras engine (more than 10)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlreg.backend import import_keras

    import_keras()
    print("resident memory over many runs in one process (16-unit MLP, 200 digits, 3 epochs)")
    measure("fused", args.runs)
    measure("fused", args.runs, " again")
    measure("keras", args.keras_runs)


if __name__ == "__main__":
    main()
