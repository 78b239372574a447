"""How much faster is the fused engine? Side by side, in this one process:

1. `sweep15`: 15 runs (5 L2 rates x 3 seeds) of a 64-256-256-10 MLP on digits (1,437
   training samples), Adam, batch 32, 50 epochs, no early stopping, three ways:
   a plain hand-written loop of `model.fit` calls (the baseline: what a user would write,
   without the honest columns), `mlreg.run(engine="keras")` and `mlreg.run(engine="fused")`.
2. `demo`: the demo's sweep (experiments/l2_rate.toml, early stopping on) at 3 seeds on one
   split (18 runs: the demo of mlreg 0.1), with the keras engine and the fused engine.
3. `table`: throughput of the fused engine (run-epochs per second, wall time per run) for
   packs of K = 1, 4, 16, 64, 256 runs of the sweep15 model, 10 epochs each.

Wall times include everything a user waits for (building models, tracing, writing CSVs).
Usage:
    python benchmarks/bench_engines.py [--only sweep15 demo table] [--epochs 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep15_spec(epochs: int) -> object:
    import mlreg

    return mlreg.ExperimentSpec.from_dict({
        "name": "bench15", "seeds": 3,
        "data": {"dataset": "digits"},
        "model": {"hidden": [256, 256]},
        "training": {"epochs": epochs, "batch_size": 32, "learning_rate": 1e-3},
        "early_stopping": {"enabled": False},
        "grid": {"l2": [0.0, 1e-4, 1e-3, 1e-2, 1e-1]},
    })


def hand_written(spec: object) -> None:
    """The loop a user writes: build, compile, fit with validation data; nothing else."""
    import keras

    from mlreg.data import load

    runs = spec.expand()  # type: ignore[attr-defined]
    data = load(runs[0].data)
    for run in runs:
        keras.backend.clear_session()
        keras.utils.set_random_seed(run.seed)
        reg = keras.regularizers.L2(run.model.l2) if run.model.l2 else None
        model = keras.Sequential([keras.Input((data.n_features,)),
                                  *[keras.layers.Dense(u, activation="relu", kernel_regularizer=reg)
                                    for u in run.model.hidden],
                                  keras.layers.Dense(data.n_outputs, activation="softmax", kernel_regularizer=reg)])
        model.compile(keras.optimizers.Adam(run.training.learning_rate), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=run.training.epochs, batch_size=run.training.batch_size, verbose=0)


def timed(label: str, fn: object, rows: list, baseline: float | None = None) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    wall = time.perf_counter() - t0
    base = baseline if baseline is not None else wall
    rows.append((label, wall, base / wall, rss_mb()))
    print(f"  {label:<44} {wall:8.1f} s  {base / wall:6.1f}x   RSS {rss_mb():6.0f} MB", flush=True)
    return wall


def mlreg_run(spec: object, engine: str, out: Path) -> None:
    import mlreg

    mlreg.run(spec, out=out, engine=engine, progress=False)  # type: ignore[arg-type]


def bench_sweep15(epochs: int, tmp: Path) -> None:
    print(f"sweep15: 15 runs, 64-256-256-10 on digits, {epochs} epochs, batch 32, Adam (x = speed-up)")
    spec = sweep15_spec(epochs)
    rows: list = []
    base = timed("hand-written loop of model.fit", lambda: hand_written(spec), rows)
    timed("mlreg, keras engine (honest columns)", lambda: mlreg_run(spec, "keras", tmp / "k15"), rows, base)
    timed("mlreg, fused engine (honest columns)", lambda: mlreg_run(spec, "fused", tmp / "f15"), rows, base)


def bench_demo(tmp: Path) -> None:
    import mlreg

    d = mlreg.load_spec(ROOT / "experiments" / "l2_rate.toml").to_dict()
    d["seeds"] = 3
    d["data"].pop("repeats", None)
    spec = mlreg.ExperimentSpec.from_dict(d)
    n = len(spec.expand())
    print(f"demo: experiments/l2_rate.toml, {n} runs, early stopping on (x = speed-up over the keras engine)")
    rows: list = []
    base = timed("mlreg, keras engine", lambda: mlreg_run(spec, "keras", tmp / "kd"), rows)
    timed("mlreg, fused engine", lambda: mlreg_run(spec, "fused", tmp / "fd"), rows, base)


def bench_table(tmp: Path) -> None:
    from mlreg.data import load
    from mlreg.engines import fused

    epochs = 30
    runs = sweep15_spec(epochs).with_overrides(epochs=epochs).expand()
    data = load(runs[0].data)
    list(fused.train_pack(runs[:2], data))  # trace once, so every row pays only its own work
    list(fused.train_pack(runs[:3], data))  # and the any-size trace
    print(f"table: fused packs of K runs, sweep15's model, {epochs} epochs (pack wall time, setup included)")
    print(f"  {'K':>4} {'wall s':>8} {'s/run':>7} {'run-epochs/s':>13} {'vs K=1':>7} {'RSS MB':>7}")
    one = None
    for k in (1, 4, 16, 64, 256):
        pack = [r.__class__(**{**r.__dict__, "seed": 100 + i}) for i, r in enumerate((runs * (k // len(runs) + 1))[:k])]
        t0 = time.perf_counter()
        results = list(fused.train_pack(pack, data))
        wall = time.perf_counter() - t0
        assert all(r.status == "ok" for r in results), results[0].summary.get("error")
        rate = k * epochs / wall
        one = one or rate
        print(f"  {k:>4} {wall:8.2f} {wall / k:7.3f} {rate:13.1f} {rate / one:6.1f}x {rss_mb():7.0f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=["sweep15", "demo", "table"], default=["sweep15", "demo", "table"])
    p.add_argument("--epochs", type=int, default=50, help="epochs of sweep15")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlreg.backend import import_keras

    import_keras()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "sweep15" in args.only:
            bench_sweep15(args.epochs, tmp)
        if "demo" in args.only:
            bench_demo(tmp)
        if "table" in args.only:
            bench_table(tmp)


if __name__ == "__main__":
    main()
