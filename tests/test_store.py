from __future__ import annotations

import pytest

from mlreg.records import RunResult
from mlreg.store import HISTORY, RUNS, WEIGHTS, ResultsError, ResultsStore, StoreError, load_results

COLUMNS = {
    RUNS: ["run_id", "status", "seed", "l2", "best_val_data_loss", "error"],
    HISTORY: ["run_id", "epoch", "val_data_loss"],
    WEIGHTS: ["run_id", "layer", "bin_left", "bin_right", "count"],
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
    with pytest.raises(StoreError, match="different experiment.*--fresh"):
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
    with pytest.raises(ResultsError, match=r"runs\.csv: damaged CSV.*line 3"):
        load_results(tmp_path / "r")
