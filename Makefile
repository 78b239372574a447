# Two commands do everything on a fresh machine:
#   make demo   set up .venv, train the L2-rate sweep on digits -> results/l2_rate/, draw its plots
#               (the committed results are moved aside to results/l2_rate.old-<time>, never deleted)
#   make test   set up .venv and run the tests (the engine, executor, kinds and zoo tests on both backends)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint experiments bench docs clean

$(BIN)/mlreg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/mlreg
	$(BIN)/mlreg run experiments/l2_rate.toml --fresh
	$(BIN)/mlreg plot results/l2_rate

test: $(BIN)/mlreg
	$(BIN)/ruff check mlreg tests experiments benchmarks
	$(BIN)/python -m pytest -q -n 2 --durations=30
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q -n 2 -m backends  # engines, executors, kinds, the zoo's marked models

experiments: $(BIN)/mlreg
	$(BIN)/python experiments/run_all.py

docs: $(BIN)/mlreg
	$(BIN)/mkdocs build --strict -d site  # the docs site (docs/, mkdocs.yml); `$(BIN)/mkdocs serve` to browse

bench: $(BIN)/mlreg
	$(BIN)/python benchmarks/bench_engines.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_analysis.py

clean:
	rm -rf $(VENV) .pytest_cache
