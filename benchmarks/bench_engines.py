"""How much faster is the fused engine? Side by side, in one run of this script:

1. `sweep15`: 15 runs (5 L2 rates x 3 seeds) of a 64-256-256-10 MLP on digits (1,437 training
   samples), Adam, batch 32, 50 epochs, no early stopping.
2. `conv15`: 15 runs (5 L2 rates x 3 seeds) of a user-written Functional Conv1D builder (the
   MNIST-1D paper's CNN shape with Dropout 0.1) on mnist1d as [40, 1] sequences, Adam 1e-2,
   batch 100, 30 epochs, no early stopping.
   Each sweep four ways: the loop of `model.fit` calls a user writes (no honest columns) on
   TensorFlow (the baseline) and on JAX, and `mlreg.run(engine="fused")` on each backend.
3. `demo`: experiments/l2_rate.toml at 3 seeds on one split (18 runs, early stopping: the demo
   of mlreg 0.1), keras engine against fused engine, on the default backend.
4. `table`: throughput of the fused engine on the default backend (run-epochs per second) by
   pack size, K = 1, 4, 16, 64, 256 runs of sweep15's model and of conv15's, against the
   ceiling this machine's measured matmul speed puts on it; and the stack size the engine picks
   for each (`mlreg.engines.fused.sizing`: its estimate from the model's bytes per run against
   the cache, and the timings it chose by).
5. `cache`: JAX's persistent compilation cache (`MLREG_CACHE_DIR`): the demo (18 runs) and a
   4-round search (halving with rungs, then seeds added twice) each run twice in fresh
   processes, the second finding the first's compiled programs, against the cache turned off.

A Keras backend is chosen once per process, so every measurement runs in a fresh Python
process of its own (started by this one, one after the other), each with an empty cache of its
own (`MLREG_CACHE_DIR`) unless the measurement is about the cache; its clock starts after Keras
is imported and stops when the last run is written. Wall times include everything else a user
waits for: loading data, building models, tracing and compiling, training, writing CSVs.
Where the engine has not seen a model on this machine yet, its first pack also times a stack
size or three (`sizing`): a few seconds, once per model and machine, included.

Usage:
    python benchmarks/bench_engines.py [--only sweep15 conv15 demo table cache] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONV = "bench_engines:conv1d"  # the user-written builder of conv15, found on sys.path as a user's module is


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def conv1d(input_shape, n_outputs, output_activation, l2, dropout):
    """What a user writes for MNIST-1D: three strided convolutions of 25 filters with Dropout,
    a linear head; L2 on every kernel."""
    import keras

    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape)
    x = inputs
    for kernel in (5, 3, 3):
        x = keras.layers.Conv1D(25, kernel, strides=2, padding="same", activation="relu", kernel_regularizer=reg)(x)
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation, kernel_regularizer=reg)(x))


SWEEPS = {
    "sweep15": {"name": "sweep15", "seeds": 3, "data": {"dataset": "digits"}, "model": {"hidden": [256, 256]},
                "training": {"epochs": 50, "batch_size": 32, "learning_rate": 1e-3},
                "early_stopping": {"enabled": False},
                "grid": {"l2": [0.0, 1e-4, 1e-3, 1e-2, 1e-1]}},
    "conv15": {"name": "conv15", "seeds": 3, "data": {"dataset": "mnist1d", "shape": [40, 1]},
               "model": {"builder": CONV, "dropout": 0.1},
               "training": {"epochs": 30, "batch_size": 100, "learning_rate": 1e-2},
               "early_stopping": {"enabled": False},
               "grid": {"l2": [0.0, 1e-4, 1e-3, 1e-2, 1e-1]}},
}


# -- what one child process measures ------------------------------------------------------------
def hand_written(spec: dict) -> None:
    """The loop a user writes: build, compile, fit with validation data; nothing else."""
    import keras

    import mlreg
    from mlreg.data import load
    from mlreg.models import build_model

    runs = mlreg.ExperimentSpec.from_dict(spec).expand()
    data = load(runs[0].data)
    for run in runs:
        keras.backend.clear_session()
        keras.utils.set_random_seed(run.seed)
        model = build_model(run, data)  # the same model as mlreg builds
        model.compile(keras.optimizers.Adam(run.training.learning_rate), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=run.training.epochs, batch_size=run.training.batch_size, verbose=0)


def mlreg_run(spec: dict, engine: str) -> None:
    import mlreg

    with tempfile.TemporaryDirectory() as d:
        mlreg.run(mlreg.ExperimentSpec.from_dict(spec), out=Path(d) / "out", engine=engine, progress=False)


def throughput(spec: dict, k: int, epochs: int) -> dict:
    """One fused pack of `k` runs (distinct seeds) of a sweep's model: run-epochs per second, and
    the model's floating-point work per run-epoch."""
    from dataclasses import replace

    import mlreg
    from mlreg.data import load
    from mlreg.engines import fused

    base = mlreg.ExperimentSpec.from_dict(spec).with_overrides(epochs=epochs).expand()[0]
    data = load(base.data, root=base.root)
    list(fused.train_pack([replace(base, seed=1000 + i) for i in range(k)], data))  # compiled once, for this k
    pack = [replace(base, seed=i) for i in range(k)]
    t0 = time.perf_counter()
    results = list(fused.train_pack(pack, data))
    wall = time.perf_counter() - t0
    assert all(r.status == "ok" for r in results), results[0].summary.get("error")
    return {"wall": wall, "rate": k * epochs / wall, "flop": run_epoch_flop(base, data), "rss": rss_mb()}


def picks(spec: dict) -> dict:
    """The stack size the engine picks for a sweep's model on this machine (its first pack of 64
    runs, 2 epochs), with the estimate and the timings it chose by (`packs.json`)."""
    from dataclasses import replace

    import mlreg
    from mlreg.backend import cache_dir
    from mlreg.data import load
    from mlreg.engines import fused

    base = mlreg.ExperimentSpec.from_dict(spec).with_overrides(epochs=2).expand()[0]
    data = load(base.data, root=base.root)
    list(fused.train_pack([replace(base, seed=i) for i in range(64)], data))
    return json.loads((cache_dir() / "packs.json").read_text()).popitem()[1]


def run_epoch_flop(run: object, data: object) -> float:
    """Floating-point operations of one run-epoch: a forward (2 per multiply-add) and a backward
    (twice the forward) pass over the training set, and a forward pass over the training and
    validation sets for the honest columns."""
    from mlreg.backend import import_keras
    from mlreg.models import build_model

    keras = import_keras()
    model = build_model(run, data)  # type: ignore[arg-type]
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D):
            positions = 1
            for d in layer.output.shape[1:-1]:
                positions *= d
            size = 1
            for d in layer.kernel.shape:
                size *= d
            macs += positions * size
    n_train, n_val = len(data.x_train), len(data.x_val)  # type: ignore[attr-defined]
    return 2 * macs * (3 * n_train + n_train + n_val)


def matmul_peak() -> float:
    """GFLOP/s of a large float32 matrix product on this machine (the backend's own)."""
    from mlreg.backend import import_keras

    keras = import_keras()
    a = keras.random.normal((2048, 2048))
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        c = keras.ops.matmul(a, a)
        float(keras.ops.sum(c))
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    return best


def child(task: dict) -> dict:
    """Runs one measurement in this (fresh) process and returns what it measured."""
    sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
    from mlreg.backend import choose_backend, import_keras

    choose_backend(task["backend"])
    import_keras()
    t0 = time.perf_counter()
    if task["what"] == "loop":
        hand_written(task["spec"])
    elif task["what"] == "mlreg":
        mlreg_run(task["spec"], task["engine"])
    elif task["what"] == "throughput":
        return throughput(task["spec"], task["k"], task["epochs"])
    elif task["what"] == "peak":
        return {"gflops": matmul_peak()}
    elif task["what"] == "picks":
        return picks(task["spec"])
    return {"wall": time.perf_counter() - t0, "rss": rss_mb()}


def measure(task: dict, cache: str | None = None) -> dict:
    """`child(task)` in a fresh Python process, with `cache` as mlreg's cache (`off`, a folder
    shared with other measurements), else an empty one of its own."""
    with tempfile.TemporaryDirectory() as own:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLREG_CACHE_DIR": cache or own}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True,
                             env=env, cwd=Path(__file__).parent)
    if out.returncode:
        raise RuntimeError(f"{task['what']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the report ---------------------------------------------------------------------------------------
def bench_sweep(name: str, quick: bool) -> None:
    spec = dict(SWEEPS[name])
    if quick:
        spec["training"] = {**spec["training"], "epochs": 5}
    print(f"{name}: {_describe(name)} (x = speed-up over the TensorFlow loop, and over the JAX loop)")
    rows = [("hand-written loop of model.fit, tensorflow", {"what": "loop", "backend": "tensorflow"}),
            ("hand-written loop of model.fit, jax", {"what": "loop", "backend": "jax"}),
            ("mlreg, fused engine, tensorflow", {"what": "mlreg", "backend": "tensorflow", "engine": "fused"}),
            ("mlreg, fused engine, jax", {"what": "mlreg", "backend": "jax", "engine": "fused"})]
    base = {}
    for label, task in rows:
        result = measure({**task, "spec": spec})
        wall = result["wall"]
        if task["what"] == "loop":
            base[task["backend"]] = wall
        tf_x, jax_x = base["tensorflow"] / wall, base.get("jax", wall) / wall
        print(f"  {label:<46} {wall:7.1f} s  {tf_x:5.1f}x  {jax_x:5.1f}x   RSS {result['rss']:6.0f} MB", flush=True)


def _describe(name: str) -> str:
    return {"sweep15": "15 runs, 64-256-256-10 on digits, 50 epochs, batch 32, Adam",
            "conv15": "15 runs of a user's Conv1D builder on mnist1d [40, 1], Dropout 0.1, 30 epochs, batch 100"}[name]


def bench_demo(backend: str) -> None:
    import mlreg

    d = mlreg.load_spec(ROOT / "experiments" / "l2_rate.toml").to_dict()
    d["seeds"] = 3
    d["data"].pop("repeats", None)
    print(f"demo: experiments/l2_rate.toml, 18 runs, early stopping on, {backend} (x = speed-up over the keras engine)")
    keras_wall = measure({"what": "mlreg", "backend": backend, "engine": "keras", "spec": d})["wall"]
    fused_wall = measure({"what": "mlreg", "backend": backend, "engine": "fused", "spec": d})["wall"]
    print(f"  {'mlreg, keras engine':<46} {keras_wall:7.1f} s  {1:5.1f}x")
    print(f"  {'mlreg, fused engine':<46} {fused_wall:7.1f} s  {keras_wall / fused_wall:5.1f}x", flush=True)


def bench_table(backend: str, quick: bool) -> None:
    peak = measure({"what": "peak", "backend": backend})["gflops"]
    print(f"table: fused packs of K runs on {backend}; this machine's float32 matmul peak: {peak:.0f} GFLOP/s")
    print(f"  {'model':<8} {'K':>4} {'wall s':>8} {'run-epochs/s':>13} {'GFLOP/s':>8} {'of peak':>8} {'ceiling':>8} "
          f"{'RSS MB':>7}")
    for name, epochs in (("sweep15", 10), ("conv15", 5)):
        for k in (1, 4, 16) if quick else (1, 4, 16, 64, 256):
            r = measure({"what": "throughput", "backend": backend, "spec": SWEEPS[name], "k": k, "epochs": epochs})
            gflops = r["rate"] * r["flop"] / 1e9
            print(f"  {name:<8} {k:>4} {r['wall']:8.2f} {r['rate']:13.1f} {gflops:8.1f} {gflops / peak:7.0%} "
                  f"{peak * 1e9 / r['flop']:8.0f} {r['rss']:7.0f}", flush=True)
        chosen = measure({"what": "picks", "backend": backend, "spec": SWEEPS[name]})
        rates = sorted(chosen["run_epochs_per_s"].items(), key=lambda kv: int(kv[0]))
        timed = ", ".join(f"K={k}: {v:g}" for k, v in rates)
        print(f"  {name:<8} picks K={chosen['k']}: {chosen['bytes_per_run'] / 2**20:.2f} MB a run, estimate "
              f"K={chosen['estimate']}; timed run-epochs/s {timed}", flush=True)


def bench_cache(backend: str, quick: bool) -> None:
    """The demo and a 4-round search, twice each in fresh processes, with and without the cache."""
    import mlreg

    demo = mlreg.load_spec(ROOT / "experiments" / "l2_rate.toml").to_dict()
    demo["seeds"] = 3
    demo["data"].pop("repeats", None)
    search = demo | {"seeds": {"start": 2, "max": 8}, "search": {"strategy": "halving"}}
    if quick:
        for d in (demo, search):
            d["training"] = d["training"] | {"epochs": 10}
    print(f"cache: JAX's persistent compilation cache, {backend}; each plan run twice, in fresh processes")
    for name, spec in (("demo, 18 runs", demo), ("4-round search", search)):
        with tempfile.TemporaryDirectory() as shared:
            cold = measure({"what": "mlreg", "backend": backend, "engine": "auto", "spec": spec}, cache=shared)["wall"]
            warm = measure({"what": "mlreg", "backend": backend, "engine": "auto", "spec": spec}, cache=shared)["wall"]
        off = measure({"what": "mlreg", "backend": backend, "engine": "auto", "spec": spec}, cache="off")["wall"]
        print(f"  {name:<16} no cache {off:6.1f} s   first run {cold:6.1f} s   second run {warm:6.1f} s "
              f"({off / warm:.2f}x less than without)", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=["sweep15", "conv15", "demo", "table", "cache"],
                   default=["sweep15", "conv15", "demo", "table", "cache"])
    p.add_argument("--quick", action="store_true", help="a few epochs, small packs: check that it runs")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlreg.backend import DEFAULT_BACKEND

    for name in ("sweep15", "conv15"):
        if name in args.only:
            bench_sweep(name, args.quick)
    if "demo" in args.only:
        bench_demo(DEFAULT_BACKEND)
    if "table" in args.only:
        bench_table(DEFAULT_BACKEND, args.quick)
    if "cache" in args.only:
        bench_cache(DEFAULT_BACKEND, args.quick)


if __name__ == "__main__":
    main()
