"""Packs sized by measurement (issue 25): the estimate from a model's bytes per run against the
cache, a timing the first time a model is seen on a machine, the answer kept per user."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlreg.engines.fused import sizing
from mlreg.engines.fused.packing import MAX_PACK, MIN_STACK


def test_the_estimate_fits_the_runs_in_the_cache():
    assert sizing.estimate(1 << 20, cache=32 << 20) == 32  # 1 MiB a run, 32 MiB of cache
    assert sizing.estimate(3 << 20, cache=32 << 20) == 8  # 10 fit: the power of two below
    assert sizing.estimate(100, cache=32 << 20) == MAX_PACK and sizing.estimate(1 << 30, cache=1) == MIN_STACK


def test_the_bytes_per_run_count_values_slots_and_a_batch_of_activations():
    import keras

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(20), keras.layers.Dense(3)])
    params = 10 * 20 + 20 + 20 * 3 + 3
    assert sizing.bytes_per_run(model, 32, "adam") == 4 * (params * 5 + 2 * 32 * (20 + 3))
    assert sizing.bytes_per_run(model, 32, "sgd") == 4 * (params * 3 + 2 * 32 * (20 + 3))


@pytest.fixture(autouse=True)
def _measured(monkeypatch):
    monkeypatch.delenv(sizing.ENV, raising=False)  # the suite's estimate-only setting, off here


def test_the_first_choice_is_timed_and_kept_and_the_next_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    timed = []

    def seconds(k):  # 16 is the fastest per run-epoch, 32 nearly so (60 runs train at them as 4 x 15, 2 x 30)
        timed.append(k)
        return 1.0, {8: 0.010, 15: 0.006, 30: 0.0062}[k]

    per_run = (32 << 20) // 16 if sizing.cache_bytes() == 32 << 20 else sizing.cache_bytes() // 16
    assert sizing.choose("model-a", per_run, 60, seconds) == sizing.Choice(16)
    assert sorted(timed) == [8, 15, 30]  # the sizes the pack's first stack trains at: their compilations serve it
    kept = json.loads((tmp_path / "packs.json").read_text())["model-a"]
    assert kept["k"] == 16 and kept["estimate"] == 16 and set(kept["run_epochs_per_s"]) == {"8", "16", "32"}
    assert sizing.choose("model-a", per_run, 60, lambda k: pytest.fail("timed again")).k == 16
    assert sizing.choose("model-a", per_run, 12, lambda k: pytest.fail("timed again")).k == 12  # no more than the runs


def test_sizing_never_times_a_stack_larger_than_the_pack_and_stops_where_larger_is_slower(tmp_path, monkeypatch):
    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    timed = []

    def seconds(k):
        timed.append(k)
        return 0.5, {5: 0.01, 6: 0.01, 8: 0.01, 12: 0.02, 15: 0.02, 30: 0.005}[k]

    small = sizing.cache_bytes() // 16  # the estimate is 16: 8, 16 and 32 are the candidates
    assert sizing.choose("model-f", small, 60, seconds).k == 8
    assert timed == [8, 15]  # 16 (as 4 x 15) was slower than 8: 32 is not timed
    timed.clear()
    assert sizing.choose("model-g", small, 12, seconds).k == 8
    assert timed == [6, 12]  # 16 and 32 are larger than the pack's 12 runs; at most 8 trains them as 6 + 6
    timed.clear()
    sizing.choose("model-h", small, 5, seconds, alone=lambda: (1.0, 1.0))
    assert timed == [5]


def test_a_stack_size_set_by_hand_or_the_estimate_alone_times_nothing(monkeypatch):
    monkeypatch.setenv(sizing.ENV, "16")
    assert sizing.choose("model-e", 1 << 20, 60, lambda k: pytest.fail("timed")).k == 16
    monkeypatch.setenv(sizing.ENV, "estimate")
    expected = min(sizing.estimate(1 << 20), 60)  # never more than the runs (64 where the cache holds 64 MiB)
    assert sizing.choose("model-e", 1 << 20, 60, lambda k: pytest.fail("timed")).k == expected


def test_nothing_is_timed_when_there_is_no_choice_or_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    assert sizing.choose("model-b", 1 << 20, MIN_STACK, lambda k: pytest.fail("timed")).k == MIN_STACK
    small = sizing.cache_bytes() // 1000  # the estimate is 64, and 32 and 128 beside it: for 9 runs, all are 9
    assert sizing.choose("model-d", small, 9, lambda k: pytest.fail("timed")).k == 9
    assert not (tmp_path / "packs.json").exists()
    monkeypatch.setenv("MLREG_CACHE_DIR", "off")
    largest = min(2 * sizing.estimate(1 << 20), 40)  # twice the estimate, or all 40 at once
    assert sizing.choose("model-c", 1 << 20, 40, lambda k: (0.0, 1.0 / k)).k == largest


def test_auto_trains_alone_what_measures_faster_alone_and_says_why_once(tmp_path, monkeypatch):
    """Engine `auto`: the fused stack against one run's `model.fit`, per run over the epochs (the
    fused compilation shared by the runs, the keras engine's paid by each); the decision kept."""
    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    slow = sizing.choose("model-s", 1 << 20, 8, lambda k: (2.0, 1.0), alone=lambda: (1.0, 0.25), epochs=20)
    assert slow.engine == "keras" and slow.line.startswith("engine auto: fused 8 at 1.0 run-epochs/s, alone 4.0/s")
    assert "keras engine" in slow.line
    again = sizing.choose("model-s", 1 << 20, 8, lambda k: pytest.fail("timed"), alone=lambda: pytest.fail("timed"))
    assert again == sizing.Choice(8, "keras")  # kept: nothing measured, nothing said
    fast = sizing.choose("model-t", 1 << 20, 8, lambda k: (8.0, 0.05), alone=lambda: (1.0, 0.25), epochs=20)
    assert fast.engine == "fused" and ": fused (measured" in fast.line
    forced = sizing.choose("model-s", 1 << 20, 8, lambda k: pytest.fail("timed"))
    assert forced == sizing.Choice(8)  # engine fused asked for: the kept size, fused


def test_a_sweep_trains_in_stacks_of_the_measured_size_with_the_same_numbers(tmp_path, monkeypatch):
    """A group of 20 runs measured at 8 trains as stacks of 7, 7 and 6 (as even as can be: one
    compiled size of 8, padded), each run as in one stack of 20 (to float32 rounding: another stack
    size sums in another order)."""
    from mlreg.data import load
    from mlreg.engines import fused
    from mlreg.spec import ExperimentSpec
    from tests.conftest import tiny_spec_dict

    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    runs = ExperimentSpec.from_dict(tiny_spec_dict(seeds=5, grid={"l2": [0.0, 1e-4, 1e-3, 1e-2]})).expand()
    data = load(runs[0].data, root=runs[0].root)
    monkeypatch.setattr(sizing, "estimate", lambda per_run, cache=None: 16)
    sizes = []
    original = fused.train.Stack

    def stack(program, runs, *args, **kwargs):
        sizes.append(len(runs))
        return original(program, runs, *args, **kwargs)

    monkeypatch.setattr(fused.train, "Stack", stack)
    monkeypatch.setattr(fused.train, "_timed", lambda program, runs, builts, data, k: (1.0, k / 100))
    measured = {r.run_id: r for r in fused.train_pack(runs, data)}
    assert sizes == [7, 7, 6]  # 8 is the fastest per run-epoch of 8 and 16 (and 32, never timed: 16 was slower)
    assert json.loads((tmp_path / "packs.json").read_text()).popitem()[1]["k"] == 8
    monkeypatch.setattr(sizing, "choose", lambda key, per_run, n, *args: sizing.Choice(n))
    whole = {r.run_id: r for r in fused.train_pack(runs, data)}
    for run_id, r in whole.items():
        assert measured[run_id].summary["best_val_data_loss"] == pytest.approx(r.summary["best_val_data_loss"],
                                                                                rel=1e-5)


def test_the_default_engine_trains_alone_a_model_whose_fused_step_is_slow_said_once_and_kept(tmp_path, monkeypatch,
                                                                                           cli):
    """`mlreg run` under engine `auto`: a model measured slower fused (its fused steps made slow on
    purpose) trains with the keras engine, the line said once; the next sweep reads the decision
    (nothing measured); a model of another structure is measured anew, and one that fuses well
    (the real timing of a small MLP) is fused."""
    from mlreg.engines import fused
    from tests.conftest import tiny_spec_dict, write_toml

    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path / "cache"))
    real = fused.train._timed
    monkeypatch.setattr(fused.train, "_timed", lambda *a: (real(*a)[0], 100.0))  # 100 s a run-epoch
    d = tiny_spec_dict(seeds=2, grid={"l2": [0.0, 1e-3]})
    code, _, err = cli("run", write_toml(tmp_path / "a.toml", d), "--out", tmp_path / "a", "--quiet")
    assert code == 0, err
    assert err.count("engine auto: fused 4 at 0.0 run-epochs/s") == 1 and "keras engine (measured in" in err, err
    runs = pd.read_csv(tmp_path / "a" / "runs.csv")
    assert list(runs["status"]) == ["ok"] * 4 and set(runs["engine"]) == {"keras"}

    monkeypatch.setattr(fused.train, "_timed", lambda *a: pytest.fail("measured again"))
    code, _, err = cli("run", write_toml(tmp_path / "a.toml", d), "--out", tmp_path / "b", "--quiet")
    assert code == 0 and "engine auto" not in err, err
    assert set(pd.read_csv(tmp_path / "b" / "runs.csv")["engine"]) == {"keras"}

    monkeypatch.setattr(fused.train, "_timed", real)
    other = tiny_spec_dict(seeds=2, model={"hidden": [24]}, grid={"l2": [0.0, 1e-3]})
    code, _, err = cli("run", write_toml(tmp_path / "c.toml", other), "--out", tmp_path / "c", "--quiet")
    assert code == 0 and err.count("engine auto: fused 4 at") == 1 and ": fused (measured in" in err, err
    assert set(pd.read_csv(tmp_path / "c" / "runs.csv")["engine"]) == {"fused"}


def test_a_model_probed_once_is_not_traced_again_until_its_code_changes(tmp_path, monkeypatch):
    """`check`'s probe traces one epoch of the fused program (3.6 s of a 29 s sweep of the zoo's
    transformer whose programs the cache held): a model that traced is kept per user, so the next
    process does not trace it; one that failed is traced again, and a user's layer whose code
    changed is a new key."""
    import keras

    from mlreg.data import load
    from mlreg.engines.fused import train
    from mlreg.spec import ExperimentSpec
    from tests.conftest import tiny_spec_dict

    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    run = ExperimentSpec.from_dict(tiny_spec_dict(grid={"l2": [1e-3]})).expand()[0]
    data = load(run.data, root=run.root)
    traced = []
    real = train.Program

    def program(*args, **kwargs):
        traced.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "Program", program)
    assert train.probe(run, data) is None and len(traced) == 1
    assert train.probe(run, data) is None and len(traced) == 1  # kept: not traced again
    assert (tmp_path / "probed.json").is_file()

    def broken(*args, **kwargs):
        traced.append(1)
        raise ValueError("cannot")

    other = ExperimentSpec.from_dict(tiny_spec_dict(model={"hidden": [8]})).expand()[0]
    monkeypatch.setattr(train, "Program", broken)
    assert "cannot" in train.probe(other, data) and "cannot" in train.probe(other, data)
    assert len(traced) == 3  # a failure is not kept: traced each time

    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    first = keras.Sequential([keras.Input((64,)), Scale(), keras.layers.Dense(10)])

    class Scale(keras.layers.Layer):  # noqa: F811 - the same layer, its code edited
        def call(self, x):
            return x * 3.0

    second = keras.Sequential([keras.Input((64,)), Scale(), keras.layers.Dense(10)])
    built = train.build(run, data)[1]
    assert train.probe_key(run, first, built, data) != train.probe_key(run, second, built, data)
    assert train.probe_key(run, first, built, data) == train.probe_key(run, first, built, data)
