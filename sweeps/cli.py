"""The ``mutransfer`` command line: run a sweep, report on one, fetch data.

    mutransfer run SPEC.yaml [--results DIR] [--resume SWEEP_ID] [--json]
    mutransfer report SWEEP_ID [--results DIR] [--json] [--metric M]
    mutransfer data fetch NAME [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mutransfer.results import ResultsStore, default_results_root
from sweeps.spec import SpecError, SweepSpec, load_spec, parse_spec


def _store_spec(store: ResultsStore, sweep_id: str) -> SweepSpec | None:
    path = f"{store.base_path}/specs/{sweep_id}.json"
    try:
        with store.filesystem.open_input_stream(path) as f:
            return parse_spec(json.loads(f.read().decode()))
    except (FileNotFoundError, OSError, ValueError):
        return None


def _report(store: ResultsStore, sweep_id: str, metric: str | None, as_json: bool) -> str:
    from mutransfer.report import format_report, optimum_shift_report

    spec = _store_spec(store, sweep_id)
    runs = store.load_runs(sweep_id)
    metric = metric or (spec.metric if spec else "min_train_loss")
    report = optimum_shift_report(runs, metric=metric)
    report["sweep_id"] = sweep_id
    if spec is not None:
        from sweeps.plan import plan
        from mutransfer.results import part_name

        done = store.completed_parts(sweep_id)
        report["cells_missing"] = [c.cell_id for c in plan(spec) if part_name(c.cell_id) not in done]
    if as_json:
        return json.dumps(report, indent=2, allow_nan=False)
    text = format_report(report)
    if report.get("cells_missing"):
        text += f"\n\nCells not finished yet ({len(report['cells_missing'])}): " + ", ".join(report["cells_missing"])
    return text


def cmd_run(args) -> int:
    from sweeps import compile_cache
    from sweeps.local import run_sweep
    from sweeps.plan import count_runs

    spec = load_spec(args.spec)
    store = ResultsStore(args.results)
    sweep_id = args.resume or spec.default_sweep_id()
    if args.resume:
        old = _store_spec(store, args.resume)
        if old is None:
            print(f"error: --resume: no sweep {args.resume!r} under {args.results} "
                  f"(known: {store.sweeps() or 'none'})", file=sys.stderr)
            return 2
        if old.spec_hash() != spec.spec_hash():
            print(f"error: --resume: {args.spec} differs from the spec sweep {args.resume!r} was "
                  "started with; resume with the same spec, or run it as a new sweep", file=sys.stderr)
            return 2
    compile_cache.enable(args.jax_cache)
    print(f"sweep {sweep_id}: {count_runs(spec)} runs in {len(spec.widths) * len(spec.depths) * len(spec.algorithms) * len(spec.parametrizations)} cells -> {args.results}",
          file=sys.stderr)

    def progress(cell_id: str, status: str, done: int, total: int) -> None:
        print(f"  [{done}/{total}] {cell_id}: {status}", file=sys.stderr, flush=True)

    outcome = run_sweep(spec, args.results, sweep_id=sweep_id, on_cell=progress)
    print(_report(store, sweep_id, None, args.json))
    print(f"\nresults: {args.results} (sweep_id={sweep_id}); "
          f"pandas: mutransfer.results.load({sweep_id!r}, root={str(args.results)!r})", file=sys.stderr)
    for cid, err in outcome.cells_failed.items():
        print(f"cell {cid} failed: {err}", file=sys.stderr)
    return 1 if outcome.cells_failed else 0


def cmd_report(args) -> int:
    store = ResultsStore(args.results)
    if args.sweep_id not in store.sweeps():
        print(f"error: no sweep {args.sweep_id!r} under {args.results} (known: {store.sweeps() or 'none'})",
              file=sys.stderr)
        return 2
    print(_report(store, args.sweep_id, args.metric, args.json))
    return 0


def cmd_data_fetch(args) -> int:
    from mutransfer.data import fetch

    path = fetch(args.name, cache_dir=args.cache_dir, base_url=args.base_url)
    print(f"{args.name}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mutransfer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    results_kw = dict(default=str(default_results_root()),
                      help="results root: a directory or a pyarrow filesystem URI (default: %(default)s)")

    r = sub.add_parser("run", help="run a sweep spec and print its optimum-shift report")
    r.add_argument("spec", type=Path)
    r.add_argument("--results", **results_kw)
    r.add_argument("--resume", metavar="SWEEP_ID", help="finish an interrupted sweep (same spec)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--jax-cache", default=None, help="JAX persistent compilation cache directory")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="print the optimum-shift report of a sweep")
    rep.add_argument("sweep_id")
    rep.add_argument("--results", **results_kw)
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--metric", default=None)
    rep.set_defaults(func=cmd_report)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download and verify a dataset (mnist, cifar10)")
    f.add_argument("name")
    f.add_argument("--cache-dir", default=None)
    f.add_argument("--base-url", default=None, help="mirror to download from")
    f.set_defaults(func=cmd_data_fetch)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # e.g. a missing dataset: its message says how to get it
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
