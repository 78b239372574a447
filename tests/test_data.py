from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlreg.data import DATASETS, DataError, load
from mlreg.spec import DataSpec


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_builtin_dataset_loads_offline(name):
    ds = load(DataSpec(dataset=name))
    assert ds.x_train.dtype == np.float32 and ds.x_train.ndim == 2
    assert len(ds.x_val) > 0 and ds.n_features == ds.x_val.shape[1]
    expected = {"breast_cancer": "binary", "moons": "binary", "diabetes": "regression",
                "poly": "regression", "multilabel": "multi_label"}.get(name, "single_label")
    assert ds.task == expected


def test_split_is_seeded_stratified_and_scaled_on_train_only():
    a, b = load(DataSpec(dataset="digits", seed=1)), load(DataSpec(dataset="digits", seed=1))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, load(DataSpec(dataset="digits", seed=2)).x_val)
    train_freq = np.bincount(a.y_train) / len(a.y_train)
    val_freq = np.bincount(a.y_val) / len(a.y_val)
    assert np.abs(train_freq - val_freq).max() < 0.02
    np.testing.assert_allclose(a.x_train.mean(0), 0, atol=1e-4)
    assert abs(a.x_val.mean()) > 1e-4  # validation statistics were not used


def test_train_size_fraction_and_count_keep_the_validation_set():
    full = load(DataSpec(dataset="digits"))
    half = load(DataSpec(dataset="digits", train_size=0.5))
    few = load(DataSpec(dataset="digits", train_size=100))
    assert len(half.x_train) == round(len(full.x_train) / 2) and len(few.x_train) == 100
    assert len(few.x_val) == len(full.x_val)
    with pytest.raises(DataError, match=r"train_size.*Received: train_size=100000"):
        load(DataSpec(dataset="digits", train_size=100000))


def test_test_split():
    ds = load(DataSpec(dataset="wine", val_size=0.2, test_size=0.2))
    assert len(ds.x_test) == pytest.approx(0.2 * 178, abs=1)


def test_user_csv_npz_parquet(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame.a + frame.b > 0, "yes", "no")
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for path in ("d.csv", "d.parquet"):
        ds = load(DataSpec(path=str(tmp_path / path), target="label"))
        assert ds.task == "binary" and ds.n_features == 3 and set(np.unique(ds.y_train)) == {0.0, 1.0}
    np.savez(tmp_path / "r.npz", x=rng.normal(size=(80, 2)), y=rng.normal(size=80))
    ds = load(DataSpec(path=str(tmp_path / "r.npz"), target="y"))
    assert ds.task == "regression" and ds.n_features == 2


def test_missing_target_column_and_file_are_clear_errors(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"data\.target.*no column 'y'.*Received: target='y'"):
        load(DataSpec(path=str(tmp_path / "d.csv"), target="y"))
    with pytest.raises(DataError, match=r"data\.path.*no such file"):
        load(DataSpec(path=str(tmp_path / "nope.csv"), target="y"))


def test_multilabel_user_file(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(100, 4)), columns=list("abcd"))
    frame["t1"], frame["t2"] = (frame.a > 0).astype(int), (frame.b > 0).astype(int)
    frame.to_csv(tmp_path / "m.csv", index=False)
    ds = load(DataSpec(path=str(tmp_path / "m.csv"), target=("t1", "t2")))
    assert ds.task == "multi_label" and ds.n_outputs == 2


def test_scale_off_keeps_features_as_they_are():
    raw = load(DataSpec(dataset="digits", scale=False))
    assert raw.x_train.min() == 0 and raw.x_train.max() == 16
    scaled = load(DataSpec(dataset="digits"))
    np.testing.assert_array_equal(raw.y_val, scaled.y_val)
