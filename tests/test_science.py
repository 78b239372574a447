"""Small versions of experiments 1-3, 10 and 12 on digits: does the effect point the way the notes
say (or, for 12, the way the experiment found it)? Real training, 3 seeds each, margins set well
inside what these small versions and the full experiments measured (experiments/README.md), so
that these are not flaky. Claims 1, 3 and 5 on MNIST-1D (16-17) are decided on the committed
results' ten independent draws, with their paired intervals.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

import mlreg
from mlreg.backend import backend
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
    gets 68%. Seed 0 here (0.895 there)."""
    spec = ExperimentSpec.from_dict({
        "name": "cnn", "seeds": [0], "data": {"dataset": "mnist1d", "shape": [40, 1]},
        "model": {"builder": "cnn"}, "training": {"epochs": 40, "batch_size": 100, "learning_rate": 1e-2},
        "early_stopping": {"enabled": False},
    })
    mlreg.run(spec, out=tmp_path / "cnn", progress=False)
    runs = mlreg.load_results(tmp_path / "cnn").runs
    assert set(runs.status) == {"ok"} and set(runs.engine) == {"fused"}
    assert runs.test_accuracy.iloc[0] > 0.85


def _paired(name, by, worse, better, **held):
    """The paired difference `worse - better` of the best validation loss over the committed
    experiment's independent draws: its mean and 95% interval (mlreg.stats)."""
    from mlreg.stats import paired_test

    runs = mlreg.load_results(Path(__file__).resolve().parents[1] / "results" / name).runs
    for k, v in held.items():
        runs = runs[runs[k] == v]
    table = runs.pivot_table(index="draw", columns=by, values="best_val_data_loss")
    assert len(table) == 10 and table.notna().all().all()  # ten independent draws, every run ok
    mean, low, high, _ = paired_test((table[worse] - table[better]).tolist())
    return mean, low, high


def test_mnist1d_mlp_l2_curve_is_u_shaped_and_little_data_wants_more():
    """Claims 1 and 5, decided on MNIST-1D's independent draws (experiments/README.md, 16), on the
    committed results (its full trainings take an hour): at 3,200 samples a little L2 (1e-3) beats
    none and 1e-2 (the U); at 400 the stronger 1e-2 beats 1e-3. The short version that trained
    here (60 epochs, 3 draws) agreed; `test_committed_results_are_trained_again_to_the_same_numbers`
    keeps the committed numbers honest."""
    assert _paired("mnist1d_data_size", "l2", 0.0, 1e-3, train_size=3200)[1] > 0  # the left arm
    assert _paired("mnist1d_data_size", "l2", 1e-2, 1e-3, train_size=3200)[1] > 0  # the right arm
    assert _paired("mnist1d_data_size", "l2", 1e-3, 1e-2, train_size=400)[1] > 0  # little data wants more


def test_mnist1d_cnn_wants_less_regularization_than_the_mlp():
    """Claims 1 and 3 on the CNN (experiments/README.md, 17), on the committed results: L2 1e-3 and
    dropout 0.1 beat none; 1e-2 and dropout 0.4 are worse than none (the MLP's best: L2 3e-3 to
    1e-2, dropout 0.2)."""
    assert _paired("cnn_l2", "l2", 0.0, 1e-3)[1] > 0 and _paired("cnn_l2", "l2", 1e-2, 0.0)[1] > 0.3
    assert _paired("cnn_dropout", "dropout", 0.0, 0.1)[1] > 0 and _paired("cnn_dropout", "dropout", 0.4, 0.0)[1] > 0.1


def test_committed_results_are_trained_again_to_the_same_numbers(tmp_path):
    """Same numbers everywhere: 6 runs of the committed `results/l2_rate` (trained there in packs of
    up to 64 among 180 runs, on another machine) trained again here in one pack of 6 follow the same
    curves. Measured: the validation loss agrees to 2e-7 relative over the first 10 epochs (XLA's
    kernels sum in another order on another CPU or pack size, a float32 rounding); the difference
    then grows chaotically, so that along a flat stretch early stopping may end one run 60 epochs
    apart (83 against 142 on an AMD EPYC, its best loss 9% higher)."""
    root = Path(__file__).resolve().parents[1]
    committed = mlreg.load_results(root / "results" / "l2_rate")
    if set(committed.runs.backend) != {backend()}:
        pytest.skip(f"results/l2_rate was trained on {set(committed.runs.backend)}, this process runs {backend()}")
    fields = tomllib.loads((root / "experiments" / "l2_rate.toml").read_text())
    fields |= {"seeds": [0], "grid": {"l2": [1e-3, 1e-2]}}
    spec = ExperimentSpec.from_dict(fields)
    mlreg.run(spec, out=tmp_path / "again", progress=False, engine="fused")
    again = mlreg.load_results(tmp_path / "again")
    assert len(again.runs) == 6 and set(again.runs.run_id) <= set(committed.runs.run_id)
    for run_id in again.runs.run_id:
        ours = again.history[again.history.run_id == run_id].val_data_loss.to_numpy()[:10]
        theirs = committed.history[committed.history.run_id == run_id].val_data_loss.to_numpy()[:10]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    was = committed.runs.set_index("run_id").loc[again.runs.run_id]
    assert np.median(np.abs(again.runs.best_val_data_loss.to_numpy() / was.best_val_data_loss.to_numpy() - 1)) < 2e-3
