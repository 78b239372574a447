"""Does mlreg beat the loop of `model.fit` a user writes? On models nobody here designed.

For each model (builders of tests/zoo, written from Keras's own examples), one sweep: a swept
rate at 4 values x 3 seeds, 20 epochs, early stopping (patience 5, best weights restored), Adam,
batch 32, on the model's data as a user has it (an NPZ file written once by this script):

1. **the user's loop**: a fresh Python process that imports Keras on JAX (never mlreg), loads
   the NPZ, splits it with scikit-learn, and for each setting and seed calls
   `keras.utils.set_random_seed`, builds, compiles and fits with `EarlyStopping` (the script in
   `USER_LOOP`, as a user writes it);
2. **mlreg, fresh**: `mlreg run` on the same file and sweep in a fresh process with an empty
   per-user cache (`MLREG_CACHE_DIR`): the default engine (`auto`) measures and decides;
3. **mlreg, decision kept**: the same with a cache that holds only the decision the fresh run
   measured (`packs.json`), no compiled program: fresh less this is what measuring cost
   (printed as a share of the fresh run);
4. **mlreg, filled**: the same again with the cache the fresh run left (its compiled programs too).

Each is the wall time of the whole process (imports, data, building, compiling, training,
writing), one after the other on this machine. Printed: the four times, measuring's share,
mlreg's speed-up over the loop (loop time / mlreg time) fresh and filled, and the engine `auto`
chose (from the results' `runs.csv`) with its decision line.

Usage:
    python benchmarks/bench_user_loop.py [--only NAME ...] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODELS = {
    # name: (zoo builder, data, swept parameter and its 4 values, fixed parameters)
    "mlp": ("functional_dropout", "digits", ("l2", [0.0, 1e-4, 1e-3, 1e-2]), {"dropout": 0.0}),
    "strided_conv1d": ("text_convnet", "tokens", ("l2", [0.0, 1e-4, 1e-3, 1e-2]), {"dropout": 0.0}),
    "mnist_convnet": ("mnist_convnet", "images", ("dropout", [0.0, 0.1, 0.3, 0.5]), {}),
    "small_xception": ("small_xception", "images", ("dropout", [0.0, 0.1, 0.3, 0.5]), {}),
    "depthwise_residual": ("depthwise_residual", "signals", ("l2", [0.0, 1e-4, 1e-3, 1e-2]), {"dropout": 0.2}),
    "gru": ("gru", "sequences", ("l2", [0.0, 1e-4, 1e-3, 1e-2]), {"dropout": 0.0}),
    "transformer": ("transformer", "sequences", ("dropout", [0.0, 0.1, 0.2, 0.3]), {}),
    "batchnorm_cnn": ("timeseries_fcn", "signals", ("l2", [0.0, 1e-4, 1e-3, 1e-2]), {}),
}

USER_LOOP = '''
import sys, numpy as np, keras
from sklearn.model_selection import train_test_split
sys.path.insert(0, {tests!r})
from zoo import {builder} as builder

z = np.load({npz!r})
x_train, x_val, y_train, y_val = train_test_split(z["x"], z["y"], test_size=0.2, random_state=0, stratify=z["y"])
for value in {values!r}:
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        model = builder(x_train.shape[1:], 10, "softmax", **{fixed!r}, **{{{param!r}: value}})
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
        model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs={epochs}, batch_size=32,
                  callbacks=[stop], verbose=0)
'''


def write_data(kind: str, folder: Path) -> Path:
    """The model's data as a user has it: an NPZ of `x` (the model's sample shape) and `y`."""
    import numpy as np

    path = folder / f"{kind}.npz"
    if path.exists():
        return path
    if kind == "signals":
        from mlreg.datasets import mnist1d

        arrays = mnist1d()
        x = arrays.x.reshape(-1, 40, 1)
        y = arrays.y
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.data.astype("float32"), digits.target
        x = {"digits": x / 16, "images": (x / 16).reshape(-1, 8, 8, 1), "sequences": (x / 16).reshape(-1, 8, 8),
             "tokens": x.astype("int64")}[kind]
    np.savez(path, x=x.astype(x.dtype if kind == "tokens" else "float32"), y=y.astype("int64"))
    return path


def experiment(name: str, npz: Path, epochs: int) -> str:
    builder, _, (param, values), fixed = MODELS[name]
    lines = [f'name = "{name}"', "seeds = 3", "[data]", f'path = "{npz}"', "scale = false",
             "[model]", f'builder = "zoo:{builder}"', *(f"{k} = {v}" for k, v in fixed.items()),
             "[training]", f"epochs = {epochs}", "batch_size = 32", "[early_stopping]", "patience = 5",
             "[grid]", f"{param} = {values}"]
    return "\n".join(lines) + "\n"


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{out.stderr[-3000:]}")
    return wall, out.stderr


def bench(name: str, folder: Path, epochs: int) -> dict:
    builder, kind, (param, values), fixed = MODELS[name]
    npz = write_data(kind, folder)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT / "tests")}
    env.pop("MLREG_PACK_SIZE", None)
    script = folder / f"{name}_loop.py"
    script.write_text(USER_LOOP.format(tests=str(ROOT / "tests"), builder=builder, npz=str(npz), values=values,
                                       fixed=fixed, param=param, epochs=epochs))
    toml = folder / f"{name}.toml"
    toml.write_text(experiment(name, npz, epochs))
    cache = folder / f"{name}_cache"
    mlreg = [sys.executable, "-m", "mlreg", "run", str(toml), "--quiet"]
    loop, _ = timed([sys.executable, str(script)], env, folder)
    fresh, said = timed([*mlreg, "--out", str(folder / f"{name}_fresh")], env | {"MLREG_CACHE_DIR": str(cache)},
                        folder)
    decided_cache = folder / f"{name}_decided_cache"  # the decision kept, no compiled program
    decided_cache.mkdir()
    shutil.copy(cache / "packs.json", decided_cache / "packs.json")
    decided, _ = timed([*mlreg, "--out", str(folder / f"{name}_decided")],
                       env | {"MLREG_CACHE_DIR": str(decided_cache)}, folder)
    filled, _ = timed([*mlreg, "--out", str(folder / f"{name}_filled")], env | {"MLREG_CACHE_DIR": str(cache)},
                      folder)
    import pandas as pd

    engines = pd.read_csv(folder / f"{name}_fresh" / "runs.csv")["engine"].value_counts().to_dict()
    line = next((s.split("mlreg: ", 1)[1] for s in said.splitlines() if "engine auto:" in s), "")
    return {"model": name, "loop_s": loop, "fresh_s": fresh, "decided_s": decided, "filled_s": filled,
            "measuring_share": (fresh - decided) / fresh, "fresh_x": loop / fresh,
            "filled_x": loop / filled, "engine": "/".join(sorted(engines)), "decision": line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.only:
            row = bench(name, Path(d), args.epochs)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | user's loop (JAX) | mlreg, fresh cache | mlreg, decision kept | mlreg, filled | measuring "
          "| x loop, fresh | x loop, filled | engine |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['loop_s']:.1f} s | {r['fresh_s']:.1f} s | {r['decided_s']:.1f} s "
              f"| {r['filled_s']:.1f} s | {r['measuring_share']:.0%} | {r['fresh_x']:.2f}x | {r['filled_x']:.2f}x "
              f"| {r['engine']} |")
    if rows:
        print(f"\nmedian x loop: fresh {statistics.median(r['fresh_x'] for r in rows):.2f}x, "
              f"filled {statistics.median(r['filled_x'] for r in rows):.2f}x; "
              f"least, fresh: {min(r['fresh_x'] for r in rows):.2f}x")
        for r in rows:
            print(f"{r['model']}: {r['decision'] or '(no measurement said)'}")


if __name__ == "__main__":
    main()
