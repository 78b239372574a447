from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from mlreg.cli import main
from tests.conftest import ROOT, mlreg_cli, tiny_spec_dict, write_toml


def test_help_does_not_import_tensorflow_or_keras():
    # how fast --help answers is bench_analysis.py's to measure, not a test's to time
    code = ("import sys; from mlreg.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "run" in out.stdout


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
    d = tiny_spec_dict(data={"dataset": "poly", "train_size": 1.0}, training={"optimizer": "sgd", "epochs": 2},
                       grid={"learning_rate": [0.01, 1e9]})
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
    d = tiny_spec_dict(model={"builder": "tests.builders:fails_for_seed_1"}, seeds=[0, 1, 1000, 1001],
                       max_failures=2)
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 runs failed in a row" in err and "the database said" in err
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["failed", "failed"]


def test_sigkill_mid_sweep_then_rerun_completes_without_duplicates(tmp_path, cli, monkeypatch):
    d = tiny_spec_dict(model={"builder": "tests.builders:kill_once"}, seeds=2,
                       grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    env = {"MLREG_KILL_MARKER": str(tmp_path / "killed")}
    first = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", "--max-pack", "2", env=env)  # a pack per l2
    assert first.returncode == -signal.SIGKILL
    before = pd.read_csv(out / "runs.csv")
    assert len(before) == 2 and set(before.l2) == {0.0}  # the l2=0 runs finished before the kill
    history_before = pd.read_csv(out / "history.csv")

    monkeypatch.setenv("MLREG_KILL_MARKER", env["MLREG_KILL_MARKER"])
    code, stdout, stderr = cli("run", spec, "--out", out, "--quiet")  # resumed in this process
    assert code == 0, stderr
    assert "2 already done" in stdout
    runs = pd.read_csv(out / "runs.csv")
    history = pd.read_csv(out / "history.csv")
    assert len(runs) == 6 and runs.run_id.is_unique and set(runs.status) == {"ok"}
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert set(history.run_id) == set(runs.run_id)
    pd.testing.assert_frame_equal(runs.iloc[:2].reset_index(drop=True), before)  # unchanged
    pd.testing.assert_frame_equal(history[history.run_id.isin(before.run_id)].reset_index(drop=True),
                                  history_before)


@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_keep_finished_runs_and_exit_128_plus_the_signal(tmp_path, signame, code, cli,
                                                                             monkeypatch):
    """Issue 8.3: SIGTERM killed the process with no message; Ctrl-C exited 1, sometimes with
    'Exception ignored in: <function WeakKeyDictionary...>'."""
    d = tiny_spec_dict(model={"builder": "tests.builders:interrupt_once"}, grid={"l2": [0.0, 0.01, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    env = {"MLREG_KILL_MARKER": str(tmp_path / "interrupted"), "MLREG_SIGNAL": signame}
    first = mlreg_cli("run", str(spec), "--out", str(out), "--quiet", "--max-pack", "1", env=env)
    assert first.returncode == code, first.stderr
    lines = first.stderr.strip().splitlines()
    assert lines[-1] == f"mlreg: interrupted ({signame}); finished runs are kept, run again to resume"
    assert "Exception ignored" not in first.stderr and "Traceback" not in first.stderr
    assert "absl" not in first.stderr and "cuda" not in first.stderr  # TensorFlow's import noise stays out
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["ok"] and list(runs.l2) == [0.0]  # the interrupted run is not recorded
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again, stdout, _ = cli("run", spec, "--out", out, "--quiet")  # resumed in this process
    assert again == 0 and "1 already done" in stdout
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
    assert "180 already done" in capsys.readouterr().out


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


def test_early_stopping_monitor_is_checked_before_training(tmp_path, capsys):
    """Issue 8.5: a misspelled monitor passed `validate` and failed only after trainings."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(early_stopping={"monitor": "val_acc"}))
    for argv in (["validate", str(spec)], ["run", str(spec), "--out", str(tmp_path / "out")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Invalid value for `early_stopping.monitor`" in err and "Received: monitor='val_acc'" in err
        assert "'val_accuracy'" in err and "'run_id'" not in err and "'lr'" not in err
    assert not (tmp_path / "out").exists()


def test_failed_runs_are_retried_and_the_first_error_is_shown(tmp_path, cli, monkeypatch):
    """Issue 8.8 and 8.12: failed runs were never retried; the console showed no error."""
    d = tiny_spec_dict(model={"builder": "tests.builders:fails_once"}, seeds=2)
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    monkeypatch.setenv("MLREG_KILL_MARKER", str(tmp_path / "fixed"))
    code, stdout, stderr = cli("run", spec, "--out", out, "--quiet")
    assert code == 0
    assert "failed: RuntimeError: the data server was down" in stderr
    assert "2 runs" in stdout and "1 failed" in stdout and "1 ok" in stdout
    code, _, stderr = cli("run", spec, "--out", out, "--quiet")
    assert code == 0 and "retrying 1 failed run" in stderr
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["ok", "ok"] and runs.run_id.is_unique


def test_an_experiment_grows_and_a_changed_one_is_refused_naming_the_fields(tmp_path, capsys):
    """Issue 8.9: adding seeds or grid values was refused without saying what differs."""
    spec, out = tmp_path / "e.toml", tmp_path / "out"
    write_toml(spec, tiny_spec_dict(seeds=1, grid={"l2": [0.0]}))
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    first = pd.read_csv(out / "runs.csv")
    write_toml(spec, tiny_spec_dict(seeds=2, grid={"l2": [0.0, 0.01]}, description="now with more"))
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    assert "4 runs" in capsys.readouterr().out
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and runs.iloc[0].equals(first.iloc[0])  # kept as it was
    write_toml(spec, tiny_spec_dict(seeds=2, grid={"l2": [0.0, 0.01]}, training={"epochs": 4}))
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "4 of its 4 runs are not in this one" in err and "training.epochs (3 -> 4)" in err


def test_a_plan_of_a_million_runs_is_summarised_and_refused(tmp_path, capsys):
    """Issue 8.11: validate printed a million lines in 90 s; run started with no word."""
    d = tiny_spec_dict(seeds=100, grid={"l2": [i / 1000 for i in range(100)], "dropout": [i / 200 for i in range(100)]})
    spec = write_toml(tmp_path / "e.toml", d)
    t0 = time.perf_counter()
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "1,000,000 runs = 10,000 settings x 100 seeds" in out and "and 999,960 more runs" in out
    assert len(out.splitlines()) < 60 and time.perf_counter() - t0 < 20
    assert main(["run", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "the plan has 1,000,000 runs" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_user_builders_take_keyword_arguments(tmp_path, capsys):
    """Issue 8.12: the README said keyword arguments, the code passed one dict."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(grid={"builder": ["tests.builders:small",
                                                                           "tests.builders:everything"]}))
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert set(pd.read_csv(tmp_path / "out" / "runs.csv").status) == {"ok"}
    spec = write_toml(tmp_path / "f.toml", tiny_spec_dict(model={"builder": "tests.builders:needs_more"}))
    assert main(["run", str(spec), "--out", str(tmp_path / "out2"), "--quiet"]) == 2  # refused before training
    assert "needs ['depth'], which mlreg does not give" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_version_verbose_anywhere_and_counts_in_words(tmp_path, capsys):
    """Issue 8.14."""
    from mlreg import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"mlreg {__version__}"
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict())
    assert main(["validate", str(spec), "--verbose"]) == 0
    assert "1 run = 1 setting x 1 seed" in capsys.readouterr().out


def test_a_full_disk_is_one_line_and_keeps_finished_runs(tmp_path, capsys, monkeypatch):
    """Issue 8.7: a full disk ended with `OSError: [Errno 28]`."""
    import mlreg.store as store_module

    spec, out = write_toml(tmp_path / "e.toml", tiny_spec_dict(grid={"l2": [0.0, 0.1]})), tmp_path / "out"
    real, calls = store_module.ResultsStore.append, []

    def append(self, result):
        calls.append(result.run_id)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(out / "history.csv"))
        real(self, result)

    monkeypatch.setattr(store_module.ResultsStore, "append", append)
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlreg: error: the disk is full") and "finished runs are kept" in err
    assert len(pd.read_csv(out / "runs.csv")) == 1


def test_cross_validation_end_to_end_pairs_on_seed_and_fold(tmp_path, capsys):
    """Issue 9: each (setting, seed, fold) is a run, `fold` is a column, compare pairs on it."""
    d = tiny_spec_dict(seeds=2, data={"folds": 3, "train_size": 1.0, "dataset": "wine"}, grid={"l2": [0.0, 0.1]})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["validate", str(spec)]) == 0
    assert "12 runs = 2 settings x 2 seeds x 3 splits" in capsys.readouterr().out
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.fold.unique()) == [0, 1, 2] and set(runs.engine) == {"fused"} and runs.run_id.is_unique
    assert set(runs.n_val) <= {59, 60} and (runs.n_train + runs.n_val == 178).all()  # folds of all 178 samples
    capsys.readouterr()
    assert main(["compare", str(out), "--baseline", "l2=0"]) == 0
    assert "shared (seed, fold), Nadeau-Bengio corrected" in capsys.readouterr().out


def test_a_directory_whose_data_changed_is_not_resumed(tmp_path, capsys):
    """Issue 9: resuming silently mixed runs from two data sets."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": rng.normal(size=60), "y": rng.integers(0, 2, 60)}).to_csv(data, index=False)
    d = tiny_spec_dict(data={"dataset": None, "path": "d.csv", "target": "y", "train_size": 1.0})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0  # d.csv found beside e.toml
    pd.DataFrame({"a": rng.normal(size=60), "y": rng.integers(0, 2, 60)}).to_csv(data, index=False)
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    assert "the data changed since its runs were recorded" in capsys.readouterr().err


# -- your own model on your own data, on both backends (issue 15) ------------------------------------
def test_help_imports_neither_tensorflow_nor_jax():
    code = ("import sys; from mlreg.cli import main\n"
            "for argv in (['--help'], ['compare', '--help'], ['plot', '--help']):\n"
            "    try: main(argv)\n    except SystemExit: pass\n"
            "print(sorted(m for m in ('tensorflow', 'jax', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_backend_is_recorded_and_another_one_refuses_to_resume(tmp_path, cli, monkeypatch):
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(training={"epochs": 2}, grid={"l2": [0.0, 0.01]}))
    out = tmp_path / "out"
    first = mlreg_cli("run", str(spec), "--out", str(out), "--backend", "tensorflow")
    assert first.returncode == 0, first.stderr
    assert "(tensorflow backend)" in first.stdout
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.backend) == {"tensorflow"} and set(runs.engine) == {"fused"}
    other = "tensorflow" if keras.backend.backend() == "jax" else "jax"  # this process's, in this process
    code, _, stderr = cli("run", spec, "--out", out, "--backend", other)
    if other == "jax":
        assert code == 2 and "trained with the tensorflow backend, and this run uses jax" in stderr
        assert "--backend tensorflow" in stderr and "Traceback" not in stderr
        code, _, stderr = cli("run", spec, "--out", out, "--backend", "jax", "--fresh", "--quiet")
        assert code == 0, stderr
        assert set(pd.read_csv(out / "runs.csv").backend) == {"jax"}
        monkeypatch.setenv("KERAS_BACKEND", "jax")
        code, stdout, _ = cli("run", spec, "--out", out, "--quiet")
        assert code == 0 and "2 already done" in stdout and "(jax backend)" in stdout
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    code, _, stderr = cli("run", spec, "--out", tmp_path / "o2")
    assert code == 2 and "Invalid value for `KERAS_BACKEND`" in stderr


@pytest.mark.backends  # on each backend, in this process
def test_the_demo_plan_runs_under_each_backend(tmp_path, cli):
    backend = keras.backend.backend()
    code, stdout, stderr = cli("run", ROOT / "experiments" / "l2_rate.toml", "--epochs", "2", "--out", tmp_path / "o",
                               "--backend", backend)
    assert code == 0, stderr
    assert f"180 runs in {tmp_path / 'o'} ({backend} backend): 180 ok" in stdout
    assert "train with keras" not in stderr  # the fused engine trains every run


def test_an_image_npz_and_a_users_conv2d_builder_run_without_flattening(tmp_path, cli):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "digits.npz", x=x.reshape(-1, 8, 8, 1).astype("float32"), y=y)
    d = tiny_spec_dict(data={"dataset": None, "path": "digits.npz", "train_size": 300, "scale": "global"},
                       model={"builder": "tests.builders:conv2d", "dropout": 0.1}, training={"epochs": 3},
                       grid={"l2": [0.0, 1e-3]})
    spec = write_toml(tmp_path / "e.toml", d)
    code, _, stderr = cli("run", spec, "--out", tmp_path / "o")
    assert code == 0, stderr
    runs = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert set(runs.status) == {"ok"} and set(runs.engine) == {"fused"}
    assert "conv2d" in set(pd.read_csv(tmp_path / "o" / "weights.csv").layer)  # statistics cover the convolution
    code, stdout, _ = cli("validate", spec)
    assert code == 0 and "samples of shape [8, 8, 1]" in stdout


def test_a_failed_run_is_one_line_and_its_traceback_is_kept(tmp_path, capsys):
    d = tiny_spec_dict(model={"builder": "tests.builders:fails_for_seed_1"}, seeds=2, training={"epochs": 2})
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv").set_index("seed").sort_index()
    assert list(runs.status) == ["ok", "failed"]
    line = runs.loc[1, "error"]
    assert line.startswith("RuntimeError: the database said: ") and line.endswith(")") and len(line) < 260
    assert "(at tests/builders.py:" in line and "Traceback" not in line
    assert f"failed: {line}" in err  # the console shows the same line, once
    trace = (out / "errors" / f"{runs.loc[1, 'run_id']}.txt").read_text()
    assert trace.startswith("Traceback") and "fails_for_seed_1" in trace and "x" * 500 in trace
    assert main(["report", str(out)]) == 0
    report = (out / "report.html").read_text()
    assert "Traceback (most recent call last)" in report and "x" * 500 in report  # the whole traceback
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0  # a retried run leaves no stale traceback
    assert not (out / "errors" / f"{runs.loc[1, 'run_id']}.txt").exists() or \
        pd.read_csv(out / "runs.csv").set_index("seed").loc[1, "status"] == "failed"


def test_only_bad_input_exits_2(tmp_path, capsys, monkeypatch):
    """A ValueError inside mlreg is mlreg's own failure (exit 1), not the user's mistake."""
    from mlreg import runner

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(runner, "data_hash", broken)
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict())
    assert main(["run", str(spec), "--out", str(tmp_path / "o")]) == 1
    assert "ValueError: an internal bug" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    """Issue 17.7: `--out` naming a file gave a NotADirectoryError traceback and exit 1."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict())
    (tmp_path / "file").write_text("mine")
    assert main(["run", str(spec), "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err == f"mlreg: error: {tmp_path / 'file'} is a file, not a results directory; choose another --out (out=)\n"
    assert (tmp_path / "file").read_text() == "mine"
    from tests.conftest import make_results

    results = make_results(tmp_path / "res", {0.0: [0.5, 0.6]})
    assert main(["plot", str(results), "--out", str(tmp_path / "file")]) == 2
    assert main(["report", str(results), "--out", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_without_a_terminal_progress_is_a_line_every_few_percent(tmp_path, cli):
    """Issue 17.17: without a terminal the progress bar wrote every update."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(seeds=100, training={"epochs": 1}))
    code, _, stderr = cli("run", spec, "--out", tmp_path / "o")  # captured: no terminal
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "runs (" in line]
    assert lines[0] == "tiny: 5/100 runs (5%); 5 ok" and lines[-1] == "tiny: 100/100 runs (100%); 100 ok"
    assert len(lines) == 20  # a line every 5%
    assert "\r" not in stderr and "it/s" not in stderr


@pytest.mark.parametrize(("builder", "message"), [
    ("broken", "failed to build a model (run "),
    ("takes_hp", "needs ['hp'], which mlreg does not give"),
    ("returns_dict", "returned dict, not a keras.Model"),
    ("returns_layer", "returned Dense, not a keras.Model"),
    ("seven_linear", "output does not fit the single_label task: it gives 7 values per sample, the task wants "
                     "3 class probabilities (softmax)"),
])
def test_builders_are_checked_before_training(tmp_path, builder, message, cli):
    """Issue 17.5: such builders passed `validate` and filled the results with failed rows."""
    d = tiny_spec_dict(data={"dataset": "wine", "train_size": 1.0}, model={"builder": f"tests.builders:{builder}"})
    spec = write_toml(tmp_path / "e.toml", d)
    for command in (["validate", str(spec)], ["run", str(spec), "--out", str(tmp_path / "o")]):
        code, _, err = cli(*command)
        assert code == 2, (command, err)
        assert message in err and f"tests.builders:{builder}" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_swept_parameter_the_builder_ignores_is_refused_and_not_recorded(tmp_path, cli):
    """Issue 17.6: a builder taking `l2` but never applying it gave identical rows for l2 = 0 and
    1e-3, both ranked 1; runs.csv recorded `hidden`, `activation` for builders that ignore them."""
    for builder, grid, message in (
            ("tests.builders:ignores_l2", {"l2": [0.0, 1e-3]}, "takes `l2` but builds the same model for l2=0 and "
                                                               "l2=0.001"),
            ("mlp", {"filters": [[4], [8]]}, "the builder mlp does not take `filters`"),
            ("tests.builders:small", {"dropout": [0.0, 0.5]}, "tests.builders:small does not take `dropout`")):
        spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(model={"builder": builder}, grid=grid))
        for command in (["validate", str(spec)], ["run", str(spec), "--out", str(tmp_path / "o")]):
            code, _, err = cli(*command)
            assert code == 2 and message in err, (builder, command, err)
        assert not (tmp_path / "o").exists()
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(model={"builder": "tests.builders:small"},
                                                          training={"epochs": 1}, grid={"l2": [0.0, 1e-3]}))
    assert cli("run", str(spec), "--out", str(tmp_path / "o"))[0] == 0
    columns = list(pd.read_csv(tmp_path / "o" / "runs.csv").columns)
    assert {"hidden", "l2", "builder", "freeze"} <= set(columns)
    assert not {"activation", "dropout", "l1", "filters", "kernel_size"} & set(columns)


def test_messages_read_as_sentences_and_name_the_experiment_file(tmp_path, cli):
    # issue 27, item 7: `?.`, a missing data file without the file's name, 31 columns in one line
    import numpy as np
    import pandas as pd

    pd.DataFrame(np.random.default_rng(0).random((20, 31)),
                 columns=[f"feature_{i}" for i in range(30)] + ["label"]).to_csv(tmp_path / "d.csv", index=False)
    cases = {"typo.toml": ('[model]\nhiden = [3]\n[data]\ndataset = "digits"\n', "; did you mean `hidden`? Received"),
             "nofile.toml": ('[data]\npath = "nope.csv"\ntarget = "y"\n', "nofile.toml: Invalid value for `data.path`"),
             "column.toml": ('[data]\npath = "d.csv"\ntarget = "labl"\n', "the closest: 'label'. Received")}
    for name, (body, expected) in cases.items():
        (tmp_path / name).write_text(f'name = "x"\n{body}[grid]\nl2 = [0.0]\n')
        for command in ("validate", "run"):
            code, _, err = cli(command, tmp_path / name)
            assert code == 2 and expected in err and "?." not in err, (name, command, err)
            assert err.startswith(f"mlreg: error: {tmp_path / name}: ") or err.startswith(f"mlreg: error: {name}"), err
            assert len(err) < 300, err


def test_a_builder_module_beside_the_experiment_file_is_found_from_anywhere(tmp_path, cli, monkeypatch):
    """`builder = "beside_the_file:build"` with beside_the_file.py in the experiment file's folder runs
    from another working directory (the file's folder is searched first, as for `data.path`); a
    module found nowhere is refused naming where mlreg looked."""
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "beside_the_file.py").write_text(
        "import keras\n\n\ndef build(input_shape, n_outputs, output_activation, l2):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(n_outputs, "
        "activation=output_activation, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)])\n")
    spec = write_toml(folder / "e.toml", tiny_spec_dict(model={"builder": "beside_the_file:build"},
                                                         grid={"l2": [0.0, 1e-3]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = cli("run", spec, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert list(pd.read_csv(tmp_path / "out" / "runs.csv").status) == ["ok", "ok"]
    missing = write_toml(folder / "missing.toml", tiny_spec_dict(model={"builder": "nowhere_to_be_found:build"}))
    code, _, err = cli("validate", missing)
    assert code == 2 and "No module named 'nowhere_to_be_found'" in err, err
    assert f"looked in {folder}, then in the working directory {elsewhere} and sys.path" in err, err


@pytest.mark.parametrize("overrides", [
    {"data": {"dataset": "diabetes"}, "grid": {"label_smoothing": [0.0, 0.1]}},
    {"grid": {"augment": [0.0, 0.5]}},
    {"model": {"builder": "residual_mlp"}, "grid": {"batch_norm": [False, True]}},
    {"early_stopping": {"monitor": "val_mae"}},
])
def test_validate_refuses_what_run_refuses_with_the_same_message(tmp_path, cli, overrides):
    """One check, one order (mlreg.check): what `run` refuses before training, `validate` refuses too."""
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(**overrides))
    said = {}
    for command in ("validate", "run"):
        code, _, err = cli(command, spec, *(["--out", tmp_path / "o", "--quiet"] if command == "run" else []))
        assert code == 2, err
        said[command] = err.strip().splitlines()[-1]
    assert said["validate"] == said["run"] and said["run"].startswith(f"mlreg: error: {spec}: Invalid value for")
    assert not (tmp_path / "o").exists()


def test_the_same_sweep_twice_writes_the_same_files_and_keeps_time_apart(tmp_path, cli):
    """`make demo` twice gives an empty `git diff` on the committed results: the numbers and the
    manifest are the same bytes, while the wall times (`timings.csv`) and where and when a sweep
    ran (`sessions.jsonl`) live in files of their own, which the repository ignores; `--fresh` says
    where the old directory went. `load_results` still gives `duration_s` and `epoch_time_s`."""
    import mlreg

    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(seeds=2, grid={"l2": [0.0, 1e-3]}))
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out, "--quiet")[0] == 0
    code, _, err = cli("run", spec, "--out", out, "--quiet", "--fresh")
    assert code == 0, err
    aside = next(tmp_path.glob("out.old-*"))
    assert f"moved the old {out} aside to {aside}" in err, err
    for name in ("runs.csv", "history.csv", "weights.csv", "manifest.json", "spec.toml"):
        assert (out / name).read_bytes() == (aside / name).read_bytes(), name
    assert (out / "timings.csv").read_bytes() != (aside / "timings.csv").read_bytes()
    session = json.loads((out / "sessions.jsonl").read_text())
    assert set(session) == {"started_at", "host", "platform", "python", "command", "git_commit",
                            "data_hash", "backend"}  # the last two: what a deleted manifest cannot lose (35.2)
    assert session["data_hash"] == json.loads((out / "manifest.json").read_text())["data_hash"]
    res = mlreg.load_results(out)
    assert res.runs["duration_s"].gt(0).all() and res.history["epoch_time_s"].gt(0).all()
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"/results/*/timings.csv", "/results/*/sessions.jsonl"} <= set(ignored)


@pytest.mark.parametrize(("source", "line", "what"), [
    ("import keras\n\nraise RuntimeError('boom at import')\n", 3, "RuntimeError: boom at import"),
    ("def build(:\n    pass\n", 1, "SyntaxError"),
])
def test_a_builder_module_that_fails_at_import_is_refused_naming_the_field_file_and_line(tmp_path, cli, source, line,
                                                                                         what):
    """Issue 35.4: exit 1 with "mlreg: RuntimeError: boom at import"; the user's input: exit 2, one line."""
    (tmp_path / "broken_at_import.py").write_text(source)
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(model={"builder": "broken_at_import:build"}))
    for command in (["validate", str(spec)], ["run", str(spec), "--out", str(tmp_path / "o")]):
        code, _, err = cli(*command)
        assert code == 2, err
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and "`model.builder`" in lines[0] and what in lines[0], err
        assert f"broken_at_import.py:{line}" in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("signame", "delay"), [("SIGTERM", 0.05), ("SIGINT", 0.3)])
def test_a_signal_after_the_summary_line_never_kills_the_process_by_the_signal(tmp_path, cli, signame, delay):
    """Issue 35.6: a SIGINT or SIGTERM 50-800 ms after the summary line killed the process by the
    signal (status -2 / -15), with no line, while Python tore TensorFlow and JAX down. Now the
    process ends as soon as its work is done; a signal that still finds it ends it with 128 + the
    signal and the one line."""
    spec, out = write_toml(tmp_path / "e.toml", tiny_spec_dict()), tmp_path / "out"
    assert cli("run", spec, "--out", out, "--quiet")[0] == 0
    sig = getattr(signal, signame)
    proc = subprocess.Popen([sys.executable, "-m", "mlreg", "run", str(spec), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    summary = proc.stdout.readline()  # the resumed sweep's summary: its last line of work
    assert "1 already done" in summary
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 128 + sig), (proc.returncode, err)  # never -2 / -15
    if proc.returncode:
        assert err.strip().splitlines()[-1].startswith(f"mlreg: interrupted ({signame})"), err
