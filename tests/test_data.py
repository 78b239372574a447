from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlreg.data import DataError, load
from mlreg.spec import DATASETS, DataSpec


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


# -- resampling, shift, MNIST-1D and the user's files (issue 9) ------------------------------------
def _rows(ds):
    return {tuple(np.round(r, 4)) for r in ds}


def test_k_folds_are_disjoint_stratified_whole_and_deterministic():
    spec = DataSpec(dataset="digits", folds=5, test_size=0.1, train_size=0.5)
    folds = [load(spec, fold=f) for f in range(5)]
    raw = load(DataSpec(dataset="digits", folds=5, test_size=0.1, scale=False), fold=0)
    pool = 1797 - 180  # after the test set
    assert sum(len(f.x_val) for f in folds) == pool and {len(f.x_test) for f in folds} == {180}
    unscaled = [_rows(load(DataSpec(dataset="digits", folds=5, test_size=0.1, scale=False), fold=f).x_val)
                for f in range(5)]
    assert all(not (unscaled[i] & unscaled[j]) for i in range(5) for j in range(i + 1, 5))  # disjoint
    assert unscaled[0] == _rows(raw.x_val)
    for f in folds:  # stratified, and train_size subsamples the training part while the fold stays whole
        assert np.abs(np.bincount(f.y_val, minlength=10) / len(f.y_val) - 0.1).max() < 0.02
        assert len(f.x_train) == round((pool - len(f.x_val)) / 2)
    np.testing.assert_array_equal(load(spec, fold=3).x_val, folds[3].x_val)


def test_repeats_draw_other_splits_and_keep_the_test_set():
    spec = DataSpec(dataset="wine", repeats=3, test_size=0.2)
    a, b, again = load(spec, split=0), load(spec, split=1), load(spec, split=1)
    np.testing.assert_array_equal(b.x_val, again.x_val)
    assert not np.array_equal(a.y_val, b.y_val) or not np.array_equal(a.x_val, b.x_val)
    raw = [load(DataSpec(dataset="wine", repeats=3, test_size=0.2, scale=False), split=s) for s in (0, 1)]
    assert _rows(raw[0].x_test) == _rows(raw[1].x_test)  # the test set never moves
    np.testing.assert_array_equal(load(DataSpec(dataset="wine", test_size=0.2), split=None).y_val,
                                  load(DataSpec(dataset="wine", test_size=0.2, repeats=2), split=0).y_val)


def test_split_sizes_are_exact(tmp_path):
    """val_size 0.1 and test_size 0.2 of 5000 rows gave 500 and 1001 through float rounding."""
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=5000), "y": rng.integers(0, 2, 5000)}).to_csv(tmp_path / "d.csv", index=False)
    ds = load(DataSpec(path=str(tmp_path / "d.csv"), target="y", val_size=0.1, test_size=0.2))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (3500, 500, 1000)


def test_shift_moves_only_the_evaluation_data_by_one_draw():
    base = load(DataSpec(dataset="digits", test_size=0.1))
    one, two = (load(DataSpec(dataset="digits", test_size=0.1, shift=s)) for s in (1.0, 2.0))
    np.testing.assert_array_equal(one.x_train, base.x_train)
    np.testing.assert_array_equal(one.y_val, base.y_val)
    moved = one.x_val - base.x_val
    assert 0.9 < moved.std() < 1.1  # one training standard deviation on scaled features
    np.testing.assert_allclose(two.x_val - base.x_val, 2 * moved, atol=1e-4)  # the same draw, twice as far
    assert not np.allclose(one.x_test, base.x_test)
    np.testing.assert_array_equal(load(DataSpec(dataset="digits", test_size=0.1, shift=0.0)).x_val, base.x_val)


def test_mnist1d_is_generated_with_the_network_blocked(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    ds = load(DataSpec(dataset="mnist1d"))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test), ds.n_features, ds.n_outputs) == (3200, 800, 1000, 40, 10)
    big = load(DataSpec(dataset="mnist1d", n_samples=6000, val_size=0.1))
    assert len(big.x_train) + len(big.x_val) == 4800 and len(big.x_test) == 1200
    state = np.random.get_state()[1][:3].copy()
    load(DataSpec(dataset="mnist1d", n_samples=100))
    assert (np.random.get_state()[1][:3] == state).all()  # its global seeding is undone


def test_npz_with_capital_x_and_its_own_test_set(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(100, 3)), y=rng.integers(0, 3, 100),
             X_test=rng.normal(size=(30, 3)), y_test=rng.integers(0, 3, 30))
    ds = load(DataSpec(path=str(tmp_path / "d.npz"), target="y"))
    assert len(ds.x_test) == 30 and len(ds.x_train) + len(ds.x_val) == 100 and ds.task == "single_label"


def test_test_path_and_paths_relative_to_the_experiment_file(tmp_path):
    from mlreg.spec import load_spec

    rng = np.random.default_rng(0)
    (tmp_path / "exp" / "data").mkdir(parents=True)
    for name, n in (("train.csv", 120), ("test.csv", 40)):
        pd.DataFrame({"a": rng.normal(size=n), "y": rng.integers(0, 2, n)}).to_csv(tmp_path / "exp" / "data" / name,
                                                                                  index=False)
    (tmp_path / "exp" / "e.toml").write_text('[data]\npath = "data/train.csv"\ntest_path = "data/test.csv"\n'
                                             'target = "y"\n')
    run = load_spec(tmp_path / "exp" / "e.toml").expand()[0]
    ds = load(run.data, root=run.root)  # from any working directory
    assert len(ds.x_test) == 40 and len(ds.x_train) + len(ds.x_val) == 120


@pytest.mark.parametrize(("content", "message"), [
    ("", r"d\.csv: the file is empty"),
    ("a,y\n", r"d\.csv: the file has no rows"),
    ("a,y\n1.0,0\n,1\n2.0,\n3.0,1\n", r"d\.csv: 2 rows have missing values \(in columns \['a', 'y'\]\)"),
    ("a,y\n1.0,0\n,1\n3.0,1\n", r"d\.csv: 1 row has missing values \(in columns \['a'\]\)"),
    ("a,y\n1.0,0\ninf,1\n3.0,1\n", r"d\.csv: column 'a' has infinite values \(in 1 row\)"),
    ("a,y\n1.0,0\n2.0,0\n3.0,0\n", r"the target has one class \(0\).*Received: target='y'"),
])
def test_bad_files_are_refused_naming_the_file_and_column(tmp_path, content, message):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load(DataSpec(path=str(tmp_path / "d.csv"), target="y"))


# -- data of any shape (issue 15) ------------------------------------------------------------------
def test_an_image_npz_loads_as_images_without_a_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, size=(200, 8, 8, 1)).astype("float32")
    np.savez(tmp_path / "img.npz", x=x, y=rng.integers(0, 3, 200), x_test=x[:20], y_test=rng.integers(0, 3, 20))
    ds = load(DataSpec(path=str(tmp_path / "img.npz")))
    assert ds.x_train.shape[1:] == (8, 8, 1) and ds.input_shape == (8, 8, 1) and ds.n_features == 64
    assert ds.x_test.shape == (20, 8, 8, 1) and ds.task == "single_label"
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-4)  # per pixel position, as for tables
    glob = load(DataSpec(path=str(tmp_path / "img.npz"), scale="global"))
    assert abs(float(glob.x_train.mean())) < 1e-4 and abs(float(glob.x_train.std()) - 1) < 1e-3
    assert float(np.abs(glob.x_train.mean(0)).max()) > 1e-3  # one mean and std over all values, not per pixel
    same = load(DataSpec(path=str(tmp_path / "img.npz"), shift=1.0, scale="global"))
    np.testing.assert_array_equal(same.x_train, glob.x_train)
    assert 0.9 < float((same.x_val - glob.x_val).std()) < 1.1  # shift in (global) training stds


def test_shape_reshapes_any_source_and_refuses_a_shape_that_does_not_fit(tmp_path):
    digits = load(DataSpec(dataset="digits", shape=(8, 8, 1)))
    flat = load(DataSpec(dataset="digits"))
    assert digits.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(digits.x_val.reshape(len(digits.x_val), -1), flat.x_val)
    assert load(DataSpec(dataset="mnist1d", shape=(40, 1))).x_test.shape[1:] == (40, 1)
    with pytest.raises(DataError, match=r"data\.shape.*\[8, 9\] holds 72 values.*64 features.*Received: shape"):
        load(DataSpec(dataset="digits", shape=(8, 9)))
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(50, 6)), columns=list("abcdef")).assign(y=rng.integers(0, 2, 50)).to_csv(
        tmp_path / "px.csv", index=False)
    assert load(DataSpec(path=str(tmp_path / "px.csv"), target="y", shape=(3, 2))).input_shape == (3, 2)


def test_npz_refusals_name_the_array(tmp_path):
    np.savez(tmp_path / "n.npz", x=np.ones((5, 4, 4)), y=np.arange(4))
    with pytest.raises(DataError, match=r"n\.npz: `x` must hold samples first.*\[5, 4, 4\] and \[4\]"):
        load(DataSpec(path=str(tmp_path / "n.npz")))
    x = np.ones((6, 2, 2))
    x[1, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"nan\.npz: 1 samples of `x` have missing values"):
        load(DataSpec(path=str(tmp_path / "nan.npz")))
    np.savez(tmp_path / "cols.npz", a=np.arange(10.0), b=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"data\.target.*cols\.npz holds no arrays `x` and `y`"):
        load(DataSpec(path=str(tmp_path / "cols.npz")))
    from mlreg.spec import ExperimentSpec, SpecError

    with pytest.raises(SpecError, match=r"data\.target` is required with a CSV"):
        ExperimentSpec.from_dict({"name": "e", "data": {"path": "d.csv"}})


def test_a_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(DataError, match=r"data\.path`: a directory, not a data file"):
        load(DataSpec(path=str(tmp_path), target="y"))


def test_binary_and_huge_files_are_refused_without_reading_them(tmp_path, monkeypatch):
    """Issue 17.8: a 2 GB sparse file named .csv took 46 s and 14.5 GB before 'the file has no rows'."""
    import time

    from mlreg import files

    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(2 << 30)  # 2 GB of zero bytes, sparse on disk
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"big\.csv: not a CSV file: binary content"):
        load(DataSpec(path=str(big), target="y"))
    assert time.perf_counter() - t0 < 2
    pd.DataFrame({"a": np.arange(1000.0), "y": np.arange(1000) % 2}).to_csv(tmp_path / "ok.csv", index=False)
    monkeypatch.setattr(files, "_available_memory", lambda: 10_000)
    with pytest.raises(DataError, match=r"ok\.csv: 0\.0 GB of data, too much for the 0\.0 GB of memory"):
        load(DataSpec(path=str(tmp_path / "ok.csv"), target="y"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad\.npz: not an NPZ file"):
        load(DataSpec(path=str(tmp_path / "bad.npz")))


# -- independent draws of generated data (issue 20) ------------------------------------------------------
@pytest.mark.parametrize("name", ["moons", "classification", "multilabel", "poly", "mnist1d"])
def test_draws_are_independent_samples_of_the_same_size(name):
    spec = DataSpec(dataset=name, draws=3, **({"n_samples": 600} if name == "mnist1d" else {}))
    first, second, third = (load(spec, draw=r) for r in range(3))
    assert first.x_train.shape == second.x_train.shape == third.x_train.shape
    assert first.content_hash == load(DataSpec(**spec.model_dump() | {"draws": None})).content_hash  # draw 0: today's
    from mlreg.data import load_arrays

    rows = [{a.tobytes() for a in np.asarray(load_arrays(spec, draw=r).x)}
            for r in range(3)]
    assert not rows[0] & rows[1] and not rows[1] & rows[2] and not rows[0] & rows[2]  # no sample shared


@pytest.mark.parametrize(("data", "message"), [
    ({"dataset": "digits", "draws": 3}, "data set 'digits' is one fixed sample"),
    ({"path": "x.csv", "target": "y", "draws": 3}, "a file is one fixed sample"),
    ({"dataset": "moons", "draws": 3, "repeats": 2}, "without `repeats` or `folds`"),
])
def test_draws_of_data_without_a_generator_are_refused_with_the_reason(data, message):
    from mlreg.spec import ExperimentSpec, SpecError

    with pytest.raises(SpecError, match=r"Invalid value for `data.draws`.*" + message):
        ExperimentSpec.from_dict({"name": "d", "data": data})


def test_draws_enter_run_ids_and_runs_csv_only_when_set_and_compare_pairs_on_them(tmp_path):
    from mlreg import run
    from mlreg.analysis.compare import compare, format_table
    from mlreg.analysis.results import load_results
    from mlreg.spec import ExperimentSpec
    from tests.conftest import tiny_spec_dict

    plain = ExperimentSpec.from_dict(tiny_spec_dict(data={"dataset": "moons"}))
    drawn = ExperimentSpec.from_dict(tiny_spec_dict(data={"dataset": "moons", "draws": 3}, seeds=2,
                                                    grid={"l2": [0.0, 0.1]}))
    assert [r.draw for r in drawn.expand()][:6] == [0, 1, 2, 0, 1, 2] and drawn.n_runs == 12
    assert plain.expand()[0].run_id == ExperimentSpec.from_dict(tiny_spec_dict(data={"dataset": "moons"})).expand()[
        0].run_id and plain.expand()[0].run_id != drawn.expand()[0].run_id
    run(drawn, out=tmp_path / "o", progress=False)
    runs = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert sorted(runs["draw"].unique()) == [0, 1, 2] and "draw" not in plain.expand()[0].resampling
    table = compare(load_results(tmp_path / "o"), baseline="l2=0")
    assert table.attrs["pairing"] == {"on": ["seed", "draw"], "nadeau_bengio": 0.0}
    assert "independent draws of the data, a plain paired t" in format_table(table)


def test_a_data_set_too_small_to_hold_out_validation_data_is_refused_naming_val_size(tmp_path):
    """Issue 35.9: a one-row regression CSV quoted scikit-learn's `test_size=1`, not the field."""
    pd.DataFrame({"a": [1.0], "y": [2.5]}).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match=r"`data.val_size`: one.csv has 1 sample; .* Received: val_size=0.2"):
        load(DataSpec(path=str(tmp_path / "one.csv"), target="y"))
    pd.DataFrame({"a": np.arange(4.0), "y": np.arange(4.0) + 0.5}).to_csv(tmp_path / "four.csv", index=False)
    with pytest.raises(DataError, match=r"`data.test_size`: four.csv has 4 samples; .* Received: test_size=0.75"):
        load(DataSpec(path=str(tmp_path / "four.csv"), target="y", test_size=0.75))
    assert len(load(DataSpec(path=str(tmp_path / "four.csv"), target="y", val_size=0.5)).x_train) == 2
