from __future__ import annotations

import subprocess
import sys
import time

from mlreg.analysis.report import render
from mlreg.analysis.results import load_results
from tests.conftest import ROOT, make_results


def test_report_has_images_table_spec_and_manifest(tmp_path):
    html = render(load_results(make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]})),
                  baseline="l2=0")
    assert html.count("<img") == 7 and html.count("src='data:image/png;base64,") == 7
    assert "<table" in html and "best_val_data_loss" in html and "inconclusive" in html
    assert "name = &#x27;l2&#x27;" in html and "synthetic" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "<div class='scroll'><table" in html and "What the columns mean" in html
    assert "Generalization gap (validation minus training data loss at the best epoch) against l2" in html
    assert "classList.toggle('zoom')" in html and "every run finished ok" in html


def test_report_lists_diverged_and_failed_runs_with_their_errors(tmp_path):
    """Issue 8.17."""
    res = load_results(make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]},
                                    statuses={(0.01, 1): "failed"}))
    html = render(res)
    assert "Diverged and failed runs (1)" in html and "<td>failed</td>" in html


BLOCK_TF = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; sys.modules['jax'] = None\n"


def test_compare_plot_report_work_without_tensorflow_or_keras(tmp_path):
    root = make_results(tmp_path / "l2", {0.0: [0.5, 0.6], 0.01: [0.4, 0.45]})
    code = BLOCK_TF + (
        "from mlreg.cli import main\n"
        "for argv in (['compare', D, '--baseline', 'l2=0'], ['plot', D], ['report', D]):\n"
        "    assert main(argv) == 0, argv\n"
        "try:\n    import keras\nexcept ImportError:\n    print('keras blocked')\n"
    ).replace("D", repr(str(root)))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "keras blocked" in out.stdout and "baseline" in out.stdout
    assert len(list((root / "plots").glob("*.png"))) == 7 and (root / "report.html").stat().st_size > 10_000
    assert time.perf_counter() - t0 < 60
