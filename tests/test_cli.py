from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from mlreg.cli import main
from tests.conftest import ROOT, tiny_spec_dict, write_toml


def _mlreg(*args: str, env: dict | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlreg", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


def test_help_is_fast_and_does_not_import_tensorflow():
    code = ("import sys, time; t = time.perf_counter(); from mlreg.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "run" in out.stdout and float(out.stdout.strip().splitlines()[-1]) < 1.0


@pytest.mark.parametrize(("overrides", "field"), [
    ({"model": {"dropout": 1.5}}, "dropout=1.5"),
    ({"grid": {"l2": [0.0, -0.01]}}, "l2=-0.01"),
    ({"model": {"hiden": [3]}}, "model.hiden"),
    ({"data": {"dataset": "imagenet"}}, "dataset='imagenet'"),
    ({"data": {"dataset": None, "path": "DATA", "target": "label"}}, "target='label'"),
])
def test_invalid_files_exit_2_name_the_field_and_write_nothing(tmp_path, capsys, overrides, field):
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}).to_csv(tmp_path / "d.csv", index=False)
    if overrides.get("data", {}).get("path") == "DATA":
        overrides["data"]["path"] = str(tmp_path / "d.csv")
    spec = write_toml(tmp_path / "bad.toml", tiny_spec_dict(**overrides))
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlreg: error:") and field in err and "Traceback" not in err
    assert not out.exists()
    assert main(["validate", str(spec)]) == 2


def test_validate_lists_runs_without_training(tmp_path, capsys):
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(seeds=2, grid={"l2": [0, 0.1]}))
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "4 runs = 2 settings x 2 seeds" in out and "0.1" in out
    assert not (tmp_path / "results").exists()


def test_sweep_with_a_diverging_run_finishes_and_resumes(tmp_path, capsys):
    d = tiny_spec_dict(training={"optimizer": "sgd", "epochs": 2}, grid={"learning_rate": [0.01, 1e9]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert dict(zip(runs.learning_rate, runs.status, strict=True)) == {0.01: "ok", 1e9: "diverged"}
    for name in ("spec.toml", "manifest.json", "history.csv", "weights.csv"):
        assert (out / name).is_file()
    capsys.readouterr()
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0  # resume: nothing to do
    assert "2 already done" in capsys.readouterr().out
    assert len(pd.read_csv(out / "runs.csv")) == 2
    # --epochs changes the experiment: refused without --fresh
    assert main(["run", str(spec), "--out", str(out), "--epochs", "1", "--quiet"]) == 2


def test_failures_in_a_row_stop_the_sweep_with_a_clear_message(tmp_path, capsys):
    d = tiny_spec_dict(model={"builder": "tests.builders:broken"}, seeds=4, max_failures=2)
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 runs failed in a row" in err and "this builder always fails" in err
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["failed", "failed"]


def test_sigkill_mid_sweep_then_rerun_completes_without_duplicates(tmp_path):
    d = tiny_spec_dict(model={"builder": "tests.builders:kill_once"}, seeds=2,
                       grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    env = {"MLREG_KILL_MARKER": str(tmp_path / "killed")}
    first = _mlreg("run", str(spec), "--out", str(out), "--quiet", env=env)
    assert first.returncode == -signal.SIGKILL
    before = pd.read_csv(out / "runs.csv")
    assert len(before) == 2 and set(before.l2) == {0.0}  # the l2=0 runs finished before the kill
    history_before = pd.read_csv(out / "history.csv")

    second = _mlreg("run", str(spec), "--out", str(out), "--quiet", env=env)
    assert second.returncode == 0, second.stderr
    assert "2 already done" in second.stdout
    runs = pd.read_csv(out / "runs.csv")
    history = pd.read_csv(out / "history.csv")
    assert len(runs) == 6 and runs.run_id.is_unique and set(runs.status) == {"ok"}
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert set(history.run_id) == set(runs.run_id)
    pd.testing.assert_frame_equal(runs.iloc[:2].reset_index(drop=True), before)  # unchanged
    pd.testing.assert_frame_equal(history[history.run_id.isin(before.run_id)].reset_index(drop=True),
                                  history_before)


def test_ctrl_c_keeps_finished_runs_and_records_no_spurious_failure(tmp_path):
    d = tiny_spec_dict(model={"builder": "tests.builders:interrupt_once"}, grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    env = {"MLREG_KILL_MARKER": str(tmp_path / "interrupted")}
    first = _mlreg("run", str(spec), "--out", str(out), "--quiet", env=env)
    assert first.returncode == 1 and "interrupted" in first.stderr and "Traceback" not in first.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["ok"] and list(runs.l2) == [0.0]  # the interrupted run is not a failure
    second = _mlreg("run", str(spec), "--out", str(out), "--quiet", env=env)
    assert second.returncode == 0 and "1 already done" in second.stdout
    assert list(pd.read_csv(out / "runs.csv").status) == ["ok"] * 3


def test_datasets_lists_builtins(capsys):
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out


def test_compare_csv_and_plot_svg(tmp_path, capsys):
    from tests.conftest import make_results

    root = make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]})
    assert main(["compare", str(root), "--baseline", "l2=0", "--csv", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.l2) == [0.01, 0.0] and list(table.verdict) == ["inconclusive", "baseline"]
    assert main(["plot", str(root), "--kind", "validation_curve", "gap", "--format", "svg"]) == 0
    assert sorted(p.name for p in (root / "plots").iterdir()) == ["gap_l2.svg", "validation_curve_l2.svg"]
    assert main(["compare", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_committed_results_resume_with_nothing_to_train(tmp_path, capsys):
    """Run ids and spec.toml must not drift between versions: the committed l2_rate results
    are recognised as the same experiment, every run as done."""
    import shutil

    shutil.copytree(ROOT / "results" / "l2_rate", tmp_path / "l2_rate", ignore=shutil.ignore_patterns("plots"))
    assert main(["run", str(ROOT / "experiments" / "l2_rate.toml"), "--out", str(tmp_path / "l2_rate"),
                 "--quiet"]) == 0
    assert "60 already done" in capsys.readouterr().out


def test_a_diverged_setting_is_in_the_table_that_ends_run(tmp_path, capsys):
    """Issue 8.1, as reported: learning rates 0.001 and 1e6 on diabetes."""
    d = tiny_spec_dict(data={"dataset": "diabetes", "train_size": 1.0}, training={"epochs": 2},
                       grid={"learning_rate": [0.001, 1e6]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 diverged" in text and "no ok runs" in text
    for argv in (["compare", str(out)], ["plot", str(out)], ["report", str(out)]):
        assert main(argv) == 0, argv
