"""The example notebooks run end to end in a real Jupyter kernel (nbclient, ipykernel), as a user
runs them: no cell fails, the tables render as HTML, the plots show, no TensorFlow or JAX log
line reaches a cell, and the answers are the ones the notebooks' text reads off them."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _execute(name, tmp_path):
    book = nbformat.read(ROOT / "examples" / name, as_version=4)
    nbclient.NotebookClient(book, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.text for o in outputs if o.output_type == "stream")
    assert "WARNING:tensorflow" not in streams and "I0000" not in streams and "Traceback" not in streams, streams
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return book, html, images


def test_your_model_notebook(tmp_path):  # compiles more than it trains: unoptimized XLA serves it
    book, html, images = _execute("your_model.ipynb", tmp_path)
    assert len(html) == 3 and len(images) == 1  # Results, compare, the curve's means; the plot
    assert "12 runs (12 ok)" in html[0] and "<table" in html[1]
    results = next(c for c in book.cells if "table = mlreg.compare" in c.source).outputs[0].data["text/plain"]
    best = next(line for line in results.splitlines() if line.rstrip().endswith("*"))
    assert float(best.split()[1]) in (0.0, 1e-3, 1e-2)  # the answer is a moderate rate, not 0.1 (underfit)
    assert book.cells[-1].outputs[0].data["text/plain"] == "'report.html'"


def test_overfit_and_underfit_notebook(tmp_path, xla_optimized):
    book, html, images = _execute("overfit_and_underfit.ipynb", tmp_path)
    assert len(html) == 4 and len(images) == 2
    kinds = next(c for c in book.cells if "mlreg.kinds" in c.source).outputs[0].data["text/plain"]
    assert "verdict" in kinds and "combination" in kinds
