"""The `mlreg` command. Exit codes: 0 success, 2 bad input (a message, no traceback), 1 otherwise.

Nothing heavy is imported at start: `mlreg --help`, `validate`, `compare` and
`plot` never import TensorFlow.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    from mlreg import __version__

    common = argparse.ArgumentParser(add_help=False)  # options taken before or after the command
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="let TensorFlow's log messages through")
    p = argparse.ArgumentParser(
        prog="mlreg", parents=[common],
        description="Regularization experiments on Keras: sweep, record honestly, compare, plot.",
    )
    p.add_argument("--version", action="version", version=f"mlreg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help)

    _run_args(command("run", "train an experiment's sweep into a results directory"))
    command("validate", "check an experiment file and list its runs; trains nothing").add_argument("file")
    command("datasets", "list the built-in data sets")
    _compare_args(command("compare", "rank settings over seeds from saved results"))
    _plot_args(command("plot", "draw comparison plots from saved results"))
    _import_args(command("import", "bring Keras CSVLogger files (one per run) into a results directory"))
    ex = command("export", "write results for another tool")
    ex.add_argument("format", choices=["tensorboard", "mlflow"])
    ex.add_argument("dirs", nargs="+", metavar="DIR", help="results directories")
    ex.add_argument("--logdir", help="tensorboard: the log directory to write")
    ex.add_argument("--tracking-uri", help="mlflow: the tracking store (sqlite:///mlflow.db, http://host:5000, a "
                    "folder; default: MLFLOW_TRACKING_URI, else ./mlruns). Exporting again adds only the runs "
                    "not there yet")
    ex.add_argument("--experiment", help="mlflow: the experiment (default: each directory's experiment name)")
    rp = command("report", "write one self-contained HTML report")
    rp.add_argument("dirs", nargs="+", metavar="DIR", help="results directories")
    rp.add_argument("--out", help="the HTML file (default: DIR/report.html, or ./report.html)")
    rp.add_argument("--metric", help="the runs.csv column to rank by (default: as compare)")
    _baseline_args(rp)
    return p


def _run_args(r: argparse.ArgumentParser) -> None:
    from mlreg.spec import BACKENDS, ENGINES

    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("--out", help="results directory (default: results/<name>)")
    r.add_argument("--fresh", action="store_true",
                   help="move an existing results directory aside and start anew")
    r.add_argument("--epochs", type=int, help="override training.epochs, for quick tries")
    r.add_argument("--engine", choices=ENGINES,
                   help="how runs train (default: the file's training.engine, else auto)")
    r.add_argument("--max-pack", type=int, metavar="K", help="most runs the fused engine trains in one graph")
    r.add_argument("--max-runs", type=int, metavar="N", help="refuse plans with more runs (default: 100,000)")
    r.add_argument("--workers", type=int, metavar="N", help="train in N worker processes on this machine")
    r.add_argument("--dask", metavar="ADDRESS",
                   help='train on a Dask cluster: its scheduler ("tcp://host:8786"), or "local" for a LocalCluster '
                        "of --workers processes (pip install 'mlreg[dask]')")
    r.add_argument("--mlflow", metavar="URI", help="log the sweep to this MLflow tracking store while it trains "
                   "(sqlite:///mlflow.db, http://host:5000; as `mlreg export mlflow`; pip install 'mlreg[mlflow]')")
    r.add_argument("--backend", choices=BACKENDS,
                   help="the Keras backend (default: KERAS_BACKEND, else jax)")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no table")


def _compare_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("dirs", nargs="+", metavar="DIR", help="results directories")
    c.add_argument("--metric", help="a runs.csv column (default: best_val_data_loss, else the validation metric)")
    c.add_argument("--by", nargs="+", metavar="PARAM", help="columns defining a setting")
    c.add_argument("--kinds", action="store_true",
                   help="which kind of regularization: each swept kind's best against none, and the best combination")
    _baseline_args(c)
    c.add_argument("--csv", metavar="OUT", help="also write the table to a CSV file")


def _baseline_args(parser: argparse.ArgumentParser) -> None:
    from mlreg.spec import ADJUSTMENTS

    parser.add_argument("--baseline", help='the setting to compare against, e.g. "l2=0"')
    parser.add_argument("--adjust", choices=ADJUSTMENTS, default="none",
                        help="adjust the baseline comparisons' p-values for their number (Holm)")


def _plot_args(pl: argparse.ArgumentParser) -> None:
    from mlreg.spec import PLOTS

    pl.add_argument("dirs", nargs="+", metavar="DIR", help="results directories")
    pl.add_argument("--out", help="where to write (default: DIR/plots, or ./plots for several DIRs)")
    pl.add_argument("--kind", nargs="+", metavar="KIND",
                    help=f"which plots (default: all): {' '.join(PLOTS)}")
    pl.add_argument("--format", choices=["png", "svg"], default="png")


def _import_args(im: argparse.ArgumentParser) -> None:
    from mlreg.spec import TASKS

    im.add_argument("files", nargs="+", metavar="CSV", help="CSVLogger files, one per run")
    im.add_argument("--out", required=True, help="the results directory")
    im.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                    help="settings every file shares, e.g. l2=0.001 seed=0")
    im.add_argument("--pattern", help='settings from each file name, e.g. "run_l2={l2}_seed={seed}.csv"')
    im.add_argument("--task", default="single_label", choices=[t for t in TASKS if t != "auto"],
                    help="decides the metric column: accuracy, or mae for regression")
    im.add_argument("--name", help="the experiment's name (default: the directory's)")


def main(argv: Sequence[str] | None = None) -> int:
    from mlreg import signals

    signals.install()  # first: a Ctrl-C while TensorFlow or JAX is imported must not be swallowed or crash it
    args = _parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    from mlreg.spec import InputError

    try:
        code = _COMMANDS[args.command](args)
        signals.check()
        return code
    except InputError as e:
        print(f"mlreg: error: {e}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:  # e.g. `mlreg validate FILE | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as e:
        return _interrupted(getattr(e, "signum", signal.SIGINT))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        print(f"mlreg: error: the disk is full ({e.filename or 'writing results'}); finished runs are kept. "
              "Free some space and run again to resume", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a clear line, not a traceback
        from mlreg.runner import SweepError

        print(f"mlreg: {'' if isinstance(e, SweepError) else type(e).__name__ + ': '}{e}",
              file=sys.stderr)
        return 1


def _interrupted(signum: int) -> int:
    print(f"\nmlreg: interrupted ({signal.Signals(signum).name}); finished runs are kept, run again to resume",
          file=sys.stderr)
    return 128 + signum


def entry() -> None:
    """The `mlreg` command: `main`, then out of the process at once. Python's own exit tears
    TensorFlow and JAX down (about 0.8 s), and a Ctrl-C or SIGTERM landing there killed the
    process by the signal, with no line (issue 35.6); everything is written and closed when
    `main` returns, so nothing is left for that teardown to do. A signal that arrived after
    `main`'s last safe point ends it as any stop does: 128 + the signal, and the one line."""
    from mlreg import signals

    code = main()
    if signals.STOP.is_set() and code == 0:
        code = _interrupted(signals.received())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    from mlreg.runner import run
    from mlreg.spec import load_spec

    spec = load_spec(args.file)
    limits = {"max_runs": args.max_runs} if args.max_runs else {}
    report = run(spec, out=args.out, fresh=args.fresh, epochs=args.epochs, engine=args.engine,
                 max_pack=args.max_pack, workers=args.workers, dask=args.dask, backend=args.backend,
                 progress=not args.quiet, verbose=args.verbose, mlflow=args.mlflow, **limits)
    print(report)
    if not args.quiet:
        _print_compare([report.out], metric=None)
    return 0


SHOWN_RUNS = 40
"""`validate` lists plans up to this size; larger ones are summarised."""


def _validate(args: argparse.Namespace) -> int:
    from mlreg.spec import InputError, load_spec

    spec = load_spec(args.file)
    try:
        return _check_and_list(spec)
    except InputError as e:
        raise spec.named(e) from None


def _check_and_list(spec: Any) -> int:
    from itertools import islice

    from mlreg.check import check
    from mlreg.data import for_run, load
    from mlreg.engines import plan
    from mlreg.runner import default_out
    from mlreg.search import describe_search

    shown = list(islice(spec.iter_runs(), SHOWN_RUNS))
    print(f"{spec.name}: {'at most ' if spec.searches else ''}{spec.size} -> {default_out(spec)}")
    if spec.searches:
        print(f"  search: {describe_search(spec)}")
    for data_spec in spec.data_specs():
        ds = load(data_spec, split=0 if data_spec.repeats else None, fold=0 if data_spec.folds else None,
                  draw=0 if data_spec.draws else None,
                  root=spec.root)
        test = f" / {len(ds.x_test)} test" if ds.x_test is not None else ""
        shape = f"{ds.n_features} features" if len(ds.input_shape) == 1 else f"samples of shape {list(ds.input_shape)}"
        print(f"  data {ds.name}: task {ds.task}, {shape}, "
              f"{len(ds.x_train)} train / {len(ds.x_val)} val{test} samples")
    shown, reasons, notes = check(shown, {r.data_key: for_run(r) for r in shown}, spec.swept,
                                  fused=spec.training.engine != "keras")  # as `run` checks its whole plan
    note = plan(shown, spec.training.engine, reasons=reasons)[1]
    for line in [*notes, *([note] if note else [])]:
        print(f"  {line}")
    swept = [p for p in spec.swept if p != "variant"]
    resampling = list(shown[0].resampling)
    header = ["run_id", "seed", *resampling, *(["variant"] if spec.variants else []), *swept]
    rows = [[r.run_id, str(r.seed), *(str(v) for v in r.resampling.values()),
             *([r.variant or ""] if spec.variants else []), *(str(r.params_for_csv()[p]) for p in swept)]
            for r in shown]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if spec.n_runs > len(shown):
        print(f"  ... and {spec.n_runs - len(shown):,} more runs")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from mlreg.datasets import DESCRIPTIONS

    width = max(map(len, DESCRIPTIONS))
    for name, text in DESCRIPTIONS.items():
        print(f"{name.ljust(width)}  {text}")
    return 0


def _print_compare(dirs: Sequence[str | Path], *, metric: str | None, by: Sequence[str] | None = None,
                   baseline: str | None = None, adjust: str = "none", csv: str | None = None) -> None:
    from mlreg.analysis.compare import compare, format_table

    table = compare(_load(dirs), metric=metric, by=by, baseline=baseline, adjust=adjust)
    print(format_table(table))
    if csv:
        table.to_csv(csv, index=False)
        print(f"wrote {csv}")


def _compare(args: argparse.Namespace) -> int:
    if args.kinds:
        from mlreg.analysis.kinds import format_kinds, kinds

        table = kinds(_load(args.dirs), metric=args.metric)
        print(format_kinds(table))
        if args.csv:
            table.to_csv(args.csv, index=False)
            print(f"wrote {args.csv}")
        return 0
    _print_compare(args.dirs, metric=args.metric, by=args.by, baseline=args.baseline, adjust=args.adjust,
                   csv=args.csv)
    return 0


def _load(dirs: Sequence[str | Path]) -> object:
    from mlreg.analysis.results import load_results

    results = [load_results(d) for d in dirs]
    return results if len(results) > 1 else results[0]


def _default_out(dirs: Sequence[str], name: str) -> Path:
    """`DIR/name` for one results directory, `./name` for several."""
    return Path(dirs[0]) / name if len(dirs) == 1 else Path(name)


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlreg.analysis.plots import figures
    from mlreg.spec import PLOTS, InputError

    out = Path(args.out or _default_out(args.dirs, "plots"))
    if out.exists() and not out.is_dir():
        raise InputError(f"Invalid value for `--out`: {out} is a file, not a folder for the plots. "
                         f"Received: out={str(out)!r}")
    figs = figures(_load(args.dirs), args.kind or PLOTS)
    out.mkdir(parents=True, exist_ok=True)
    for stem, fig in figs.items():
        fig.savefig(out / f"{stem}.{args.format}", dpi=120)
        plt.close(fig)
    print(f"wrote {len(figs)} plots to {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from mlreg.analysis.report import write

    out = args.out or _default_out(args.dirs, "report.html")
    if Path(out).is_dir():
        from mlreg.spec import InputError

        raise InputError(f"Invalid value for `--out`: {out} is a folder; name the HTML file. "
                         f"Received: out={str(out)!r}")
    path = write(_load(args.dirs), out, metric=args.metric, baseline=args.baseline, adjust=args.adjust)
    print(f"wrote {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from mlreg.analysis.compare import parse_setting
    from mlreg.recorder import import_csv_logs

    n, lacks = import_csv_logs(args.files, args.out, params=parse_setting(",".join(args.set)), pattern=args.pattern,
                               task=args.task,
                               name=args.name)
    print(f"imported {n} run{'s' * (n != 1)} into {args.out} ({len(args.files) - n} already there)")
    print(f"these runs lack {', '.join(lacks)}: Keras's loss and val_loss include the penalty, so no "
          "honest column is derived from them. Their best epoch is the lowest val_loss; compare, plot and "
          "report rank them by val_accuracy_at_best (or val_mae_at_best) and draw their val_loss")
    return 0


def _export(args: argparse.Namespace) -> int:
    from mlreg.analysis.export import ExportError, tensorboard

    if args.format == "mlflow":
        from mlreg.analysis.tracking import to_mlflow

        counts = to_mlflow(_load(args.dirs), args.tracking_uri, args.experiment,
                           say=lambda text: print(f"mlreg: {text}", file=sys.stderr))
        replaced = f", {counts['replaced']} left incomplete before were replaced" if counts["replaced"] else ""
        print(f"MLflow: {counts['added']} runs added, {counts['kept']} already there{replaced}")
        return 0
    if args.logdir is None:
        raise ExportError("Invalid value for `--logdir`: export tensorboard needs --logdir, the log directory to write")
    path = tensorboard(_load(args.dirs), args.logdir)
    print(f"wrote TensorBoard logs to {path}; view them with: tensorboard --logdir {path}")
    return 0


_COMMANDS = {"run": _run, "validate": _validate, "datasets": _datasets, "compare": _compare,
             "plot": _plot, "report": _report, "import": _import, "export": _export}
