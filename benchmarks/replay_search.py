"""Does the search give the grid's answer? Replayed on every committed grid's own histories.

For each results directory under `results/` that a grid wrote (`spec.toml`, `history.csv`),
the halving search (factor 3, seeds from 2 up to the grid's seeds, no zoom) is run on the
recorded curves (`mlreg.search.replay`: each run it trains is served its recorded curve up to
the round's epochs; nothing is trained). Printed per directory: the grid's best setting, the
search's, whether the grid calls them the same or tied (its paired interval holds 0), and the
run-epochs the search spent against the grid's. A second pass does the same at 42 epochs (the
histories cut there), where early stopping has not yet ended the runs: rungs decide earlier.

Usage:
    python benchmarks/replay_search.py [--first-rung 7,5,3] [--dirs l2_rate,mnist1d_l2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlreg.search import replay  # noqa: E402
from mlreg.spec import ExperimentSpec, load_spec  # noqa: E402
from mlreg.store import read_decisions  # noqa: E402


def one(root: Path, fraction: int, epochs: int | None) -> dict:
    d = load_spec(root / "spec.toml").to_dict()
    if epochs:
        d["training"] = d["training"] | {"epochs": epochs}
    grid_spec = ExperimentSpec.from_dict(d)
    grid = replay(grid_spec, root)
    n, seeds = grid_spec.training.epochs, len(grid_spec.seed_list)
    if seeds > 2:
        d["seeds"] = {"start": 2, "max": seeds}
    d["search"] = {"strategy": "halving", "first_rung": math.ceil(n / fraction)}
    search = replay(ExperimentSpec.from_dict(d), root)
    ok = search["best"] == grid["best"] or search["best"] not in grid["separated"]
    return {"dir": root.name, "epochs": n, "first_rung": math.ceil(n / fraction), "grid_best": grid["best"],
            "search_best": search["best"], "agrees": ok, "spent": search["run_epochs"] / grid["run_epochs"],
            "pruned_grid_best": grid["best"] in search["pruned"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-rung", default="7,5,3", help="first rung = ceil(epochs / N), for each N")
    parser.add_argument("--dirs", default="", help="comma-separated results directories (default: every grid)")
    parser.add_argument("--epochs", default="0,42", help="the epochs replayed (0: the grid's own)")
    args = parser.parse_args()
    names = [n for n in args.dirs.split(",") if n]
    roots = [ROOT / "results" / n for n in names] if names else sorted(
        p for p in (ROOT / "results").iterdir() if (p / "spec.toml").exists() and (p / "history.csv").exists())
    roots = [r for r in roots if (r / "manifest.json").exists() and not read_decisions(r)
             and "source" not in (r / "spec.toml").read_text()[:2000]]  # grids mlreg run wrote, not scripts
    for epochs in (int(e) or None for e in args.epochs.split(",")):
        for fraction in (int(f) for f in args.first_rung.split(",")):
            rows = []
            for root in roots:
                try:
                    rows.append(one(root, fraction, epochs))
                except Exception as e:  # noqa: BLE001 - a directory the replay cannot serve is said
                    print(f"  {root.name}: not replayed ({type(e).__name__}: {e})")
            agree = sum(r["agrees"] for r in rows)
            spent = sum(r["spent"] for r in rows) / max(len(rows), 1)
            print(f"epochs {epochs or 'as recorded'}, first rung = ceil(epochs / {fraction}): "
                  f"{agree}/{len(rows)} agree with the grid, {spent:.2f} of its run-epochs on average")
            for r in rows:
                if not r["agrees"] or r["pruned_grid_best"]:
                    print(f"  {r['dir']}: grid {json.loads(r['grid_best'])} search {json.loads(r['search_best'])}"
                          f"{' (pruned the grid best)' if r['pruned_grid_best'] else ''}")


if __name__ == "__main__":
    main()
