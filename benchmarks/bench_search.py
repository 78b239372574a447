"""How much L2? mlreg's searches against the tools a user would pick instead, side by side.

Two problems, each asked "which L2 rate?":

- `digits`: a 64-256-256-10 MLP on 500 digits, Adam 1e-3, batch 32, up to 100 epochs, early
  stopping (patience 10) on val_data_loss; seeds 0-9.
- `mnist1d`: the MNIST-1D paper's MLP (40-100-100-10) on 1,000 samples of MNIST-1D, the same
  training, over 5 seeds x 2 independent draws of the data (10 pairs).

The truth is a fine grid: 0 and 16 rates from 1e-6 to 1e-1 (three a decade) x all 10 pairs,
trained to early stopping; each rate's true loss is its mean best validation data loss, and a
rate between two of them takes the straight line between their means in log rate.

Contenders, each on the same data and seeds, each in a fresh Python process (its clock starts
before Keras is imported; nothing compiled is shared between them but what JAX's persistent
cache holds, which is cleared before each):

1. `mlreg grid`: the decade grid (0, 1e-6 ... 1e-1), 10 pairs;
2. `mlreg halving`: the decade grid, successive halving, seeds {start = 3, max = 10} (draws: 2 to 5 seeds);
3. `mlreg curve`: a coarse grid (0, 1e-5, 1e-3, 1e-1), halving and a curve search
   (precision 2), the same adaptive seeds;
4. `optuna TPE`: an Optuna study (TPESampler, HyperbandPruner, in-memory storage) over a
   log-uniform L2 in [1e-6, 1e-1], each trial one `model.fit` of the same model on one pair
   (trial k on pair k mod 10), reporting val_data_loss each epoch to the pruner, early stopping
   as above, trials added until it has spent as many run-epochs as `mlreg curve`;
5. `keras-tuner Hyperband`: KerasTuner's Hyperband (max_epochs 100, factor 3, one iteration) over
   the same L2 range, objective val_data_loss, early stopping as above, pair 0.

Printed per contender: run-epochs, wall time, the rate it answers, its true loss's distance
from the fine grid's best in units of the seeds' standard deviation, whether its answer is
within a factor of 2 of the fine grid's best rate, and whether it says it is unsure (mlreg:
settings it could not separate from the best, or a rate not pinned to the precision).

Usage (Optuna and KerasTuner are benchmark-only: `pip install -e '.[bench]'`):
    python benchmarks/bench_search.py [--quick] [--problem digits|mnist1d] [--mlreg-only]
    --quick: 30 epochs, 4 seeds (digits) or 3 seeds x 2 draws (mnist1d), a coarser truth
             (0 and 5 rates, one a decade from 4.64e-6 to 4.64e-2)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = {"training": {"epochs": 100, "batch_size": 32, "learning_rate": 1e-3}, "early_stopping": {"patience": 10}}
PROBLEMS = {
    "digits": {"seeds": 10, "data": {"dataset": "digits", "train_size": 500}, "model": {"hidden": [256, 256]}},
    "mnist1d": {"seeds": 5, "data": {"dataset": "mnist1d", "train_size": 1000, "draws": 2},
                "model": {"hidden": [100, 100]}},
}
FINE = [0.0] + [float(f"{10 ** (e / 3):.3g}") for e in range(-18, -2)]
DECADES = [0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
COARSE = [0.0, 1e-5, 1e-3, 1e-1]
LOW, HIGH = 1e-6, 1e-1


def problem(name: str, quick: bool) -> dict:
    d = json.loads(json.dumps(PROBLEMS[name] | TRAINING))
    d["name"] = f"bench_{name}"
    if quick:
        d["training"]["epochs"] = 30
        d["seeds"] = 3 if "draws" in d["data"] else 4  # adaptive seeds need max > start (2)
    return d


def mlreg_ways(base: dict) -> dict[str, dict]:
    pairs = base["seeds"]
    adaptive = {"start": max(2, math.ceil(0.3 * pairs)), "max": pairs}
    return {
        "mlreg grid": base | {"grid": {"l2": DECADES}},
        "mlreg halving": base | {"grid": {"l2": DECADES}, "seeds": adaptive, "search": {"strategy": "halving"}},
        "mlreg curve": base | {"grid": {"l2": COARSE}, "seeds": adaptive,
                               "search": {"strategy": ["halving", "curve"], "precision": 2}},
    }


# -- the children: one contender each, in a process of its own ------------------------------------------------
def child_mlreg(spec: dict, out: str) -> dict:
    t0 = time.perf_counter()
    from mlreg import run
    from mlreg.spec import ExperimentSpec

    run(ExperimentSpec.from_dict(spec), out=out, progress=False)
    wall = time.perf_counter() - t0
    import pandas as pd

    runs = pd.read_csv(Path(out) / "runs.csv")
    answer = None
    if (Path(out) / "search.jsonl").exists():
        answer = json.loads((Path(out) / "search.jsonl").read_text().splitlines()[-1])
    return {"wall_s": wall, "run_epochs": int(runs["epochs_run"].sum()), "runs": len(runs), "answer": answer}


def _pairs(spec: dict) -> list:
    """The (seed, draw) runs of one L2 value: the plan's runs in order, l2 set per trial."""
    from mlreg.spec import ExperimentSpec

    return ExperimentSpec.from_dict(spec | {"grid": {"l2": [1e-4]}}).expand()


def _fit(run, l2: float, data, epochs: int, callbacks: list) -> tuple[float, int]:
    """One `model.fit` of the problem's model with `l2`, as a user of these tools writes it:
    mlreg's builder and compile (for the `val_data_loss` metric, the loss without the penalty),
    Keras's EarlyStopping. Returns the best val_data_loss and the epochs trained."""
    from dataclasses import replace

    import keras

    from mlreg.backend import seeded
    from mlreg.models import build_model, compile_model

    run = replace(run, model=run.model.model_copy(update={"l2": l2}))
    keras.backend.clear_session()
    with seeded(run.seed):
        model = build_model(run, data)
    compile_model(model, data.task, run.training)
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", patience=run.early_stopping.patience,
                                         restore_best_weights=True)
    history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=epochs,
                        batch_size=run.training.batch_size, verbose=0, callbacks=[stop, *callbacks])
    losses = history.history["val_data_loss"]
    return float(min(losses)), len(losses)


def child_optuna(spec: dict, budget: int) -> dict:
    t0 = time.perf_counter()
    import optuna

    from mlreg.backend import import_keras
    from mlreg.data import for_run

    keras = import_keras()
    runs = _pairs(spec)
    spent = 0

    class Report(keras.callbacks.Callback):
        def __init__(self, trial: optuna.Trial) -> None:
            super().__init__()
            self.trial = trial

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.trial.report(float(logs["val_data_loss"]), epoch)
            if self.trial.should_prune():
                self.model.stop_training = True
                self.pruned = True

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        run = runs[trial.number % len(runs)]
        report = Report(trial)
        best, epochs = _fit(run, trial.suggest_float("l2", LOW, HIGH, log=True), for_run(run),
                            spec["training"]["epochs"], [report])
        spent += epochs
        if getattr(report, "pruned", False):
            raise optuna.TrialPruned()
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.HyperbandPruner(max_resource=spec["training"]["epochs"]))
    while spent < budget:
        study.optimize(objective, n_trials=1)
    return {"wall_s": time.perf_counter() - t0, "run_epochs": spent, "runs": len(study.trials),
            "rate": study.best_params["l2"]}


def child_kerastuner(spec: dict, out: str) -> dict:
    t0 = time.perf_counter()
    from mlreg.backend import import_keras
    from mlreg.data import for_run

    keras = import_keras()
    import keras_tuner as kt

    run = _pairs(spec)[0]
    data = for_run(run)
    spent = [0]

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            spent[0] += 1

    def build(hp: kt.HyperParameters) -> keras.Model:
        from dataclasses import replace

        from mlreg.backend import seeded
        from mlreg.models import build_model, compile_model

        l2 = hp.Float("l2", LOW, HIGH, sampling="log")
        one = replace(run, model=run.model.model_copy(update={"l2": l2}))
        with seeded(one.seed):
            model = build_model(one, data)
        return compile_model(model, data.task, one.training)

    tuner = kt.Hyperband(build, objective=kt.Objective("val_data_loss", "min"), max_epochs=spec["training"]["epochs"],
                         factor=3, hyperband_iterations=1, seed=0, directory=out, project_name="l2")
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", patience=run.early_stopping.patience)
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 batch_size=run.training.batch_size, verbose=0, callbacks=[stop, Count()])
    best = tuner.get_best_hyperparameters(1)[0]
    return {"wall_s": time.perf_counter() - t0, "run_epochs": spent[0], "runs": len(tuner.oracle.trials),
            "rate": best.get("l2")}


# -- the parent -----------------------------------------------------------------------------------------------
def measure(kind: str, *args: object) -> dict:
    cache = Path(os.environ["MLREG_CACHE_DIR"])
    shutil.rmtree(cache, ignore_errors=True)  # every contender compiles its own programs
    proc = subprocess.run([sys.executable, __file__, "--child", kind, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=7200)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def truth(root: Path) -> tuple[dict[float, float], float]:
    """The fine grid's mean best validation loss by rate, and the seeds' standard deviation
    (pooled over the rates)."""
    import pandas as pd

    runs = pd.read_csv(root / "runs.csv")
    by = runs.groupby("l2")["best_val_data_loss"]
    return by.mean().to_dict(), float(math.sqrt((by.std() ** 2).mean()))


def true_loss(rate: float, means: dict[float, float]) -> float:
    positive = sorted(r for r in means if r > 0)
    if rate <= 0:
        return means[0.0]
    rate = min(max(rate, positive[0]), positive[-1])
    hi = next(i for i, r in enumerate(positive) if r >= rate)
    if positive[hi] == rate or hi == 0:
        return means[positive[hi]]
    a, b = positive[hi - 1], positive[hi]
    t = (math.log(rate) - math.log(a)) / (math.log(b) - math.log(a))
    return (1 - t) * means[a] + t * means[b]


def answer_of(result: dict, root: Path) -> tuple[float, str]:
    """The rate a contender answers, and what it says of its certainty."""
    if "rate" in result:
        return result["rate"], "no (one number)"
    answer = result["answer"]
    if answer is None:  # the grid: its best by the mean, tied ones by paired intervals
        from mlreg.analysis.compare import compare
        from mlreg.analysis.results import load_results

        table = compare(load_results(root))
        best = float(table.iloc[0]["l2"])
        paired = compare(load_results(root), baseline=f"l2={best:g}")
        open_ = int((paired["verdict"] == "inconclusive").sum())
        return best, f"yes: {open_} rates not separated" if open_ else "no: separated"
    best = json.loads(answer["best"])["l2"]
    pinned = answer.get("pinned")
    notes = [f"{len(answer['open'])} open"] if answer["open"] else []
    if pinned is not None and not pinned.get("reached", False):
        notes.append("not pinned")
    elif pinned is not None:
        notes.append(f"pinned x{pinned['factor']:.2g}")
    return best, ("yes: " if answer["open"] or (pinned and not pinned.get("reached")) else "no: ") + ", ".join(notes)


def run_problem(name: str, quick: bool, tmp: Path, mlreg_only: bool = False) -> None:
    base = problem(name, quick)
    fine = base | {"grid": {"l2": FINE if not quick else FINE[::3]}}
    results = {"fine grid (truth)": measure("mlreg", json.dumps(fine), tmp / "fine")}
    means, sd = truth(tmp / "fine")
    best_rate = min(means, key=means.get)
    for way, spec in mlreg_ways(base).items():
        results[way] = measure("mlreg", json.dumps(spec), tmp / way.replace(" ", "_"))
        print(f"{name} {way}: {results[way]['wall_s']:.0f} s", file=sys.stderr, flush=True)
    budget = results["mlreg curve"]["run_epochs"]
    if not mlreg_only:
        results["optuna TPE"] = measure("optuna", json.dumps(base), budget)
        results["keras-tuner Hyperband"] = measure("kerastuner", json.dumps(base), tmp / "kt")
    decade = results["mlreg grid"]["run_epochs"]
    print(f"\n{name}: fine grid's best l2 = {best_rate:g} (mean {means[best_rate]:.4f}, seed sd {sd:.4f})")
    print(f"{'contender':<22} {'run-epochs':>10} {'vs grid':>8} {'wall s':>7} {'answer':>9} {'sd off':>7} "
          f"{'x2':>3}  unsure?")
    for way, r in results.items():
        if way.startswith("fine"):
            print(f"{way:<22} {r['run_epochs']:>10,} {'':>8} {r['wall_s']:>7.0f} {best_rate:>9.3g}")
            continue
        rate, unsure = answer_of(r, tmp / way.replace(" ", "_"))
        off = (true_loss(rate, means) - means[best_rate]) / sd
        close = (best_rate == 0 and rate == 0) or (best_rate > 0 and rate > 0 and
                                                   1 / 2 <= rate / best_rate <= 2)
        print(f"{way:<22} {r['run_epochs']:>10,} {decade / r['run_epochs']:>7.1f}x {r['wall_s']:>7.0f} "
              f"{rate:>9.3g} {off:>7.2f} {'yes' if close else 'no':>3}  {unsure}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, args = sys.argv[2], sys.argv[3:]
        spec = json.loads(args[0])
        result = {"mlreg": lambda: child_mlreg(spec, args[1]), "optuna": lambda: child_optuna(spec, int(args[1])),
                  "kerastuner": lambda: child_kerastuner(spec, args[1])}[kind]()
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problem", choices=list(PROBLEMS), nargs="+", default=list(PROBLEMS))
    parser.add_argument("--mlreg-only", action="store_true", help="the truth and mlreg's contenders only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLREG_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in args.problem:
            run_problem(name, args.quick, Path(tmp) / name, args.mlreg_only)


if __name__ == "__main__":
    main()
