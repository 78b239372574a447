"""Small versions of experiments 1-3, 10 and 12: does the effect point the way the notes say
(or, for 12, the way the experiment found it)?

Real training, 3 seeds each, margins set well inside what these small versions and the full
experiments measured (experiments/README.md), so that these are not flaky.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlreg
from mlreg.spec import ExperimentSpec

pytestmark = pytest.mark.slow


def sweep(tmp_path, name, **fields):
    spec = ExperimentSpec.from_dict({
        "name": name, "seeds": 3,
        "data": {"dataset": "digits", "train_size": 300},
        "model": {"hidden": [64]},
        "training": {"epochs": 100},
        "early_stopping": {"patience": 10},
        **fields,
    })
    mlreg.run(spec, out=tmp_path / name, progress=False)
    runs = mlreg.load_results(tmp_path / name).runs
    assert set(runs.status) == {"ok"}
    return runs


def test_l2_too_little_overfits_too_much_underfits(tmp_path):
    runs = sweep(tmp_path, "l2", grid={"l2": [0.0, 1e-3, 1e-1]})
    mean = runs.groupby("l2")[["best_val_data_loss", "train_data_loss_at_best", "gap"]].mean()
    # too much: the training loss itself is high, and validation is worst
    assert mean.loc[0.1, "train_data_loss_at_best"] > 0.3 > 10 * mean.loc[0.0, "train_data_loss_at_best"]
    assert mean.loc[0.1, "best_val_data_loss"] > 1.5 * mean.loc[1e-3, "best_val_data_loss"]
    # too little: the largest gap
    assert mean.loc[0.0, "gap"] > 1.5 * mean.loc[0.1, "gap"]


def test_l1_sparsifies_l2_only_shrinks(tmp_path):
    runs = sweep(tmp_path, "l1_vs_l2", variants=[{"name": "L1", "l1": 1e-3}, {"name": "L2", "l2": 1e-3}])
    sparsity = runs.groupby("variant")["sparsity"].mean()
    # measured here: L1 0.49, L2 0.09 (L2's share is the weights of always-blank pixels,
    # which get no gradient but the penalty's)
    assert sparsity["L1"] > 0.3 and sparsity["L1"] > 3 * sparsity["L2"]
    assert runs[runs.variant == "L1"].sparsity.min() > runs[runs.variant == "L2"].sparsity.max()


def test_dropout_narrows_the_gap_and_too_much_underfits(tmp_path):
    runs = sweep(tmp_path, "dropout", model={"hidden": [128]}, grid={"dropout": [0.0, 0.5, 0.9]})
    mean = runs.groupby("dropout")[["gap", "train_data_loss_at_best"]].mean()
    # measured here: gap 0.217 (0.0), 0.196 (0.5), 0.162 (0.9); training loss 0.005 -> 0.136
    assert mean.loc[0.9, "gap"] < mean.loc[0.5, "gap"] < mean.loc[0.0, "gap"]
    assert mean.loc[0.9, "gap"] < 0.85 * mean.loc[0.0, "gap"]
    assert mean.loc[0.9, "train_data_loss_at_best"] > 5 * mean.loc[0.0, "train_data_loss_at_best"]


def test_shifted_evaluation_data_want_more_l2(tmp_path):
    """Claim 10. Measured here: shift 0: 0.22 (1e-3) against 0.43 (3e-2); shift 1.5: 1.17 against 0.89."""
    runs = sweep(tmp_path, "shift", grid={"shift": [0.0, 1.5], "l2": [1e-3, 3e-2]})
    mean = runs.groupby(["shift", "l2"])["best_val_data_loss"].mean()
    assert mean[(0.0, 3e-2)] > 1.5 * mean[(0.0, 1e-3)]  # without shift, little L2 is best
    assert mean[(1.5, 1e-3)] > 1.15 * mean[(1.5, 3e-2)]  # far from the training data, much L2 is


def test_l2_makes_weights_peaked_not_normal(tmp_path):
    """Claim 12, as the experiment found it. Measured here: excess kurtosis of the second hidden
    layer about -0.9 without L2 (the Glorot-uniform start: -1.2) and 0.5 to 1.5 at 1e-2."""
    spec_runs = sweep(tmp_path, "weights", model={"hidden": [64, 64]}, grid={"l2": [0.0, 1e-2]})
    res = mlreg.load_results(tmp_path / "weights")
    w = res.weights[(res.weights.layer == "hidden_2") & np.isfinite(res.weights.bin_left)
                    & np.isfinite(res.weights.bin_right)]
    kurtosis = {}
    for run_id, part in w.groupby("run_id"):
        centre, n = (part.bin_left + part.bin_right).to_numpy() / 2, part["count"].to_numpy(float)
        mean = (n * centre).sum() / n.sum()
        var = (n * (centre - mean) ** 2).sum() / n.sum()
        kurtosis[run_id] = (n * (centre - mean) ** 4).sum() / n.sum() / var**2 - 3
    by_rate = spec_runs.assign(k=spec_runs.run_id.map(kurtosis)).groupby("l2")["k"]
    assert by_rate.max()[0.0] < -0.6  # still near the uniform start
    assert by_rate.min()[1e-2] > 0.3  # peaked, heavier-tailed than a normal (0)


def test_the_mnist1d_cnn_learns_what_the_paper_says(tmp_path):
    """Issue 15: `builder = "cnn"` is the MNIST-1D paper's CNN (94% test accuracy there, on 4000
    training samples). Measured here at 40 epochs on mlreg's 3200: 0.895, 0.900, 0.918 over 3
    seeds (and 90.7% +- 1.3% at 150 epochs over 5; 92.0% with val_size 0.05); the paper's MLP
    gets 68%."""
    spec = ExperimentSpec.from_dict({
        "name": "cnn", "seeds": 3, "data": {"dataset": "mnist1d", "shape": [40, 1]},
        "model": {"builder": "cnn"}, "training": {"epochs": 40, "batch_size": 100, "learning_rate": 1e-2},
        "early_stopping": {"enabled": False},
    })
    mlreg.run(spec, out=tmp_path / "cnn", progress=False)
    runs = mlreg.load_results(tmp_path / "cnn").runs
    assert set(runs.status) == {"ok"} and set(runs.engine) == {"fused"}
    assert runs.test_accuracy.mean() > 0.85 and runs.test_accuracy.min() > 0.82
