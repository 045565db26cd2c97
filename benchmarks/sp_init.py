"""SP's optimum under jpc's Kaiming-uniform init vs this project's N(0, 1/fan_in) (docs/science/notebook/width.md):
the same seeds (0, 1), widths 32 and 128 and 6 × 11 grid, from two finished sweeps.

    python benchmarks/sp_init.py RESULTS DEFAULT_SWEEP_ID KAIMING_SWEEP_ID

(``mupc_width_cpu_128.yaml``'s SP runs restricted to seeds 0, 1 and widths 32, 128; and
``mupc_width_cpu_sp_kaiming.yaml``, whose grid points outside the default sweep's grid — added by
``--refine`` — are left out so both are judged on the same grid.)
"""

import sys

from mutransfer.report import build_report
from mutransfer.results import ResultsStore

root, default_id, kaiming_id = sys.argv[1:4]
store = ResultsStore(root)
default = store.load_runs(default_id)
default = default[(default.parametrization == "sp") & default.width.isin([32, 128]) & default.seed.isin([0, 1])]
kaiming = store.load_runs(kaiming_id)
kaiming = kaiming[kaiming.weight_lr.isin(default.weight_lr.unique()) & kaiming.activity_lr.isin(default.activity_lr.unique())]
print("init             width |    η* |    β* | metric at optimum | regret of the N=32 optimum [95% CI]")
for name, df in (("N(0, 1/fan_in)", default), ("kaiming_uniform", kaiming)):
    a = build_report(df).analyses[0]
    for e in a.sizes:
        ci = "" if e.regret_ci is None else " [" + ", ".join(f"{100 * x:.1f} %" for x in e.regret_ci) + "]"
        print(f"{name:16s} {e.size:5d} | {e.eta_star:.0e} | {e.beta_star:.0e} | {e.metric_at_opt:17.4f} | "
              f"{100 * e.regret:.1f} %{ci}")
    print(f"{name:16s} verdict: {a.verdict.value} ({', '.join(dict.fromkeys(r.code.value for r in a.reasons))})")
