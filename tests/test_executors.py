"""Executors: a process pool and a Dask LocalCluster give the inline numbers, lose nothing
when a worker is killed, and stop cleanly on Ctrl-C (issue 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import mlreg
from tests.conftest import ROOT, mlreg_cli, tiny_spec_dict, write_toml

NUMBERS = ["best_val_data_loss", "train_data_loss_at_best", "best_epoch", "weight_l2", "val_accuracy_at_best"]


def _runs(out):
    return pd.read_csv(out / "runs.csv").set_index("run_id").sort_index()


@pytest.mark.backends  # the numbers, and a start-up Ctrl-C, on each backend; the rest is the processes'
def test_process_pool_and_dask_give_the_inline_numbers(tmp_path):
    spec = mlreg.ExperimentSpec.from_dict(tiny_spec_dict(seeds=3, grid={"l2": [0.0, 0.01]},
                                                         model={"hidden": [16], "dropout": 0.2}))
    mlreg.run(spec, out=tmp_path / "inline", progress=False)
    mlreg.run(spec, out=tmp_path / "process", workers=2, progress=False)
    mlreg.run(spec, out=tmp_path / "dask", dask="local", workers=2, progress=False)
    inline = _runs(tmp_path / "inline")
    for name in ("process", "dask"):
        other = _runs(tmp_path / name)
        assert list(other.index) == list(inline.index) and set(other.status) == {"ok"}
        pd.testing.assert_frame_equal(other[NUMBERS], inline[NUMBERS], rtol=1e-5, atol=1e-6)
        history = pd.read_csv(tmp_path / name / "history.csv")
        assert not history.duplicated(["run_id", "epoch"]).any() and set(history.run_id) == set(inline.index)


@pytest.mark.parametrize("where", [["--workers", "2"], ["--dask", "local", "--workers", "2"]])
def test_a_worker_killed_mid_sweep_loses_no_run(tmp_path, where):
    """The worker training the l2=0.01 pack SIGKILLs itself the first time: its pack is
    trained again in another worker, every run completes once."""
    d = tiny_spec_dict(model={"builder": "tests.builders:kill_once"}, seeds=2, grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    done = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", *where,
                  env={"MLREG_KILL_MARKER": str(tmp_path / "killed")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "killed").exists()  # the kill happened
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs.run_id.is_unique and set(runs.status) == {"ok"}
    assert not pd.read_csv(out / "history.csv").duplicated(["run_id", "epoch"]).any()
    if "--dask" not in where:  # issue 17.3: a worker that died and was retried was not said
        said = [line for line in done.stderr.splitlines() if "worker died" in line]
        assert len(said) == 1 and said[0].startswith("mlreg: a worker died (killed, or out of memory) while training "
                                                     "a pack of 3 runs; training it again in a fresh worker")


def test_a_pack_whose_worker_always_dies_is_failed_with_the_reason(tmp_path):
    d = tiny_spec_dict(model={"builder": "tests.builders:dies_always"}, grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    done = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", "--workers", "2", "--max-pack", "1")
    assert done.returncode == 0, done.stderr
    runs = pd.read_csv(out / "runs.csv").set_index("l2")
    assert list(runs.sort_index().status) == ["ok", "failed", "ok"]
    assert "the worker training this pack died 2 times" in runs.loc[0.01, "error"]


def test_ctrl_c_with_packs_outstanding_keeps_finished_runs_and_exits_130(tmp_path):
    d = tiny_spec_dict(model={"builder": "tests.builders:interrupt_driver_once"}, seeds=2,
                       grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    env = {"MLREG_KILL_MARKER": str(tmp_path / "interrupted")}
    first = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", "--workers", "2", env=env)
    assert first.returncode == 130, first.stderr
    assert "interrupted (SIGINT)" in first.stderr and "Traceback" not in first.stderr
    kept = pd.read_csv(out / "runs.csv") if (out / "runs.csv").exists() else pd.DataFrame(columns=["run_id"])
    second = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", "--workers", "2", env=env)
    assert second.returncode == 0, second.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs.run_id.is_unique and set(kept.run_id) <= set(runs.run_id)


def test_dask_without_distributed_says_how_to_install_it(tmp_path):
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict())
    code = ("import sys; sys.modules['distributed'] = None\nfrom mlreg.cli import main\n"
            f"raise SystemExit(main(['run', {str(spec)!r}, '--out', {str(tmp_path / 'out')!r}, '--dask', 'local']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "pip install 'mlreg[dask]'" in out.stderr
    assert not (tmp_path / "out").exists()


# -- processes and signals (issue 17) ---------------------------------------------------------------
def _children(pid):
    """The pids of a process's children (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_workers_end_when_their_driver_is_killed(tmp_path):
    """Issue 17.1: after `kill -9` of the driver, both workers (~1 GB each) were still computing."""
    d = tiny_spec_dict(seeds=4, training={"epochs": 300}, early_stopping={"enabled": False},
                       grid={"l2": [0.0, 0.01]})
    spec = write_toml(tmp_path / "e.toml", d)
    driver = subprocess.Popen([sys.executable, "-m", "mlreg", "run", str(spec), "--out", str(tmp_path / "o"),
                               "--workers", "2", "--max-pack", "4", "--quiet"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [c for c in _children(driver.pid) if "resource_tracker" not in
                       Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
            time.sleep(0.5)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(3)  # let them import Keras and start training
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers)
    finally:
        driver.kill()


@pytest.mark.backends
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.0])
def test_ctrl_c_during_start_up_ends_with_130_and_never_runs_the_sweep(tmp_path, delay):
    """Issue 17.2: a SIGINT while TensorFlow or JAX imported was swallowed (the whole sweep ran,
    exit 0), or crashed the process (SIGSEGV, SIGABRT, a half-imported jax)."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(seeds=20, training={"epochs": 30}, grid={"l2": [0, 0.1]}))
    proc = subprocess.Popen([sys.executable, "-m", "mlreg", "run", str(spec), "--out", str(tmp_path / "o"), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (delay, proc.returncode, err[-2000:])
    assert err.strip().splitlines()[-1] == "mlreg: interrupted (SIGINT); finished runs are kept, run again to resume"
    assert "Traceback" not in err
    runs = tmp_path / "o" / "runs.csv"
    assert not runs.exists() or len(pd.read_csv(runs)) < 40  # never the whole sweep


def test_many_keras_runs_train_in_a_recycled_worker_not_in_the_driver(tmp_path):
    """Issue 17.4: the keras engine grows Keras's few MB a run in one process: past a few runs,
    inline training sends them to a worker process recycled every few packs."""
    d = tiny_spec_dict(model={"builder": "tests.builders:records_pid"}, seeds=6, training={"epochs": 1})
    spec = write_toml(tmp_path / "e.toml", d)
    pids = tmp_path / "pids"
    done = mlreg_cli("run", str(spec), "--out", str(tmp_path / "o"), "--quiet", "--engine", "keras",
                     env={"MLREG_KILL_MARKER": str(pids)})
    assert done.returncode == 0, done.stderr
    driver, *trained = pids.read_text().split()  # the driver builds one model to check the builder
    assert len(trained) == 6 and driver not in trained
    assert set(pd.read_csv(tmp_path / "o" / "runs.csv").status) == {"ok"}


def test_stopping_a_pool_whose_worker_exits_after_its_last_task_prints_no_thread_traceback():
    """Issue 35.5: "Exception in thread ... _adjust_process_count ... TypeError: object of type
    'NoneType' has no len()": a worker that reached `max_tasks_per_child` exits just as the pool is
    stopped, and the pool's manager thread replaces it in a pool already shut down."""
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from mlreg.executors import _terminate

    errors, hook = [], threading.excepthook
    threading.excepthook = errors.append
    try:
        for _ in range(6):
            pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1)
            assert pool.submit(os.getpid).result() > 0
            _terminate(pool)
    finally:
        threading.excepthook = hook
    assert not errors, [str(e.exc_value) for e in errors]


def test_models_built_under_seeds_in_threads_get_their_own_seeds():
    # issue 36: a Dask worker runs tasks in threads; `seeded` swaps a process-wide generator of
    # Keras's, so two threads building at once must not draw from each other's
    import threading

    import keras
    import numpy as np

    from mlreg.backend import seeded

    def weights(seed):
        with seeded(seed):
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dropout(0.5),
                                      keras.layers.Dense(4)])
        return [np.asarray(w) for w in model.get_weights()]

    alone = {seed: weights(seed) for seed in range(4)}
    got: dict[int, list] = {}

    def build(seed):
        for _ in range(5):
            got.setdefault(seed, []).append(weights(seed))

    threads = [threading.Thread(target=build, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, each in got.items():
        for w in each:
            assert all(np.array_equal(a, b) for a, b in zip(w, alone[seed], strict=True)), seed
