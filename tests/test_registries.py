"""One registry per kind of name a user can write, in `mlreg.spec`; every module that implements
a kind keys its table by exactly those names (issue 15), and `spec` imports nothing of mlreg."""

from __future__ import annotations

import ast

import pytest

from mlreg import backend, data, models, spec
from mlreg.analysis import compare, plots
from tests.conftest import ROOT


@pytest.mark.parametrize(("names", "table"), [
    (spec.BUILDERS, models.BUILDERS),
    (spec.BUILDERS, spec.BUILDER_PARAMS),
    (spec.FREEZE, models.TRAINABLE),
    (spec.OPTIMIZERS, models.OPTIMIZER_CLASSES),
    ([t for t in spec.TASKS if t != "auto"], models.TASK_HEADS),
    (spec.DATASETS, data.DESCRIPTIONS),
    (spec.PLOT_KINDS, plots.KINDS),
    (spec.ADJUSTMENTS, compare.ADJUST),
    (spec.BACKENDS, backend.PACKAGES),
], ids=["builders", "builder params", "freeze", "optimizers", "tasks", "datasets", "plot kinds", "adjustments",
        "backends"])
def test_each_table_covers_exactly_its_names(names, table):
    assert list(table) == list(names)


def test_keras_knows_every_class_a_table_names():
    import keras

    assert all(hasattr(keras.optimizers, c) for c in models.OPTIMIZER_CLASSES.values())
    for _, loss, data_loss, metric in models.TASK_HEADS.values():
        assert hasattr(keras.losses, loss) and hasattr(keras.metrics, data_loss) and hasattr(keras.metrics, metric)


def test_spec_is_the_ground_floor():
    tree = ast.parse((ROOT / "mlreg" / "spec.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("mlreg")]
