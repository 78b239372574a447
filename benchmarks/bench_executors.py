"""Inline, a 2-process pool and a 2-worker Dask LocalCluster, side by side in this one process.

The sweep: 64 runs of a 64-256-256-10 MLP on digits (16 L2 rates x 4 seeds), 30 epochs, no
early stopping, fused engine, packs of 16 (4 packs) — the same packs everywhere, so the
executors differ only in where the packs run. Printed:

- wall time of `mlreg.run` with each executor, and the ratio to inline;
- the driver's time spent writing results (`ResultsStore.append`), per pack;
- the start-up of each executor (starting workers, importing TensorFlow there: a sweep of two
  one-epoch runs, against inline) and its per-pack overhead: a warm worker's round trip for a
  one-run pack, submit to result, minus the same pack's time in this process;
- from those, the projected speed-up on N = 4, 16, 64 machines for packs of T = 10 s: each pack
  costs a worker T plus the per-pack overhead o, and the driver (one process, the only
  writer) w to record it, one pack after another, so `S(N) = T / max((T + o) / N, w)`.

Usage:
    python benchmarks/bench_executors.py [--runs-per-pack 16] [--epochs 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spec(epochs: int, seeds: int, rates: int) -> object:
    import mlreg

    return mlreg.ExperimentSpec.from_dict({
        "name": "bench_executors", "seeds": seeds,
        "data": {"dataset": "digits"},
        "model": {"hidden": [256, 256]},
        "training": {"epochs": epochs, "engine": "fused"},
        "early_stopping": {"enabled": False},
        "grid": {"l2": [0.0] + [10 ** (-5 + 4 * i / max(rates - 2, 1)) for i in range(rates - 1)]},
    })


def timed_run(experiment: object, out: Path, **kw: object) -> tuple[float, float, int]:
    """Wall time of `mlreg.run`, the driver's time in `ResultsStore.append`, and the appends."""
    import mlreg
    from mlreg.store import ResultsStore

    real = ResultsStore.append
    spent = [0.0, 0]

    def append(self: ResultsStore, result: object) -> None:
        t0 = time.perf_counter()
        real(self, result)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - t0
        spent[1] += 1

    ResultsStore.append = append  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        mlreg.run(experiment, out=out, progress=False, **kw)  # type: ignore[arg-type]
        return time.perf_counter() - t0, spent[0], spent[1]
    finally:
        ResultsStore.append = real  # type: ignore[method-assign]


def round_trip(name: str, experiment: object) -> float:
    """A warm worker's submit-to-result time for a one-run pack, minus the pack's time here."""
    from mlreg import engines, executors

    pack = engines.plan(experiment.expand()[:1], "fused")[0][0]  # type: ignore[attr-defined]
    here = []
    for _ in range(3):
        t0 = time.perf_counter()
        executors.train_pack_task(pack)
        here.append(time.perf_counter() - t0)
    if name.startswith("Dask"):
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=50) as cluster, \
                Client(cluster) as client:
            client.submit(executors.dask_task, pack, 1, pure=False).result()  # warm up
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                client.submit(executors.dask_task, pack, 1, pure=False).result()
                times.append(time.perf_counter() - t0)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=executors.setup_worker,
                                 initargs=(1,)) as pool:
            pool.submit(executors.train_pack_task, pack).result()  # warm up
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                pool.submit(executors.train_pack_task, pack).result()
                times.append(time.perf_counter() - t0)
    return min(times) - min(here)  # may come out below zero: a worker's one thread against this process's two


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-per-pack", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlreg.backend import import_keras

    import_keras()
    experiment = spec(args.epochs, seeds=4, rates=args.runs_per_pack)
    few = spec(1, seeds=1, rates=2).with_overrides(hidden=[8])  # two one-epoch runs
    executors = [("inline", {}), ("2 processes", {"workers": 2}), ("Dask LocalCluster, 2 workers",
                                                                    {"dask": "local", "workers": 2})]
    print(f"{len(experiment.expand())} runs (64-256-256-10 on digits, {args.epochs} epochs) in packs of "
          f"{args.runs_per_pack}")
    print(f"  {'executor':<30} {'wall s':>7} {'vs inline':>9} {'driver writing':>16} {'start-up':>9} "
          f"{'per pack':>9}")
    with tempfile.TemporaryDirectory() as d:
        rows: list = []
        for name, kw in executors:
            wall, writing, appends = timed_run(experiment, Path(d) / f"{len(rows)}", max_pack=args.runs_per_pack, **kw)
            w2 = timed_run(few, Path(d) / f"few{len(rows)}", max_pack=1, **kw)[0]
            startup = max(w2 - rows[0][6], 0.0) if rows else 0.0
            per_pack = round_trip(name, few) if rows else 0.0
            rows.append((name, wall, writing, appends, per_pack, startup, w2))
            print(f"  {name:<30} {wall:7.1f} {rows[0][1] / wall:8.2f}x {1000 * writing / appends:11.1f} ms/run "
                  f"{startup:8.2f}s {1000 * per_pack:+7.0f}ms", flush=True)
    writing = max(r[2] / r[3] for r in rows) * args.runs_per_pack  # the driver's serial work per pack
    overhead = max(0.0, *(r[4] for r in rows[1:]))  # start-up is paid once per sweep
    print(f"projected speed-up for packs of T = 10 s (o = {overhead:.2f} s, w = {writing:.3f} s per pack):")
    for n in (4, 16, 64):
        speedup = 10 / max((10 + overhead) / n, writing)
        print(f"  N = {n:>2}: {speedup:5.1f}x  ({speedup / n:.2f} N)")


if __name__ == "__main__":
    main()
