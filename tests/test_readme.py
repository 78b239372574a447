"""Every code block of the README and of the docs site runs (issue 8.13, issue 36): Python blocks
are executed (each distinct block once), the experiment file's TOML block is a valid experiment
whose sections hold the defaults (the search's block is valid too, and so is the README's own),
console blocks print what they show, and the shell block names the Makefile's targets; the site
builds with `mkdocs build --strict` (every link and API page resolves) and the README stays short."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [(k, code, page.relative_to(ROOT).as_posix()) for page in PAGES
          for k, code in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M)]


def blocks(kind: str, page: str | None = None) -> list[str]:
    return list(dict.fromkeys(code for k, code, where in BLOCKS if k == kind and page in (None, where)))


def test_the_readme_is_short_and_the_site_builds_strictly(tmp_path):
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("mlreg.api.sweep") >= 1


def test_every_block_says_what_it_is():
    assert BLOCKS and {k for k, _, _ in BLOCKS} <= {"sh", "text", "console", "toml", "python"}


def test_the_shell_block_names_makefile_targets():
    targets = set(re.findall(r"^(\w+):", (ROOT / "Makefile").read_text(), re.M))
    commands = [line.split("#")[0].split() for code in blocks("sh", "README.md") for line in code.splitlines()]
    named = [c[1] for c in commands if c and c[0] == "make"]
    assert named == ["demo", "test"] and set(named) <= targets


def test_the_toml_block_is_an_experiment_with_the_defaults():
    from mlreg.spec import DataSpec, EarlyStoppingSpec, ExperimentSpec, ModelSpec, SearchSpec, TrainingSpec

    (code,), (search, extrapolate), (readme,) = (blocks("toml", "docs/guides/experiment-file.md"),
                                     blocks("toml", "docs/guides/searching.md"), blocks("toml", "README.md"))
    assert ExperimentSpec.from_dict(tomllib.loads(readme)).n_runs == 20  # the README's example: 4 rates x 5 seeds
    spec = ExperimentSpec.from_dict(tomllib.loads(code))
    assert (spec.data, spec.model, spec.training, spec.early_stopping, spec.search) == (
        DataSpec(), ModelSpec(), TrainingSpec(), EarlyStoppingSpec(), SearchSpec())
    searched = ExperimentSpec.from_dict({"name": "s", **tomllib.loads(search)})  # the search section's example
    assert searched.searches and searched.search.strategy == "halving"
    extrapolating = ExperimentSpec.from_dict({"name": "e", **tomllib.loads(extrapolate)})
    assert extrapolating.search.strategies == ("extrapolate",) and extrapolating.curve_param == "l2"
    assert (spec.seeds, spec.max_failures, spec.description) == (3, 3, "")
    assert ExperimentSpec.model_fields["seeds"].default == 3


@pytest.mark.parametrize("code", blocks("console"))
def test_console_blocks_print_what_they_show(code):
    command, *expected = code.rstrip("\n").splitlines()
    assert command.startswith("$ mlreg ")
    out = subprocess.run([sys.executable, "-m", "mlreg", *command.split()[2:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n").splitlines() == expected


@pytest.mark.parametrize("code", blocks("python"))
def test_python_blocks_run(code, tmp_path):
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    shutil.copytree(ROOT / "results" / "l2_rate", tmp_path / "results" / "l2_rate",
                    ignore=shutil.ignore_patterns("plots"))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # issue 27, item 5: what a block writes goes into results/, never into the repository's root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments", "results"]
