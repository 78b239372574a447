"""Shared fixtures: Agg backend, quiet TensorFlow, a tiny experiment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlreg.backend import CACHE_ENV, choose_backend  # noqa: E402

UNOPTIMIZED = "--xla_backend_optimization_level=0"

if "PYTEST_XDIST_WORKER" not in os.environ:  # the run's own cache, fresh, shared by its workers and subprocesses
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="mlreg-tests-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # every program: processes share even the small
    os.environ["MLREG_PACK_SIZE"] = "estimate"  # no timing of each small model's stack sizes (tests/test_sizing.py)
    # On JAX, XLA compiles without its backend optimizations: the tests' small programs spend most of their
    # time compiling (48 compilations, 14 of a kind test's 20 s), and half of it goes; what they check is
    # what is computed (engines side by side in one process), not how fast (benchmarks/ times the default).
    # Not on TensorFlow: there its unoptimized sums drift past 1e-5 in 20 epochs of BatchNormalization
    if os.environ.get("KERAS_BACKEND", "jax") == "jax":
        os.environ.setdefault("XLA_FLAGS", UNOPTIMIZED)
choose_backend()  # before a test module imports Keras: KERAS_BACKEND, else mlreg's default, as `mlreg run` does


FIRST = ("test_notebooks", "test_zoo", "test_science", "test_executors", "test_fused_engine", "test_regularizer_kinds",
         "test_readme", "test_search", "test_api", "test_tracking")
"""Modules whose tests take longest, started first, so that two workers end together (not one
waiting on a long test that began last)."""


def pytest_collection_modifyitems(items):
    def order(item):
        module = item.path.stem
        return FIRST.index(module) if module in FIRST else len(FIRST)

    items.sort(key=order)


def pytest_sessionfinish(session):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        shutil.rmtree(os.environ[CACHE_ENV], ignore_errors=True)


def tiny_spec_dict(**overrides: object) -> dict:
    """A few-second experiment: 16-unit MLP on 200 digits, 3 epochs."""
    d: dict = {
        "name": "tiny",
        "seeds": 1,
        "data": {"dataset": "digits", "train_size": 200},
        "model": {"hidden": [16]},
        "training": {"epochs": 3, "batch_size": 32},
        "early_stopping": {"patience": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


@pytest.fixture
def xla_optimized(monkeypatch):
    """The processes this test starts compile with XLA's optimizations, as a user's do: they train long
    enough for optimized code to repay its compiling (the overfit notebook: 101 s against 117 s in the
    suite; the other notebook, which compiles more than it trains, took longer so)."""
    flags = os.environ.get("XLA_FLAGS", "").replace(UNOPTIMIZED, "").strip()
    if flags:
        monkeypatch.setenv("XLA_FLAGS", flags)
    else:
        monkeypatch.delenv("XLA_FLAGS", raising=False)


@pytest.fixture
def tiny_spec():
    from mlreg.spec import ExperimentSpec

    return ExperimentSpec.from_dict(tiny_spec_dict())


@pytest.fixture
def cli(capsys):
    """`mlreg ARGS` in this process (no interpreter to start, Keras imported once): returns the
    exit code, stdout and stderr; the signal handlers `main` installs are put back after."""
    import signal

    from mlreg.cli import main

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def mlreg_cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m mlreg ARGS` in a fresh process, its output captured."""
    return subprocess.run([sys.executable, "-m", "mlreg", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


def write_toml(path: Path, d: dict) -> Path:
    from mlreg.spec import dumps_toml

    path.write_text(dumps_toml(d))
    return path


def make_results(root: Path, metric_by_setting: dict, *, param: str = "l2", epochs: int = 4,
                 statuses: dict | None = None) -> Path:
    """A synthetic results directory: `metric_by_setting[value] = [best_val_data_loss per seed]`.

    Train loss is 0.1 below validation; history curves descend to the best value at epoch 2.
    `statuses[(value, seed)]` overrides a run's status (its metrics become empty).
    """
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    cols = columns("single_label", [param])
    store = ResultsStore.open(root, spec_toml=f"name = '{root.name}'\n", columns=cols,
                              manifest={"experiment": root.name, "swept": [param], "description": "synthetic"})
    with store:
        for value, losses in metric_by_setting.items():
            for seed, loss in enumerate(losses):
                run_id = f"{param}{value}-s{seed}"
                status = (statuses or {}).get((value, seed), "ok")
                summary = {"run_id": run_id, "status": status, "seed": seed, param: value, "epochs_run": epochs}
                if status == "ok":
                    summary |= {"best_epoch": 2, "best_val_data_loss": loss, "train_data_loss_at_best": loss - 0.1,
                                "gap": 0.1, "val_accuracy_at_best": 1 - loss / 10, "weight_l2": 10 / (1 + 100 * value),
                                "sparsity": min(value, 1.0), "penalty_at_best": value}
                history = [{"run_id": run_id, "epoch": e, "val_data_loss": loss + abs(e - 2) * 0.05,
                            "train_data_loss": loss - 0.1 / e} for e in range(1, epochs + 1)]
                weights = [{"run_id": run_id, "layer": "output", "bin_left": b / 100, "bin_right": (b + 1) / 100,
                            "count": 10 - abs(b)} for b in range(-5, 5)]
                store.append(RunResult(run_id, status, summary, history if status == "ok" else [],
                               weights if status == "ok" else []))
    return root
