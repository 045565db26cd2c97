"""The ``mutransfer`` command line: run a sweep, list sweeps, report on one, serve the dashboards.

    mutransfer run SPEC.yaml [--results DIR] [--address ADDR] [--resume SWEEP_ID] [--refine | --decide]
                             [--dry-run] [--json]
    mutransfer list [--results DIR] [--json]
    (--results default: $MUTRANSFER_RESULTS, else ./results; every command prints the root it reads)
    mutransfer report SWEEP_ID [--results DIR] [--json] [--metric M] [--diverged inf|best_before]
    mutransfer serve [--results DIR] [--address ADDR] [--host H] [--port P]
    mutransfer diagnose KIND [--set KEY=VALUE ...] [--out FILE.parquet]
    mutransfer diagnose list
    mutransfer data fetch NAME [--cache-dir DIR]
    mutransfer schema                 the spec's JSON Schema (for editors validating YAML specs)

``run`` starts an embedded local Ray by default; ``--address HOST:PORT`` (or $RAY_ADDRESS) attaches
to a running cluster; ``--executor local`` trains in this process without Ray. ``mutransfer COMMAND
--help`` describes each command's options and their defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from mutransfer.results import ResultsRootError, ResultsStore, default_results_root
from sweeps.spec import SpecError, SweepSpec, load_spec, parse_spec


class UserError(Exception):
    """Something the user can fix; printed as one ``error:`` line (exit status 2)."""


def _store_spec(store: ResultsStore, sweep_id: str) -> SweepSpec | None:
    """The spec a sweep was started with: from the registry, else specs/<id>.json beside the
    results (either may be missing or corrupt; then None)."""
    from sweeps.bookkeeping import load_saved_spec
    from sweeps.registry import default_path

    reg = default_path(store.root)
    if reg is not None and reg.exists():
        try:
            from sweeps.recovery import open_registry

            row = open_registry(reg, store).sweep(sweep_id)
            if row and row.get("spec"):
                return parse_spec(row["spec"])
        except Exception:  # an unreadable registry must not break report
            pass
    return load_saved_spec(store, sweep_id)


def _report(store: ResultsStore, sweep_id: str, metric: str | None, as_json: bool, diverged: str = "inf") -> str:
    """The optimum-shift report of a sweep, provisional (k/n cells) while cells of its plan are
    unfinished; the unfinished cells are listed at the end of the text."""
    from mutransfer.report import check_diverged, format_report
    from sweeps import state

    try:
        check_diverged(diverged)
    except ValueError as e:
        raise UserError(f"--diverged: {e}") from None
    spec = _store_spec(store, sweep_id)
    runs = store.load_runs(sweep_id)
    metric = metric or (spec.metric if spec else state.DEFAULT_METRIC)
    plan, record, decided = state.Plan(), None, None
    if spec is not None:
        from sweeps import decide, refine

        record = refine.load_record(store, sweep_id)
        if record is not None and record.spec_hash != spec.spec_hash():
            record = None
        decided = decide.matching_record(store, sweep_id, spec)
        plan = state.spec_plan(store, sweep_id, spec, record, decided)  # the spec's parts, its refinement's, its decide loop's
    report = state.sweep_report(runs, sweep_id=sweep_id, plan=plan, metric=metric, diverged=diverged,
                                refinement=None if record is None else record.to_json(),
                                decide=None if decided is None else decided.to_json())
    if as_json:
        return json.dumps(report.to_json(), indent=2, allow_nan=False)
    text = format_report(report)
    if record is not None:
        from sweeps.refine import summary

        text += "\n\n" + "\n".join(summary(record))
    if decided is not None:
        from sweeps.decide import summary as decide_summary

        text += "\n\n" + "\n".join(decide_summary(decided))
    if plan.missing:
        text += f"\n\nCells not finished yet ({len(plan.missing)}): " + ", ".join(plan.missing)
    return text


def _check_cost(spec) -> None:
    """The cost bound (sweeps/cost.py, limits from MUTRANSFER_* like the service's), before anything starts."""
    from sweeps import cost
    from sweeps import limits as limits_table

    try:
        cost.check(spec, limits_table.from_env())
    except ValueError as e:  # CostError, or a bad MUTRANSFER_* value
        raise UserError(str(e)) from None


def decide_spent(spec, record, runs_on_disk: int, wall_s: float) -> str:
    """One line: what ``run --decide`` spent (runs: the spec's, the loop's, on disk; this invocation's
    wall time) and what it concluded (each analysis's verdict, why the loop stopped)."""
    from sweeps.decide import STOPS
    from sweeps.progress import clock
    from sweeps.spec import count_runs

    verdicts = "; ".join(f"{v['analysis']}: {v['outcome']}" for v in record.verdicts) or "no analysis"
    return (f"decide spent: {runs_on_disk} runs on disk (the spec's {count_runs(spec)}, {record.runs_charged} added in "
            f"{len(record.rounds)} round(s)), {clock(wall_s)} wall time in this invocation; stopped: "
            f"{STOPS.get(record.stopped, record.stopped)}"
            + (f" ({record.detail})" if record.detail and (record.stopped != "decided" or record.unconfirmed) else "")
            + f"; concluded: {verdicts}")


def cmd_run(args) -> int:
    from sweeps import compile_cache
    from sweeps.local import run_sweep
    from sweeps.plan import count_runs

    spec = load_spec(args.spec)
    if args.refine and (args.decide or spec.decide is not None):
        raise UserError("--refine: the decide loop extends edges itself (and adds seeds); use --decide alone")
    args.decide = args.decide or spec.decide is not None  # the spec's decide: field asks for it too
    if args.decide and spec.decide is None:
        from sweeps.spec import Decide

        spec = spec.model_copy(update={"decide": Decide()})  # default limits; not in the hash: the same sweep
    _check_cost(spec)  # with --decide, the runs the loop may add count too
    if args.dry_run:
        return _dry_run(spec, args)
    store = ResultsStore(args.results)
    store.check_writable()  # a file, or a directory we cannot write: say so before anything starts
    if args.executor == "local" or not (args.address or os.environ.get("RAY_ADDRESS")):
        from mutransfer.data import locate

        locate(spec.dataset.name, data_dir=spec.dataset.data_dir)  # trained here: it must be here
    address = args.address or os.environ.get("RAY_ADDRESS")
    if args.executor == "ray" and address:
        from sweeps.ray_exec import check_reachable

        check_reachable(address)  # an unreachable cluster: said within seconds, before anything is written
    sweep_id = args.resume or spec.default_sweep_id()
    if args.resume:
        old = _store_spec(store, args.resume)
        if old is None:
            print(f"error: --resume: no sweep {args.resume!r} under {args.results} "
                  f"(known: {_known_sweeps(store) or 'none'})", file=sys.stderr)
            return 2
        if old.spec_hash() != spec.spec_hash():
            print(f"error: --resume: {args.spec} differs from the spec sweep {args.resume!r} was "
                  "started with; resume with the same spec, or run it as a new sweep", file=sys.stderr)
            return 2
    args.refine = args.refine or spec.refine is not None  # the spec's refine: field asks for it too
    if args.refine:
        from sweeps import refine

        try:
            refine.start_record(store, sweep_id, spec)  # a changed spec: refused before anything trains
        except refine.RefineError as e:
            raise UserError(f"--refine: {e}") from None
    if args.decide:
        from sweeps import decide

        try:
            decide.start_record(store, sweep_id, spec)  # a changed spec: refused before anything trains
        except decide.DecideError as e:
            raise UserError(f"--decide: {e}") from None
    cache = compile_cache.enable(args.jax_cache)
    lock = _lock_sweep(store, args.registry, sweep_id)
    try:
        print(f"sweep {sweep_id}: {count_runs(spec)} runs -> {args.results} "
              f"({'in-process' if args.executor == 'local' else 'Ray at ' + (args.address or 'an embedded local cluster')})",
              file=sys.stderr)
        if args.executor == "local":
            def progress(part: str, status: str, done: int, total: int) -> None:
                print(f"  [{done}/{total}] {part}: {status}", file=sys.stderr, flush=True)

            steps = step_printer(lambda line: print(line, file=sys.stderr, flush=True), STEP_PROGRESS_EVERY_S)

            def execute(rec, dec=None):
                return run_sweep(spec, args.results, sweep_id=sweep_id, on_cell=progress, refine_record=rec,
                                 on_steps=steps, decide_record=dec)
        else:
            def execute(rec, dec=None):
                out = _run_on_ray(spec, store, args, sweep_id, str(cache), rec, dec)
                print(file=sys.stderr)
                return out
        if args.decide:  # the spec's runs (and rounds recorded earlier) first, then round after round
            from sweeps.decide import run_decide

            outcomes = []

            def step_decide(rec) -> bool:
                outcomes.append(execute(None, rec))
                return not outcomes[-1].cells_failed

            started = time.monotonic()
            record = run_decide(spec, store, sweep_id, step_decide,
                                say=lambda line: print(line, file=sys.stderr, flush=True))
            print(decide_spent(spec, record, len(store.load_runs(sweep_id)), time.monotonic() - started),
                  file=sys.stderr, flush=True)
            outcome = outcomes[0]
            for out in outcomes[1:]:
                outcome.cells_failed.update(out.cells_failed)
        elif not args.refine:
            outcome = execute(None)
        else:  # the grid (and rounds recorded earlier) first, then round after round; finished parts are skipped
            from sweeps.refine import run_refinement

            outcomes = []

            def step(rec) -> bool:
                outcomes.append(execute(rec))
                return not outcomes[-1].cells_failed

            run_refinement(spec, store, sweep_id, step, say=lambda line: print(line, file=sys.stderr, flush=True))
            outcome = outcomes[0]
            for out in outcomes[1:]:
                outcome.cells_failed.update(out.cells_failed)
    finally:
        from sweeps import locks

        locks.release(lock)
    print(_report(store, sweep_id, None, args.json))
    print(f"\nresults: {args.results} (sweep_id={sweep_id}); "
          f"pandas: mutransfer.results.load({sweep_id!r}, root={str(args.results)!r})", file=sys.stderr)
    print(browse_hint(args.results, sweep_id), file=sys.stderr)
    for cid, err in outcome.cells_failed.items():
        print(f"cell {cid} failed: {err}", file=sys.stderr)
    return 1 if outcome.cells_failed else 0


def _dry_run(spec: SweepSpec, args) -> int:
    """What ``run`` would do: sweep id, cells, runs (with the decide loop, the most its limits allow)
    and a time estimate from this machine's measured pace. Starts no Ray, writes nothing."""
    from sweeps.estimate import clock, estimate, planned_runs
    from sweeps.plan import count_runs, plan

    from mutransfer.data import locate

    locate(spec.dataset.name, data_dir=spec.dataset.data_dir)  # the probe trains here
    sweep_id = args.resume or spec.default_sweep_id()
    cells = plan(spec)
    n = count_runs(spec)
    print(f"sweep id: {sweep_id}")
    local = f"; a local grid (radius {spec.grid.radius}) at every size but the base" if spec.local_grid else ""
    print(f"cells: {len(cells)} ({len(spec.algorithms)} algorithm(s) × {len(spec.parametrizations)} "
          f"parametrisation(s) × {len(spec.widths)} width(s) × {len(spec.depths)} depth(s){local})")
    print(f"runs: {n}")
    est = estimate(spec)
    t = est.seconds(planned_runs(spec))
    extra = ""
    if args.decide:
        from sweeps.decide import limits

        lim = limits(spec)
        print(f"decide: at most {lim.max_runs} runs added (max_runs), {lim.max_rounds} rounds, {lim.max_seeds} seeds "
              f"at a point: at most {n + lim.max_runs} runs in all")
        worst = t + est.worst_per_run() * lim.max_runs + est.compile_s * len(cells) * lim.max_rounds
        extra = f"; with the decide loop at most ≈ {clock(worst)}"
    print(f"time: ≈ {clock(t)} for the spec's runs on this machine, one cell after another{extra} "
          f"(measured: {est.probe_runs} runs of {est.probe_cell} for a few steps; compile ≈ {est.compile_s:.1f} s a cell)")
    print("nothing was started or written (--dry-run)")
    return 0


STEP_PROGRESS_EVERY_S = 30.0  # in-process runs: a progress line within a trial at most this often


def step_printer(say: Callable[[str], None], every_s: float = STEP_PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> Callable[[str, int, int], None]:
    """``on_steps`` for an in-process sweep: one line per trial at most every ``every_s`` seconds,
    ``    cell-…: step 500/2811 (18 %), ≈ 41 min left``. The estimate extrapolates the pace since
    the trial's first report (so compile time is not in it); none before a second report."""
    first: dict[str, tuple[float, int]] = {}
    last: dict[str, float] = {}

    def on_steps(part: str, done: int, total: int) -> None:
        now = clock()
        t0, d0 = first.setdefault(part, (now, done))
        if done >= total or done <= d0 or now - last.get(part, t0) < every_s:
            return
        last[part] = now
        left = (now - t0) / (done - d0) * (total - done)
        say(f"    {part}: step {done}/{total} ({100 * done / total:.0f} %), ≈ {_minutes(left)} left")

    return on_steps


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _lock_sweep(store: ResultsStore, registry: str | None, sweep_id: str) -> int | None:
    """Hold the sweep's lock while this process runs it (none without a local registry)."""
    from sweeps import locks
    from sweeps.registry import default_path

    reg = registry or default_path(store.root)
    if reg is None:
        return None
    path = locks.lock_path(reg, sweep_id)
    fd = locks.acquire(path, wait_s=1.0)
    if fd is None:
        raise UserError(f"sweep {sweep_id} is being run by another process (pid {locks.owner(path)}); wait for "
                        "it to finish, or cancel it")
    locks.record_owner(fd)
    return fd


def _run_on_ray(spec: SweepSpec, store: ResultsStore, args, sweep_id: str, cache: str, refine_record=None,
                decide_record=None):
    """Run on Ray with a reaper (the embedded Ray's processes die with this one, however it dies)
    and a watch on the embedded cluster (if it dies, say so and stop instead of hanging)."""
    from sweeps import processes
    from sweeps.driver import Heartbeat
    from sweeps.ray_exec import connect, run_sweep_ray

    reaper = processes.start_reaper()

    def ray_died(message: str) -> None:
        print(f"\nerror: {message}; rerun the same command to resume (finished cells are kept)",
              file=sys.stderr, flush=True)
        os._exit(1)

    beat = Heartbeat(None, sweep_id, ray_died).start()
    try:
        started = connect(args.address)
        if started:
            beat.watch_embedded_ray()
        out = run_sweep_ray(spec, args.results, sweep_id=sweep_id, address=args.address,
                            registry_path=args.registry, max_failures=args.max_failures, jax_cache=cache,
                            on_progress=_progress_printer(), refine_record=refine_record,
                            decide_record=decide_record)
        beat.stop()
        if started:
            import ray

            ray.shutdown()
        return out
    finally:
        beat.stop()
        reaper.disarm()


DEFAULT_PORT = 8000


# --results of every command that reads results: unset means the one rule of
# mutransfer.results.default_results_root ($MUTRANSFER_RESULTS, else ./results), resolved in main().
RESULTS_ARG = dict(default=None, metavar="DIR",
                   help="results root: a directory or a pyarrow filesystem URI (default: $MUTRANSFER_RESULTS, "
                        "else ./results)")


def resolve_results(args) -> None:
    """Fill an unset --results by the one rule and say on stderr which root the command reads."""
    if not hasattr(args, "results"):
        return
    if args.results is None:
        args.results = str(default_results_root())
        how = "$MUTRANSFER_RESULTS" if os.environ.get("MUTRANSFER_RESULTS") else "default ./results"
    else:
        how = "--results"
    if "://" not in str(args.results):
        args.results = str(Path(args.results).expanduser().absolute())
    print(f"results: {args.results} ({how})", file=sys.stderr)


def check_results_dir(path: str) -> None:
    """A results root to read must be an existing directory: else one error line saying where."""
    if "://" in str(path):
        return
    p = Path(path)
    if not p.exists():
        raise UserError(f"--results {path}: no such directory (the results root is --results, else "
                        "$MUTRANSFER_RESULTS, else ./results)")
    if not p.is_dir():
        raise UserError(f"--results {path}: is a file, not a results directory")


def browse_hint(results: str, sweep_id: str, port: int = DEFAULT_PORT) -> str:
    """How to open a sweep's dashboards: the serve command and the pages' URLs."""
    base = f"http://127.0.0.1:{port}/sweeps/{sweep_id}"
    return (f"dashboards: mutransfer serve --results {results}\n"
            f"  then open {base}/contours  (runs table: {base}/table, report: {base}/report?format=html)")


def cmd_list(args) -> int:
    from sweeps.listing import format_rows, sweep_rows

    check_results_dir(args.results)
    rows = sweep_rows(args.results, verdicts=not args.no_verdicts)
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0


def _progress_printer(tty: bool | None = None, every_s: float | None = None, clock_s=time.time):
    """A one-line progress bar on a terminal (with elapsed time and ETA; below 100 % until the sweep
    has finished); otherwise (a log file) a line per finished trial, and while trials run a line at
    most every ``STEP_PROGRESS_EVERY_S`` when the fraction has moved."""
    from sweeps.progress import clock

    tty = sys.stderr.isatty() if tty is None else tty
    every_s = STEP_PROGRESS_EVERY_S if every_s is None else every_s
    last = {"done": -1, "t": clock_s(), "frac": 0.0}
    t0 = clock_s()

    def show(p) -> None:
        frac = p.fraction
        bar = "#" * int(30 * frac)
        runs = p.runs_done + p.runs_in_progress
        line = (f"[{bar:<30}] {frac:6.1%}  runs {runs:,.0f}/{p.runs_total}  trials {p.trials_done}/"
                f"{p.trials_total} done, {len(p.running)} running, {p.trials_failed} failed  "
                f"elapsed {clock(clock_s() - t0)}  ETA {clock(p.eta_s()) if not p.finished else '0:00'}")
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif (p.trials_done + p.trials_failed != last["done"] or p.finished
              or (frac != last["frac"] and clock_s() - last["t"] >= every_s)):
            last.update(done=p.trials_done + p.trials_failed, t=clock_s(), frac=frac)
            print(line, file=sys.stderr, flush=True)
    return show


def _known_sweeps(store: ResultsStore) -> list[str]:
    """Sweeps with results in the store, plus those the registry knows (e.g. just started)."""
    from sweeps.registry import default_path

    known = set(store.sweeps())
    reg = default_path(store.root)
    if reg is not None and reg.exists():
        try:
            from sweeps.recovery import open_registry

            known |= {row["sweep_id"] for row in open_registry(reg, store).sweeps()}
        except Exception:  # an unreadable registry must not break report
            pass
    return sorted(known)


def cmd_report(args) -> int:
    check_results_dir(args.results)
    store = ResultsStore(args.results)
    store.check_readable()
    known = _known_sweeps(store)
    if args.sweep_id not in known:
        print(f"error: no sweep {args.sweep_id!r} under {args.results} (known: {known or 'none'})",
              file=sys.stderr)
        return 2
    print(_report(store, args.sweep_id, args.metric, args.json, args.diverged))
    return 0


def cmd_data_fetch(args) -> int:
    from mutransfer.data import DownloadError, fetch

    try:
        path = fetch(args.name, cache_dir=args.cache_dir, base_url=args.base_url)
    except DownloadError as e:
        raise UserError(f"{e}; check the network connection, or pass --base-url MIRROR "
                        "(http://, https:// or file:// holding the same files)") from None
    print(f"{args.name}: {path}")
    return 0


def cmd_schema(args) -> int:
    from sweeps.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _parse_settings(pairs: list[str]) -> dict:
    """`key=value` pairs; values are YAML scalars, comma-separated values become lists."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpecError([("--set", f"expected KEY=VALUE, got {pair!r}")])
        key, value = pair.split("=", 1)
        items = [yaml.safe_load(v) for v in value.split(",")]
        out[key.strip()] = items if "," in value else items[0]
    return out


def cmd_diagnose(args) -> int:
    from mutransfer.diagnostics import ANALYSES, run_analysis

    if args.kind == "list":
        for name, a in ANALYSES.items():
            import dataclasses
            fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(a.config))
            print(f"{name}: {a.description}\n    {fields}")
        return 0
    store = None
    if args.sweep:  # check the sweep before computing anything
        check_results_dir(args.results)
        store = ResultsStore(args.results)
        if args.sweep not in _known_sweeps(store):
            raise UserError(f"--sweep {args.sweep}: no such sweep under {args.results} "
                            f"(known: {', '.join(_known_sweeps(store)) or 'none'})")
    try:
        df = run_analysis(args.kind, _parse_settings(args.set or []))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from mutransfer.diagnostic_columns import headline

    column = headline(args.kind)
    value = column.value if column is not None and column.value in df.columns else None
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.max_rows", 200):
        if value is not None and {"width", "depth"} <= set(df.columns) and df["width"].nunique() > 1 \
                and df["depth"].nunique() > 1:
            keys = [c for c in ("parametrization", "residual", "activation", "step") if c in df.columns]
            for key, grp in (df.groupby(keys) if keys else [((), df)]):
                print(f"{value} over depth (rows) × width (columns): {dict(zip(keys, key if isinstance(key, tuple) else (key,)))}")
                print(grp.pivot_table(index="depth", columns="width", values=value, aggfunc="median").to_string(
                    float_format=lambda v: f"{v:.4g}"))
                print()
        else:
            print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        df.to_parquet(args.out, index=False)
        print(f"wrote {len(df)} rows to {args.out}", file=sys.stderr)
    if args.sweep:
        name = diagnose_name(args.kind, args.set or [])
        store.write_analysis(args.sweep, name, df)
        print(f"kept as {name!r} with sweep {args.sweep}: http://127.0.0.1:{DEFAULT_PORT}/sweeps/{args.sweep}/"
              "diagnostics", file=sys.stderr)
    return 0


def diagnose_name(kind: str, settings: list[str]) -> str:
    """The analysis name of a CLI diagnosis: ``cli<hash of its settings>-<kind>`` (the page reads the
    kind after the first dash), so reruns with the same settings replace it and others sit beside it."""
    import hashlib

    h = hashlib.sha256("\n".join([kind, *sorted(settings)]).encode()).hexdigest()[:6]
    return f"cli{h}-{kind}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line saying where to look (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; a None/False default is described by the option's help."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mutransfer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = HelpFormatter
    results_kw = RESULTS_ARG

    r = sub.add_parser("run", help="run a sweep spec and print its optimum-shift report", formatter_class=fmt,
                       description="Train every run of a sweep spec (YAML or JSON), write the runs and curves "
                                   "tables to Parquet, print the optimum-shift report and how to browse it. "
                                   "Rerunning the same spec skips every finished cell.")
    r.add_argument("spec", type=Path, help="sweep spec file (see sweeps/specs/*.yaml)")
    r.add_argument("--results", **results_kw)
    r.add_argument("--resume", metavar="SWEEP_ID", default=None,
                   help="finish an interrupted sweep (must be the same spec)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--refine", action="store_true",
                   help="when the grid is finished, extend every lr axis whose optimum sits on its edge by the "
                        "grid's own step, and repeat until the optima are interior or the spec's refine: "
                        "{max_rounds, max_runs} limits (default 3 rounds, the spec's run count) are hit; the "
                        "extension is part of the same sweep")
    r.add_argument("--decide", action="store_true",
                   help="after the spec's runs, act on every undecided verdict's reasons (extend an edge, add "
                        "seeds where the optimum is still open, ...) and repeat until every verdict is decided or "
                        "the spec's decide: {max_runs, max_seeds, max_rounds} limits are hit (default: as many "
                        "runs as the spec's, 8 seeds, 6 rounds); part of the same sweep (docs/guide/decide.md)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the sweep id, cells, runs (with --decide the most the limits allow) and a time "
                        "estimate from this machine's pace; start nothing, write nothing")
    r.add_argument("--address", default=None,
                   help="Ray cluster HOST:PORT (default: $RAY_ADDRESS, else an embedded local Ray)")
    r.add_argument("--executor", choices=("ray", "local"), default="ray",
                   help="ray, or local: train in this process without Ray")
    r.add_argument("--registry", default=None, help="sweep registry SQLite file (default: RESULTS/registry.sqlite)")
    r.add_argument("--max-failures", type=int, default=2, help="retries of a trial whose worker fails")
    r.add_argument("--jax-cache", default=None,
                   help="JAX persistent compilation cache directory (shared storage on a cluster; "
                        "default: $MUTRANSFER_JAX_CACHE, else the user cache dir)")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list sweeps: id, name, status, runs done/total, verdicts, age",
                        formatter_class=fmt,
                        description="One line per sweep under --results, newest first. Verdicts come from the "
                                    "runs finished so far (marked provisional while a sweep is unfinished).")
    ls.add_argument("--results", **results_kw)
    ls.add_argument("--json", action="store_true", help="print the rows as JSON")
    ls.add_argument("--no-verdicts", action="store_true", help="skip computing verdicts (faster on huge sweeps)")
    ls.set_defaults(func=cmd_list)

    rep = sub.add_parser("report", help="print the optimum-shift report of a sweep", formatter_class=fmt,
                         description="The optimum-shift report of a sweep (finished cells only while it runs: "
                                     "marked PROVISIONAL (k/n cells) at the top, the missing cells listed).")
    rep.add_argument("sweep_id", help="the sweep's id, e.g. quickstart-47e8de33 (mutransfer list shows them)")
    rep.add_argument("--results", **results_kw)
    rep.add_argument("--json", action="store_true", help="print the report as JSON")
    rep.add_argument("--metric", default=None, choices=_metric_names(),
                     help="min_train_loss, final_train_loss, best_test_acc or final_test_acc "
                          "(default: the spec's metric)")
    rep.add_argument("--diverged", default="inf", metavar="POLICY",
                     help="how a diverged run counts: inf (+inf: one diverged seed makes its grid point +inf) "
                          "or best_before (its metric from before it diverged, the muPC paper's rule)")
    rep.set_defaults(func=cmd_report)

    dg = sub.add_parser("diagnose", help="one-off inference-landscape diagnostics (no spec needed); "
                                         "'diagnose list' shows the kinds", formatter_class=fmt,
                        description="Kinds: hessian_condition, hessian_condition_during_training, "
                                    "loss_energy_ratio, coordinate_check, gradient_alignment, "
                                    "training_diagnostics ('list' shows "
                                    "their settings and defaults). Example: mutransfer diagnose hessian_condition "
                                    "--set widths=8,16 --set depths=2,4,8 --set activation=linear")
    dg.add_argument("kind", help="an analysis kind, or 'list'")
    dg.add_argument("--set", action="append", metavar="KEY=VALUE", default=None,
                    help="a setting of the kind (repeat; lists comma-separated)")
    dg.add_argument("--out", default=None, help="also write the table to this Parquet file")
    dg.add_argument("--sweep", default=None, metavar="SWEEP_ID",
                    help="also keep the table with this sweep's results, so it appears on the sweep's "
                         "diagnostics page (/sweeps/SWEEP_ID/diagnostics)")
    dg.add_argument("--results", **results_kw)
    dg.set_defaults(func=cmd_diagnose)

    d = sub.add_parser("data", help="datasets: 'data fetch NAME' downloads and verifies one")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    f = dsub.add_parser("fetch", help="download and verify a dataset (mnist, cifar10)", formatter_class=fmt)
    f.add_argument("name", choices=_dataset_names(),
                   help="mnist or cifar10 (downloaded); fashion_mnist and digits are only located")
    f.add_argument("--cache-dir", default=None, help="where datasets are kept (default: $MUTRANSFER_DATA_DIR, "
                                                      "else the user data dir)")
    f.add_argument("--base-url", default=None, help="mirror to download from (default: the dataset's public mirror)")
    f.set_defaults(func=cmd_data_fetch)

    sc = sub.add_parser("schema", help="print the sweep spec's JSON Schema (for editors validating YAML specs)",
                        formatter_class=fmt)
    sc.set_defaults(func=cmd_schema)
    return p


def _metric_names() -> list[str]:
    from mutransfer.report import METRICS

    return sorted(METRICS)


def _dataset_names() -> list[str]:
    from mutransfer.data import DATASETS

    return sorted(DATASETS)


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a command. A user error is one ``error:`` line and exit status 2; a reader that goes
    away (``report --json | head``) ends the command quietly with 141, as shell tools do."""
    from sweeps.ray_exec import ClusterError

    args = (parser or build_parser()).parse_args(argv)
    try:
        resolve_results(args)
        return args.func(args)
    except (SpecError, UserError, ClusterError, ResultsRootError, FileNotFoundError, PermissionError) as e:
        # FileNotFoundError: e.g. a missing dataset (its message says how to get it)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print("\nerror: interrupted; rerun the same command to resume (finished cells are kept)", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MUTRANSFER_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e} (unexpected; set MUTRANSFER_DEBUG=1 to see the traceback)",
              file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
