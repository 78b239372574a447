"""`mlreg export mlflow` (issue 38) against real tracking stores: a SQLite store read back with
`MlflowClient`, exported twice, cut by SIGKILL and resumed, and a `mlflow server` on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import tiny_spec_dict

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import mlreg
    from mlreg.spec import ExperimentSpec

    out = tmp_path_factory.mktemp("tracking") / "tiny"
    spec = ExperimentSpec.from_dict(tiny_spec_dict(seeds=3, grid={"l2": [0.0, 1e-3, 1e-2]},
                                                   early_stopping={"enabled": False}))
    mlreg.run(spec, out=out, progress=False)
    return mlreg.load_results(out)


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """MLflow puts a SQLite store's artifacts in ./mlruns: here, never in the repository."""
    monkeypatch.chdir(tmp_path)


def _export(res, uri, *more):
    return subprocess.run([sys.executable, "-m", "mlreg", "export", "mlflow", str(res.root), "--tracking-uri", uri,
                           *more], cwd=res.root.parent, capture_output=True, text=True, timeout=300)


def _children(client, name):
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags], [r for r in runs if "mlreg.root" in r.data.tags]


def test_export_to_sqlite_reads_back_as_the_results_directory_and_twice_adds_nothing(results, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _export(results, uri)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "MLflow: 9 runs added, 0 already there"
    client = mlflow.MlflowClient(uri)
    children, parents = _children(client, "tiny")
    assert len(parents) == 1 and len(children) == len(results.runs) == 9
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"spec.toml", "manifest.json", "compare.csv", "report.html"} <= artifacts
    by_id = {r.data.tags["mlreg.run_id"]: r for r in children}
    for run in results.runs.to_dict("records"):
        child = by_id[run["run_id"]]
        assert child.data.params["l2"] == str(run["l2"]) and child.data.tags["seed"] == str(run["seed"])
        assert child.data.tags["status"] == "ok" and child.data.tags["mlreg.complete"] == "true"
        history = results.history[results.history.run_id == run["run_id"]]
        logged = client.get_metric_history(child.info.run_id, "val_data_loss")
        assert [m.step for m in logged] == list(history.epoch)
        assert [m.value for m in logged] == pytest.approx(list(history.val_data_loss), rel=1e-12)
        assert child.data.metrics["best_val_data_loss"] == pytest.approx(run["best_val_data_loss"], rel=1e-12)
    again = _export(results, uri)
    assert again.stdout.strip() == "MLflow: 0 runs added, 9 already there", again.stderr
    assert len(_children(client, "tiny")[0]) == 9


def test_an_export_cut_by_sigkill_completes_when_run_again(results, tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    proc = subprocess.Popen([sys.executable, "-m", "mlreg", "export", "mlflow", str(results.root), "--tracking-uri",
                             uri], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120

    def runs() -> int:
        try:
            with sqlite3.connect(db) as con:
                return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.Error:
            return 0

    while runs() < 4:  # the parent and some children
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = mlflow.MlflowClient(uri)
    assert len(_children(client, "tiny")[0]) < 9
    again = _export(results, uri)
    assert again.returncode == 0, again.stderr
    children, parents = _children(client, "tiny")
    assert len(parents) == 1 and len(children) == 9
    assert sorted(r.data.tags["mlreg.run_id"] for r in children) == sorted(results.runs.run_id)
    assert {r.data.tags.get("mlreg.complete") for r in children} == {"true"}


def test_export_to_a_tracking_server_and_an_unreachable_one(results, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        done = _export(results, uri, "--experiment", "on the server")
        assert done.returncode == 0, done.stderr
        children, _ = _children(mlflow.MlflowClient(uri), "on the server")
        assert len(children) == 9
    finally:
        server.terminate()
        server.wait(30)
    before = sorted(p.name for p in results.root.iterdir())
    refused = _export(results, uri)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "cannot reach the MLflow tracking store" in refused.stderr
    assert sorted(p.name for p in results.root.iterdir()) == before
    assert list(pd.read_csv(results.root / "runs.csv").run_id) == list(results.runs.run_id)


def test_a_sweep_logs_to_mlflow_live_and_refuses_an_unreachable_store_first(tmp_path):
    import mlreg
    from mlreg.spec import ExperimentSpec, InputError

    spec = ExperimentSpec.from_dict(tiny_spec_dict(name="live", seeds=2, grid={"l2": [0.0, 1e-2]}))
    with pytest.raises(InputError, match="cannot reach the MLflow tracking store"):
        mlreg.run(spec, out=tmp_path / "refused", progress=False, mlflow="http://127.0.0.1:9")
    assert not (tmp_path / "refused").exists()
    uri = f"sqlite:///{tmp_path / 'live.db'}"
    mlreg.run(spec, out=tmp_path / "live", progress=False, mlflow=uri)
    children, parents = _children(mlflow.MlflowClient(uri), "live")
    assert len(parents) == 1 and len(children) == 4
    assert {"compare.csv", "report.html"} <= {a.path for a in mlflow.MlflowClient(uri).list_artifacts(
        parents[0].info.run_id)}


def test_a_script_logs_each_run_to_mlflow_as_the_recorder_writes_it(tmp_path):
    import keras

    import mlreg
    from mlreg.data import load
    from mlreg.spec import DataSpec

    data = load(DataSpec(dataset="digits", train_size=200))
    uri = f"sqlite:///{tmp_path / 'script.db'}"
    client = mlflow.MlflowClient(uri)
    with mlreg.Recorder(tmp_path / "mine", params=["l2"], task="single_label", mlflow=uri) as rec:
        for n, l2 in enumerate((0.0, 1e-2), start=1):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax",
                                                                             kernel_regularizer=keras.regularizers.L2(l2))])
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            logger = mlreg.HonestLogger(data.x_train, data.y_train)
            model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=2, verbose=0,
                      callbacks=[logger])
            rec.record(model, logger, seed=0, l2=l2)
            assert len(_children(client, "mine")[0]) == n  # in MLflow as soon as it is recorded
    children, parents = _children(client, "mine")
    assert len(children) == 2 and "report.html" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
