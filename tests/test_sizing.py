"""Packs sized by measurement (issue 25): the estimate from a model's bytes per run against the
cache, a timing the first time a model is seen on a machine, the answer kept per user."""

from __future__ import annotations

import json

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

    def seconds(k):  # 16 is the fastest per run-epoch, 32 nearly so
        timed.append(k)
        return {8: 0.010, 16: 0.006, 32: 0.0062}[k]

    per_run = (32 << 20) // 16 if sizing.cache_bytes() == 32 << 20 else sizing.cache_bytes() // 16
    assert sizing.choose("model-a", per_run, 60, seconds) == 16
    assert sorted(timed) == [8, 16, 32]
    kept = json.loads((tmp_path / "packs.json").read_text())["model-a"]
    assert kept["k"] == 16 and kept["estimate"] == 16 and set(kept["run_epochs_per_s"]) == {"8", "16", "32"}
    assert sizing.choose("model-a", per_run, 60, lambda k: pytest.fail("timed again")) == 16
    assert sizing.choose("model-a", per_run, 12, lambda k: pytest.fail("timed again")) == 12  # no more than the runs


def test_a_stack_size_set_by_hand_or_the_estimate_alone_times_nothing(monkeypatch):
    monkeypatch.setenv(sizing.ENV, "16")
    assert sizing.choose("model-e", 1 << 20, 60, lambda k: pytest.fail("timed")) == 16
    monkeypatch.setenv(sizing.ENV, "estimate")
    assert sizing.choose("model-e", 1 << 20, 60, lambda k: pytest.fail("timed")) == sizing.estimate(1 << 20)


def test_nothing_is_timed_when_there_is_no_choice_or_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLREG_CACHE_DIR", str(tmp_path))
    assert sizing.choose("model-b", 1 << 20, MIN_STACK, lambda k: pytest.fail("timed")) == MIN_STACK
    small = sizing.cache_bytes() // 1000  # the estimate is 64, and 32 and 128 beside it: for 9 runs, all are 16
    assert sizing.choose("model-d", small, 9, lambda k: pytest.fail("timed")) == 9
    assert not (tmp_path / "packs.json").exists()
    monkeypatch.setenv("MLREG_CACHE_DIR", "off")
    assert sizing.choose("model-c", 1 << 20, 40, lambda k: 1.0 / k) == 40  # 64 is the fastest: all 40 at once


def test_a_sweep_trains_in_stacks_of_the_measured_size_with_the_same_numbers(tmp_path, monkeypatch):
    """A group of 20 runs measured at 8 trains as stacks of 8, 8 and 4, each run as in one stack
    of 20 (to float32 rounding: another stack size sums in another order)."""
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
    monkeypatch.setattr(fused.train, "_seconds_per_run_epoch", lambda program, runs, builts, data, k: k / 100)
    measured = {r.run_id: r for r in fused.train_pack(runs, data)}
    assert sizes == [8, 8, 4]  # 8 is the fastest per run-epoch of 8, 16 and 32
    assert json.loads((tmp_path / "packs.json").read_text()).popitem()[1]["k"] == 8
    monkeypatch.setattr(sizing, "choose", lambda key, per_run, n, seconds: n)
    whole = {r.run_id: r for r in fused.train_pack(runs, data)}
    for run_id, r in whole.items():
        assert measured[run_id].summary["best_val_data_loss"] == pytest.approx(r.summary["best_val_data_loss"],
                                                                                rel=1e-5)
