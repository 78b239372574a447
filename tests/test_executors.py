"""Executors: a process pool and a Dask LocalCluster give the inline numbers, lose nothing
when a worker is killed, and stop cleanly on Ctrl-C (issue 10)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import mlreg
from tests.conftest import ROOT, mlreg_cli, tiny_spec_dict, write_toml

pytestmark = pytest.mark.backends  # run again under the other Keras backend in CI

NUMBERS = ["best_val_data_loss", "train_data_loss_at_best", "best_epoch", "weight_l2", "val_accuracy_at_best"]


def _runs(out):
    return pd.read_csv(out / "runs.csv").set_index("run_id").sort_index()


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
