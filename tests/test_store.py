from __future__ import annotations

import pytest

from mlreg.analysis.results import ResultsError, load_results
from mlreg.records import TIMING_COLUMNS, TIMINGS, RunResult
from mlreg.store import HISTORY, RUNS, WEIGHTS, ResultsStore, StoreError

COLUMNS = {
    RUNS: ["run_id", "status", "seed", "l2", "best_val_data_loss", "error"],
    HISTORY: ["run_id", "epoch", "val_data_loss"],
    WEIGHTS: ["run_id", "layer", "bin_left", "bin_right", "count"],
    TIMINGS: TIMING_COLUMNS,
}


def _result(run_id: str, loss: float = 0.5, epochs: int = 2) -> RunResult:
    return RunResult(
        run_id, "ok",
        {"run_id": run_id, "status": "ok", "seed": 0, "l2": 0.01, "best_val_data_loss": loss},
        [{"run_id": run_id, "epoch": e + 1, "val_data_loss": loss + e} for e in range(epochs)],
        [{"run_id": run_id, "layer": "output", "bin_left": -0.01, "bin_right": 0.0, "count": 3}],
    )


def _open(root, spec="name = 'x'\n", **kw) -> ResultsStore:
    return ResultsStore.open(root, spec_toml=spec, manifest={"swept": ["l2"]}, columns=COLUMNS, **kw)


def test_append_and_load(tmp_path):
    with _open(tmp_path / "r") as store:
        store.append(_result("a"))
        store.append(_result("b", 0.25, epochs=3))
        assert store.done() == {"a", "b"}
    res = load_results(tmp_path / "r")
    assert list(res.runs.run_id) == ["a", "b"] and len(res.history) == 5 and len(res.weights) == 2
    assert res.params == ["l2"]
    assert res.runs.best_val_data_loss.tolist() == [0.5, 0.25]


def test_resume_drops_rows_of_runs_a_crash_cut_off(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
        # a crash after the history rows of run b were written, before its runs.csv row
        store._append(HISTORY, _result("b").history)
    with (root / WEIGHTS).open("a") as f:
        f.write("b,output,0.0,0.01")  # and a cut-off last line
    assert len(load_results(root).history) == 2  # readers ignore unfinished runs too
    with _open(root) as store:
        assert store.done() == {"a"}
    assert (root / HISTORY).read_text().count("\nb,") == 0
    assert (root / WEIGHTS).read_text().endswith("\n")
    assert len(load_results(root).weights) == 1


def test_a_different_experiment_is_refused_and_fresh_moves_it_aside(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
    with pytest.raises(StoreError, match="holds another experiment.*--fresh"):
        _open(root, spec="name = 'y'\n")
    with _open(root, spec="name = 'y'\n", fresh=True) as store:
        assert store.done() == set()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("r.old-")]
    assert len(moved) == 1 and (moved[0] / RUNS).read_text().count("\n") == 2  # kept, not deleted


def test_foreign_nonempty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an mlreg results directory"):
        _open(tmp_path)


def test_two_writers_are_refused(tmp_path):
    with _open(tmp_path / "r"), pytest.raises(StoreError, match="another mlreg process"):
        _open(tmp_path / "r")


def test_load_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ResultsError, match="not an mlreg results directory"):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="no such directory"):
        load_results(tmp_path / "nope")
    with _open(tmp_path / "r") as store:
        store.append(_result("a"))
    with (tmp_path / "r" / RUNS).open("a") as f:
        f.write("b,ok,0,0.1,0.2,,extra,fields\n")
    with pytest.raises(ResultsError, match=r"runs\.csv: damaged file: line 3"):
        load_results(tmp_path / "r")


def test_fresh_is_refused_while_another_process_writes(tmp_path):
    """Issue 8.2: `--fresh` moved a directory that another process was writing to."""
    root = tmp_path / "r"
    with _open(root) as first:
        first.append(_result("a"))
        with pytest.raises(StoreError, match="another mlreg process is writing"):
            _open(root, spec="name = 'y'\n", fresh=True)
        assert [p.name for p in tmp_path.iterdir()] == ["r"]  # nothing was moved
        first.append(_result("b"))
    assert load_results(root).runs.run_id.tolist() == ["a", "b"]


def test_a_writer_never_writes_into_a_directory_it_did_not_open(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
        root.rename(tmp_path / "moved")
        with _open(root) as other:  # a new directory under the old name
            with pytest.raises(StoreError, match="moved or replaced"):
                store.append(_result("b"))
            assert other.statuses() == {}
    assert load_results(tmp_path / "moved").runs.run_id.tolist() == ["a"]


def test_creating_a_directory_is_all_or_nothing(tmp_path, monkeypatch):
    """Issue 8.7: a crash after manifest.json, before spec.toml, left a directory every later
    run refused as 'not an mlreg results directory'."""
    import mlreg.store as store_module

    real = store_module._write_atomic

    def crash_on_spec(path, text):
        if path.name == "spec.toml":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(store_module, "_write_atomic", crash_on_spec)
    with pytest.raises(OSError, match="No space left"):
        _open(tmp_path / "r")
    assert list(tmp_path.iterdir()) == []  # no half-made directory, no temporary one
    monkeypatch.setattr(store_module, "_write_atomic", real)
    with _open(tmp_path / "r") as store:
        store.append(_result("a"))


def test_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    from pathlib import Path

    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
    with (root / HISTORY).open("a") as f:
        f.write("x,1")  # a torn line, so that opening rewrites history.csv

    def full(self, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        _open(root)
    monkeypatch.undo()
    assert sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp")) == []
    assert (root / HISTORY).read_text().endswith("x,1")  # left as it was


def test_damaged_lines_are_named_not_computed_on(tmp_path):
    """Issue 8.6: binary bytes and a stray quote gave messages that named neither file nor line."""
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
    good = (root / HISTORY).read_bytes()
    (root / HISTORY).write_bytes(good + b'b,1,"0.5\n')
    with pytest.raises(StoreError, match=r"history\.csv: damaged file: line 4"):
        _open(root)
    (root / HISTORY).write_bytes(good + b"b,1,\xff\xfe\n")
    with pytest.raises(StoreError, match=r"history\.csv: damaged file: bytes that are not text at line 4"):
        _open(root)
    with pytest.raises(ResultsError, match=r"history\.csv: damaged file: bytes that are not text at line 4"):
        load_results(root)


def test_readers_drop_a_cut_off_last_line(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
        store.append(_result("b", 0.25))
    text = (root / RUNS).read_text()
    (root / RUNS).write_text(text[:-4])  # the last row cut in the middle of its loss
    assert load_results(root).runs.run_id.tolist() == ["a"]


def test_without_a_manifest_the_swept_parameters_come_from_the_runs(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
        store.append(RunResult("b", "ok", {"run_id": "b", "status": "ok", "seed": 0, "l2": 0.1,
                                           "best_val_data_loss": 0.3}))
    (root / "manifest.json").unlink()
    assert load_results(root).params == ["l2"]


def test_failed_runs_are_forgotten_for_a_retry(tmp_path):
    root = tmp_path / "r"
    with _open(root) as store:
        store.append(_result("a"))
        store.append(RunResult("b", "failed", {"run_id": "b", "status": "failed", "seed": 0, "error": "boom"}))
        assert store.done() == {"a"} and store.statuses() == {"a": "ok", "b": "failed"}
        store.forget({"b"})
        assert store.statuses() == {"a": "ok"}
        store.append(_result("b"))
    assert load_results(root).runs.run_id.tolist() == ["a", "b"]


def test_an_experiment_that_grew_keeps_its_runs_and_other_changes_are_named(tmp_path):
    """Issue 8.9: adding seeds or grid values was refused as 'a different experiment'."""

    root = tmp_path / "r"
    with _open(root, spec="seeds = 1\n") as store:
        store.append(_result("a"))
    with _open(root, spec="seeds = 2\n", plan={"a", "a2"}) as store:
        assert store.done() == {"a"}
    assert (root / "spec.toml").read_text() == "seeds = 2\n"
    assert len((root / "sessions.jsonl").read_text().splitlines()) == 2  # when each process opened it
    with pytest.raises(StoreError, match=r"1 of its 1 runs are not in this one, which differs in seeds \(2 -> 3\)"):
        _open(root, spec="seeds = 3\n", plan={"c"}, describe_change=lambda a, b: "seeds (2 -> 3)")


def test_stale_creations_are_cleaned_and_a_deleted_manifest_is_rebuilt_whole(tmp_path):
    """Issue 17.13: a crash during creation left `.NAME.new-PID/` forever; a deleted
    manifest.json was rewritten with its data hash alone."""
    import json
    import subprocess

    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    stale = tmp_path / f".r.new-{dead.pid}"
    stale.mkdir()
    (stale / "spec.toml").write_text("half made")
    with _open(tmp_path / "r") as store:
        store.append(_result("a"))
    assert not stale.exists()
    (tmp_path / "r" / "manifest.json").unlink()
    manifest = {"swept": ["l2"], "experiment": "x", "backend": "jax"}
    with ResultsStore.open(tmp_path / "r", spec_toml="name = 'x'\n", manifest=manifest, columns=COLUMNS,
                           must_match={"data_hash": "abc", "backend": "jax"}, assume={"backend": "tensorflow"}):
        pass
    assert json.loads((tmp_path / "r" / "manifest.json").read_text()) == manifest | {"data_hash": "abc"}


def test_a_directory_without_runs_is_one_clear_line(tmp_path, capsys):
    """Issue 17.13: a header-only runs.csv: compare and report said 'try one of []', plot drew nothing."""
    from mlreg.cli import main

    with _open(tmp_path / "r"):
        pass
    (tmp_path / "r" / RUNS).write_text(",".join(COLUMNS[RUNS]) + "\n")
    for command in ("compare", "plot", "report"):
        assert main([command, str(tmp_path / "r")]) == 2, command
        err = capsys.readouterr().err
        assert "no runs recorded yet (runs.csv holds its header only)" in err and "[]" not in err
    assert not (tmp_path / "r" / "plots").exists()


def test_damaged_results_files_are_repaired_retrained_or_refused_never_taken_silently(tmp_path, cli):
    """Issue 35.2, a finished directory (8 runs, 3 epochs) damaged by hand, as a fault campaign found:
    a cut history.csv kept a finished run at 2 of 3 epochs ("nothing to do"); a duplicated runs.csv
    line was kept and counted twice by compare; a status edited to `weird` was dropped without a
    word; a CSV experiment's data changed with manifest.json deleted was taken, and the manifest
    rewritten with the new data's hash."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    from tests.conftest import tiny_spec_dict, write_toml

    digits = load_digits()
    frame = pd.DataFrame(digits.data[:300]).assign(label=digits.target[:300])
    frame.to_csv(tmp_path / "d.csv", index=False)
    d = tiny_spec_dict(seeds=4, data={"path": "d.csv", "target": "label", "train_size": 1.0},
                       early_stopping={"enabled": False}, grid={"l2": [0.0, 1e-3]})
    del d["data"]["dataset"]
    spec, out = write_toml(tmp_path / "e.toml", d), tmp_path / "o"
    assert cli("run", spec, "--out", out, "--quiet")[0] == 0
    pristine = {name: (out / name).read_bytes() for name in (RUNS, HISTORY)}

    with open(out / HISTORY, "r+b") as f:  # `truncate -s -20`: the last run loses its last epoch's row
        f.truncate(len(pristine[HISTORY]) - 20)
    code, printed, err = cli("run", spec, "--out", out, "--quiet")
    assert code == 0 and "lost history rows" in err and "2 of 3 epochs" in err, err
    assert "1 ok; 7 already done" in printed, printed
    history = pd.read_csv(out / HISTORY)
    assert (history.groupby("run_id")["epoch"].apply(list) == [[1, 2, 3]] * 8).all()

    runs_text = (out / RUNS).read_text().splitlines(keepends=True)
    (out / RUNS).write_text("".join(runs_text + runs_text[-1:]))  # an exact duplicate line
    code, printed, err = cli("compare", out)
    assert code == 0 and "  4 " in printed and "  5 " not in printed, printed  # n = 4 seeds, not 5
    code, printed, err = cli("run", spec, "--out", out, "--quiet")
    assert code == 0 and "dropped 1 exact duplicate line" in err and "8 already done" in printed, err
    assert (out / RUNS).read_text() == "".join(runs_text)

    (out / RUNS).write_text("".join(runs_text[:3] + [runs_text[3].replace(",ok,", ",weird,")] + runs_text[4:]))
    for command in (("run", spec, "--out", out, "--quiet"), ("compare", out)):
        code, _, err = cli(*command)
        assert code == 2 and "line 4 has status 'weird'" in err, err
    (out / RUNS).write_text("".join(runs_text))

    (out / "manifest.json").unlink()
    frame.assign(**{"0": np.arange(300.0)}).to_csv(tmp_path / "d.csv", index=False)  # the data changed
    code, _, err = cli("run", spec, "--out", out, "--quiet")
    assert code == 2 and "the data changed since its runs were recorded" in err, err
    assert not (out / "manifest.json").exists()
