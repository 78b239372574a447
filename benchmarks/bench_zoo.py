"""The fused engine against the keras engine on the zoo (tests/zoo: models from Keras's own
examples), side by side in one run of this script.

For each zoo model, a 4-rate x 4-seed grid (16 runs) of its swept parameter (`dropout` 0, 0.1,
0.2, 0.5 or `l2` 0, 1e-4, 1e-3, 1e-2) on the zoo's data, `epochs` epochs, no early stopping,
trained by `mlreg.run` twice in this process: `engine = "keras"` (one `model.fit` a run) and
`engine = "auto"` (the fused engine where it can). Wall times include everything a user waits
for after Keras is imported: checking the builder, building the models, tracing and compiling,
training, writing the CSVs. × is keras / auto.

Usage:
    python benchmarks/bench_zoo.py [--epochs 10] [--only mnist_convnet gru ...] [--backend jax]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATES = {"dropout": [0.0, 0.1, 0.2, 0.5], "l2": [0.0, 1e-4, 1e-3, 1e-2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", nargs="+", metavar="MODEL")
    parser.add_argument("--backend", choices=["jax", "tensorflow"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import mlreg
    from mlreg.backend import choose_backend

    backend = choose_backend(args.backend)
    from tests import zoo

    names = args.only or list(zoo.ZOO)
    print(f"{len(names)} zoo models, 4 rates x 4 seeds, {args.epochs} epochs, {backend} backend")
    print(f"{'model':<26}{'keras engine':>14}{'auto':>10}{'x':>7}  engine of auto")
    for name in names:
        entry = zoo.ZOO[name]
        param = next(iter(entry.grid))
        spec = {"name": name, "seeds": 4, "data": entry.data, "model": {"builder": f"tests.zoo:{name}", **entry.model},
                "training": {"epochs": args.epochs, "batch_size": 32}, "early_stopping": {"enabled": False},
                "grid": {param: RATES[param]}}
        times, engines = {}, set()
        for engine in ("keras", "auto"):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                mlreg.run(mlreg.ExperimentSpec.from_dict(spec), out=out, engine=engine, progress=False)
                times[engine] = time.perf_counter() - t0
                if engine == "auto":
                    engines = set(mlreg.load_results(out).runs["engine"])
        print(f"{name:<26}{times['keras']:>13.1f}s{times['auto']:>9.1f}s{times['keras'] / times['auto']:>6.1f}x"
              f"  {', '.join(sorted(engines))}", flush=True)


if __name__ == "__main__":
    main()
