"""One registry per kind of name a user can write, in `mlreg.spec`; every module that implements
a kind keys its table by exactly those names (issue 15), and `spec` imports nothing of mlreg."""

from __future__ import annotations

import ast

import pytest

from mlreg import backend, datasets, models, spec, tasks
from mlreg.analysis import compare, plots
from mlreg.search import driver
from tests.conftest import ROOT


@pytest.mark.parametrize(("names", "table"), [
    (spec.BUILDERS, models.BUILDERS),
    (spec.BUILDERS, spec.BUILDER_PARAMS),
    (spec.FREEZE, models.TRAINABLE),
    (spec.OPTIMIZERS, models.OPTIMIZER_CLASSES),
    ([t for t in spec.TASKS if t != "auto"], tasks.TABLE),
    (spec.DATASETS, datasets.DATASETS),
    (spec.PLOTS, plots.PLOTS),
    (spec.ADJUSTMENTS, compare.ADJUST),
    (spec.BACKENDS, backend.PACKAGES),
    ([s for s in spec.STRATEGIES if s != "grid"], driver.NAMED),
], ids=["builders", "builder params", "freeze", "optimizers", "tasks", "datasets", "plot kinds", "adjustments",
        "backends", "strategies"])
def test_each_table_covers_exactly_its_names(names, table):
    assert list(table) == list(names)


def test_keras_knows_every_class_a_table_names():
    import keras

    assert all(hasattr(keras.optimizers, c) for c in models.OPTIMIZER_CLASSES.values())
    for task in tasks.TABLE.values():
        assert hasattr(keras.losses, task.loss) and hasattr(keras.metrics, task.loss)
        assert hasattr(keras.losses, task.per_sample_loss) and hasattr(keras.metrics, task.metric_class)


def _imports(module):
    """What a module (or a package, all its files) imports of mlreg, itself left out."""
    path = ROOT / "mlreg" / module
    files = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    imported = []
    for tree in (ast.parse(f.read_text()) for f in files):
        imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [f"mlreg.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     and n.module == "mlreg" for a in n.names]
    return {m for m in imported if m and m.startswith("mlreg") and not m.startswith(f"mlreg.{module}.")}


def test_spec_is_the_ground_floor():
    # errors below everything; memory (the objects an experiment names) on it; spec on both
    assert _imports("errors") == set()
    assert _imports("memory") == {"mlreg.errors"}
    assert _imports("spec") == {"mlreg", "mlreg.memory", "mlreg.errors"}
    assert len(list((ROOT / "mlreg" / "spec").glob("*.py"))) >= 6  # a package along its seams


@pytest.mark.parametrize("name", list(tasks.TABLE))
def test_each_tasks_per_sample_forms_average_to_kerass_own(name):
    """The fused engine's per-sample loss and metric of a task, averaged, are what `model.fit`'s
    classes measure: the one table says both."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    task = tasks.TABLE[name]
    p = rng.uniform(0.05, 0.95, (32, 3)).astype("float32")
    if name == "single_label":
        p, y = p / p.sum(1, keepdims=True), rng.integers(0, 3, (32, 1)).astype("float32")
    else:
        y = rng.integers(0, 2, (32, 3)).astype("float32") if name != "regression" else rng.normal(size=(32, 3))
    for per_sample, keras_class in ((getattr(keras.losses, task.per_sample_loss), getattr(keras.metrics, task.loss)),
                                    (task.per_sample_metric, getattr(keras.metrics, task.metric_class))):
        metric = keras_class()
        metric.update_state(y, p)
        assert float(np.mean(per_sample(keras.ops.convert_to_tensor(y.astype("float32")), p))) == pytest.approx(
            float(metric.result()), rel=1e-5)


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "mlreg").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_make_experiments_runs_every_experiment_file_and_each_is_valid():
    """`make experiments` (experiments/run_all.py) runs every experiment file, itself or through the script
    that trains it (cross_validation.py trains cv_*.toml); each validates."""
    import sys

    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    files = sorted(p.stem for p in (ROOT / "experiments").glob("*.toml"))
    scripts = {d for dirs in run_all.SCRIPTS.values() for d in dirs}
    assert sorted(set(run_all.EXPERIMENTS) | (scripts & set(files))) == files
    for name in files:
        spec.load_spec(ROOT / "experiments" / f"{name}.toml").expand()
