"""The decide loop against the exhaustive reference (issue 20): runs trained, wall time, verdicts.

For each small spec (μPC and SP width sweeps, a μPC depth sweep; digits, tiny widths, few steps):

* reference — the full lr grid at every size × 6 seeds, trained once, reported;
* decide    — 2 seeds, ``grid: {larger_sizes: local, radius: 1}`` (the whole grid only at the base
              size), then the decide loop (sweeps/decide.py) until every verdict is decided or a
              limit is hit: at most 6 seeds at a point, 6 rounds, and a third of the reference's
              runs in all (``decide.max_runs`` = that less the spec's own runs).

Both train in this process (sweeps/local.py: no Ray), one after the other, into a temporary results
root; wall time includes compilation (each new part shape compiles once, which on a CPU is most of a
tiny spec's time). Printed: one row per spec with runs and wall time of each, the ratio of runs, the
verdicts and whether they agree; then the decide loop's rounds.

    nice -n 10 python benchmarks/decide.py [--only mupc_width,sp_width,mupc_depth] [--steps 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mutransfer.results import ResultsStore  # noqa: E402
from sweeps import decide  # noqa: E402
from sweeps.local import run_sweep  # noqa: E402
from sweeps.spec import count_runs, parse_spec  # noqa: E402

ETAS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
BETAS = [0.02, 0.1, 0.5, 2.5]
COMMON = {"algorithms": ["pc"], "architecture": {"kind": "residual_mlp", "activation": "tanh"},
          "weight_lrs": ETAS, "activity_lrs": BETAS, "dataset": {"name": "digits"},
          "logging": {"every": 10}}
SPECS = {
    "mupc_width": {"parametrizations": ["mupc"], "widths": [8, 16, 32], "depths": [2]},
    "sp_width": {"parametrizations": ["sp"], "widths": [8, 16, 32], "depths": [2]},
    "mupc_depth": {"parametrizations": ["mupc"], "widths": [16], "depths": [2, 4, 8]},
}


def specs(name: str, steps: int):
    body = {**COMMON, **SPECS[name], "training": {"epochs": 1, "batch_size": 32, "max_steps": steps}}
    ref = parse_spec({"name": f"ref-{name.replace('_', '-')}", **body, "seeds": 6})
    local = parse_spec({"name": f"dec-{name.replace('_', '-')}", **body, "seeds": 2,
                        "grid": {"larger_sizes": "local", "radius": 1}, "decide": {}})
    # The budget a researcher would set: a third of the reference's runs in all (the spec's own included),
    # at most the reference's 6 seeds at a point.
    budget = count_runs(ref) // 3 - count_runs(local)
    dec = parse_spec({**local.canonical(), "decide": {"max_runs": budget, "max_seeds": 6, "max_rounds": 6}})
    return ref, dec


def verdicts(report: dict) -> str:
    return "; ".join(a.verdict for a in decide.analyses(report))


def run(name: str, steps: int, root: Path) -> dict:
    ref, dec = specs(name, steps)
    store = ResultsStore(root)
    t0 = time.perf_counter()
    out = run_sweep(ref, root, sweep_id=ref.default_sweep_id())
    ref_s = time.perf_counter() - t0
    assert not out.cells_failed, out.cells_failed
    ref_runs = store.load_runs(ref.default_sweep_id())
    ref_v = verdicts(decide.report_of(ref, ref_runs))

    sid = dec.default_sweep_id()
    t0 = time.perf_counter()
    record = decide.run_decide(dec, store, sid, lambda rec: not run_sweep(dec, root, sweep_id=sid,
                                                                         decide_record=rec).cells_failed,
                               say=lambda line: print(f"  [{name}] {line}", file=sys.stderr, flush=True))
    dec_s = time.perf_counter() - t0
    dec_runs = store.load_runs(sid)
    dec_v = verdicts(decide.report_of(dec, dec_runs, record))
    return {"spec": name, "ref_runs": len(ref_runs), "ref_s": ref_s, "ref_v": ref_v, "dec_runs": len(dec_runs),
            "dec_s": dec_s, "dec_v": dec_v, "rounds": len(record.rounds), "stopped": record.stopped,
            "summary": decide.summary(record)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(SPECS), help="comma-separated spec names")
    p.add_argument("--steps", type=int, default=40, help="training steps per run")
    p.add_argument("--results", default=None, help="results root (default: a temporary directory)")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.results or tmp)
        for name in args.only.split(","):
            rows.append(run(name, args.steps, root))
            print(f"done {name}", file=sys.stderr, flush=True)
    print(f"decide vs exhaustive reference (digits, {args.steps} steps, in-process on this machine)")
    head = ("spec", "ref runs", "ref wall", "decide runs", "runs ratio", "decide wall", "rounds", "stopped",
            "reference verdict", "decide verdict", "agree")
    table = [head] + [(r["spec"], str(r["ref_runs"]), f"{r['ref_s']:.0f} s", str(r["dec_runs"]),
                       f"{r['dec_runs'] / r['ref_runs']:.2f}", f"{r['dec_s']:.0f} s", str(r["rounds"]),
                       str(r["stopped"]), r["ref_v"], r["dec_v"], "yes" if r["ref_v"] == r["dec_v"] else "NO")
                      for r in rows]
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    for k, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(f"\n{r['spec']}:")
        print("\n".join(r["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
